"""A callback base that acts every N images seen (never every N optimizer steps) and at the end of a fit."""

from __future__ import annotations

import lightning as L


def crossed(every: int, before: int, now: int) -> bool:
    """True when the images-seen counter went past a multiple of ``every`` between ``before`` and ``now``."""
    return every > 0 and now // every > before // every


class EveryNImages(L.Callback):
    """Calls ``run(trainer, pl_module, final=False)`` each time the images-seen counter passes a multiple of
    ``every_n_images`` (0 = never during the fit) and ``run(..., final=True)`` once when the fit ends, unless the
    last periodic run was at the images the fit ends on and ``repeat_at_end`` is False (a measurement of the same
    model again: the default)."""

    repeat_at_end = False  # True where the end-of-fit call does something of its own (a sample grid's final.png)

    def __init__(self, every_n_images: int = 0):
        self.every = int(every_n_images)
        self._last = 0
        self._ran_at: int | None = None

    def run(self, trainer, pl_module, final: bool) -> None:
        raise NotImplementedError

    def on_train_start(self, trainer, pl_module) -> None:
        self._last = pl_module.images_seen

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = pl_module.images_seen
        if crossed(self.every, self._last, now):
            self.run(trainer, pl_module, final=False)
            self._ran_at = now
        self._last = now

    def on_train_end(self, trainer, pl_module) -> None:
        if self._ran_at == pl_module.images_seen and not self.repeat_at_end:
            return
        self.run(trainer, pl_module, final=True)
