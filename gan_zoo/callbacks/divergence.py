"""Stop a fit at the first non-finite loss, before any checkpoint can record the diverged weights."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from gan_zoo.errors import DivergenceError
from gan_zoo.loggers import StepMeans


class DivergenceGuard(L.Callback):
    """Raises ``DivergenceError`` when a loss a ``training_step`` returns becomes NaN or infinite.

    The losses are summed on their device after every batch (``StepMeans``: no host synchronisation; a non-finite
    loss makes its window's mean non-finite) and read every ``every_n_steps`` batches and at the end of the fit. A
    checkpoint never records the diverged state either way: ``ImagesCheckpoint`` checks every weight before it writes.

    Args:
        last_checkpoint: path named in the message as the one to resume from.
        every_n_steps: batches between checks (``fit.py``: its ``--log-every-n-steps``).
    """

    def __init__(self, last_checkpoint=None, every_n_steps: int = 1):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.last_checkpoint, self.every_n_steps = last_checkpoint, every_n_steps
        self._window = StepMeans()
        self._first_batch: int | None = None  # the window's first batch; None while it is empty

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        losses = {k: v for k, v in (outputs or {}).items() if torch.is_tensor(v)}
        if not losses:
            return
        self._window.add({k: v.reshape(-1)[0] for k, v in losses.items()})
        if self._first_batch is None:
            self._first_batch = batch_idx
        if batch_idx + 1 - self._first_batch >= self.every_n_steps:
            self.check(trainer, pl_module, batch_idx)

    def on_train_end(self, trainer, pl_module) -> None:
        self.check(trainer, pl_module, None)

    def check(self, trainer, pl_module, batch_idx: int | None) -> None:
        """Read the window (one host synchronisation) and start a new one; raise if a loss is not finite."""
        if self._first_batch is None:
            return
        first, self._first_batch = self._first_batch, None
        bad = {k: v for k, v in self._window.means().items() if not math.isfinite(v)}
        if not bad:
            return
        span = (f"batches {first} to the last" if batch_idx is None else
                f"batch {first}" if batch_idx == first else f"batches {first}-{batch_idx}")
        mean = "" if batch_idx == first else " (mean)"
        where = f"{span} of epoch {trainer.current_epoch} ({pl_module.images_seen} images seen)"
        raise DivergenceError(f"training diverged: {', '.join(f'{k} = {v}{mean}' for k, v in bad.items())} at "
                              f"{where}{last_good_hint(self.last_checkpoint)}")


def last_good_hint(last_checkpoint) -> str:
    """``; the last good checkpoint is ... (resume with --ckpt-path ...)``, or that none was written yet."""
    if last_checkpoint is None:
        return ""
    p = Path(last_checkpoint)
    return (f"; the last good checkpoint is {p} (resume with --ckpt-path, e.g. at a lower learning rate)"
            if p.is_file() else "; no checkpoint had been written yet")
