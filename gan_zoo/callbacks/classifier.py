"""Test accuracy of a model's classifier (``model.classify``), e.g. the semi-supervised GAN's."""

from __future__ import annotations

import sys

from gan_zoo.callbacks.periodic import EveryNImages
from gan_zoo.datamodules.base import to_float


class TestAccuracy(EveryNImages):
    """Log ``metrics/test_acc`` (accuracy of ``model.classify`` on the data set's test split, in %) every
    ``every_n_images`` and at the end of the fit.

    Args:
        every_n_images: images seen between evaluations (0 = only at the end).
        split: the split to evaluate on.
    """

    def __init__(self, every_n_images: int = 0, split: str = "test"):
        super().__init__(every_n_images)
        self.split = split
        self.history: list[dict] = []

    def run(self, trainer, pl_module, final: bool) -> None:
        x, y = trainer.datamodule.split(self.split)
        correct = 0
        for i in range(0, len(x), 1000):
            pred = pl_module.classify(to_float(x[i : i + 1000])).argmax(1).cpu()
            correct += int((pred == y[i : i + 1000]).sum())
        acc = 100.0 * correct / len(x)
        logged = {"metrics/test_acc": acc, "train/kimg": pl_module.images_seen / 1000}
        self.history.append(logged)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=pl_module.images_seen)
            print(f"test accuracy ({self.split}, {len(x)} images): {acc:.2f} %", file=sys.stderr)
