"""A progress bar counted in images seen, the unit a GAN's budget is given in."""

from __future__ import annotations

import math
import sys
import time

from lightning.pytorch.callbacks import ProgressBar
from tqdm.auto import tqdm


def planned_images(trainer, pl_module, max_images: int | None) -> int | None:
    """The images a fit will have seen at its end: ``max_images`` (``--max-images`` or the model's schedule), else
    ``max_epochs`` passes of (batches per epoch x images per batch x ranks); None when unknown."""
    if max_images:
        return int(max_images)
    batches = trainer.num_training_batches
    batch_size = getattr(trainer.datamodule, "batch_size", None)
    if trainer.max_epochs is None or trainer.max_epochs < 1 or not batch_size or not math.isfinite(batches):
        return None
    return int(trainer.max_epochs * batches * batch_size * trainer.world_size)


class ImagesProgressBar(ProgressBar):
    """One bar for the whole fit, in kimg: its total is the image budget, so its ETA is the fit's; beside it the
    images per second (over the last ``rate_window`` seconds) and the values the model logs to the progress bar.
    It is redrawn at most every ``refresh_interval`` seconds, not after every batch."""

    def __init__(self, max_images: int | None = None, rate_window: float = 2.0, refresh_interval: float = 0.25):
        super().__init__()
        self.max_images, self.rate_window, self.refresh_interval = max_images, rate_window, refresh_interval
        self._drawn_at = -math.inf
        self._enabled = True
        self.bar = None
        self._shown = 0
        self._t0, self._n0, self._rate = None, 0, 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def on_train_start(self, trainer, pl_module) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        total = planned_images(trainer, pl_module, self.max_images)
        self._shown = pl_module.images_seen
        d = 1 if (total or 0) >= 10_000 else 2 if (total or 0) >= 1000 else 3  # small budgets still show progress
        self.bar = tqdm(total=total, initial=self._shown, unit_scale=0.001,  # counted in images, shown in kimg
                        desc=pl_module.model_name, unit="kimg", file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                        bar_format=f"{{desc}}: {{percentage:3.0f}}%|{{bar}}| {{n:.{d}f}}/{{total:.{d}f}} kimg "
                                   "[{elapsed}<{remaining}{postfix}]" if total else None)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bar is None:
            return
        now = time.perf_counter()
        if now - self._drawn_at < self.refresh_interval:
            return
        self._drawn_at = now
        self._draw(trainer, pl_module, now)

    def _draw(self, trainer, pl_module, now: float) -> None:
        seen = pl_module.images_seen
        if self._t0 is None:
            self._t0, self._n0 = now, seen
        elif now - self._t0 >= self.rate_window:
            self._rate = (seen - self._n0) / (now - self._t0)
            self._t0, self._n0 = now, seen
        shown = {k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in self.get_metrics(trainer, pl_module).items()
                 if k != "v_num"}
        shown["img/s"] = f"{self._rate:.0f}"
        self.bar.set_postfix(shown, refresh=False)
        if self.bar.total is not None and seen > self.bar.total:  # the last batch may overshoot the budget
            self.bar.total = seen
        self.bar.update(seen - self._shown)
        self._shown = seen

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, trainer, pl_module) -> None:
        if self.bar is not None:
            self._draw(trainer, pl_module, time.perf_counter())  # the final count, however recent the last redraw
        self._close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._close()
