"""A progress bar that shows images per second beside the losses."""

from __future__ import annotations

import time

from lightning.pytorch.callbacks import TQDMProgressBar


class ImagesProgressBar(TQDMProgressBar):
    """Lightning's TQDM bar plus ``img/s`` (images seen per wall-clock second, over the last refresh window)
    and ``kimg``."""

    def __init__(self, refresh_rate: int = 1):
        super().__init__(refresh_rate=refresh_rate)
        self._t0, self._n0, self._rate = None, 0, 0.0

    def get_metrics(self, trainer, pl_module):
        metrics = super().get_metrics(trainer, pl_module)
        metrics.pop("v_num", None)
        seen = getattr(pl_module, "images_seen", 0)
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._n0 = now, seen
        elif now - self._t0 >= 2.0:
            self._rate = (seen - self._n0) / (now - self._t0)
            self._t0, self._n0 = now, seen
        metrics["img/s"] = f"{self._rate:.0f}"
        metrics["kimg"] = f"{seen / 1000:.1f}"
        return metrics
