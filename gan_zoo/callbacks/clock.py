"""The training clock: seconds spent in training steps, carried across resumes, logged beside the metrics."""

from __future__ import annotations

import time

from gan_zoo.callbacks.periodic import EveryNImages


class TrainClock(EveryNImages):
    """Sum the wall seconds of the training steps (from this callback's ``on_train_batch_start`` to its
    ``on_train_batch_end``) and log the sum as ``time/train_seconds`` every ``every_n_images`` images and at the end
    of the fit, at the images seen. Register it first: callbacks run in list order, so the span then holds the
    training step and nothing the other callbacks do after it (checkpoints, metrics, sample grids). The sum is part of
    the checkpoint, so a resumed fit goes on counting; its start-up is not counted.

    With the metrics on the same cadence, ``logs/metrics.csv`` gives the training seconds per image at every
    evaluation (``benchmarks/zoo_curves.py`` reads it).

    Args:
        every_n_images: images seen between logged values (0 = only at the end).
    """

    repeat_at_end = False

    def __init__(self, every_n_images: int = 0):
        super().__init__(every_n_images)
        self.seconds = 0.0
        self._t0: float | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._t0 is not None:
            self.seconds += time.perf_counter() - self._t0
            self._t0 = None
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def run(self, trainer, pl_module, final: bool) -> None:
        if not trainer.is_global_zero:
            return
        values = {"time/train_seconds": self.seconds, "train/kimg": pl_module.images_seen / 1000}
        for logger in trainer.loggers:
            logger.log_metrics(values, step=pl_module.images_seen)

    def state_dict(self) -> dict:
        return {"seconds": float(self.seconds)}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = float(state.get("seconds", 0.0))
