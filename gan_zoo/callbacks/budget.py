"""The image budget: a fit ends once it has seen ``max_images`` images (``--max-images``, or the model's schedule)."""

from __future__ import annotations

import lightning as L


class ImagesBudget(L.Callback):
    """Stop the fit after the batch at which the images-seen counter reaches ``max_images``, or before the first
    batch when a resumed fit has seen that many already. It only stops: register it before ``ImagesCheckpoint``,
    which writes ``last.ckpt`` at the batch after which the fit stops (``trainer.should_stop``). The counter is global
    (the same on every rank), so under several processes every rank stops after the same batch.

    Args:
        max_images: images seen at which the fit ends (None = no image budget).
    """

    def __init__(self, max_images: int | None = None):
        self.max_images = max_images

    def reached(self, images_seen: int) -> bool:
        """True once ``images_seen`` is at or past the budget."""
        return self.max_images is not None and images_seen >= self.max_images

    def on_train_start(self, trainer, pl_module) -> None:
        if self.reached(pl_module.images_seen):
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.reached(pl_module.images_seen):
            trainer.should_stop = True
