"""Stop a fit at the first non-finite loss, before any checkpoint can record the diverged weights."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch

from gan_zoo.errors import DivergenceError


class DivergenceGuard(L.Callback):
    """Raises ``DivergenceError`` when a loss a ``training_step`` returns becomes NaN or infinite.

    The losses are summed on their device after every batch (no host synchronisation: a non-finite loss makes its
    sum non-finite) and the sums are read every ``every_n_steps`` batches and at the end of the fit. A checkpoint
    never records the diverged state either way: ``ImagesCheckpoint`` checks every weight before it writes.

    Args:
        last_checkpoint: path named in the message as the one to resume from.
        every_n_steps: batches between checks (``fit.py``: its ``--log-every-n-steps``).
    """

    def __init__(self, last_checkpoint=None, every_n_steps: int = 1):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.last_checkpoint, self.every_n_steps = last_checkpoint, every_n_steps
        self._keys: tuple[str, ...] = ()
        self._sum: torch.Tensor | None = None
        self._first_batch = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        losses = {k: v for k, v in (outputs or {}).items() if torch.is_tensor(v)}
        if losses:
            stacked = torch.stack([v.detach().float().reshape(-1)[0] for v in losses.values()])
            if self._sum is not None and tuple(losses) == self._keys:
                self._sum += stacked
            else:
                self.check(trainer, pl_module, batch_idx)
                self._keys, self._sum, self._first_batch = tuple(losses), stacked, batch_idx
        if (batch_idx + 1 - self._first_batch) >= self.every_n_steps:
            self.check(trainer, pl_module, batch_idx)

    def on_train_end(self, trainer, pl_module) -> None:
        self.check(trainer, pl_module, None)

    def check(self, trainer, pl_module, batch_idx: int | None) -> None:
        """Read the sums (one host synchronisation) and start a new window; raise if any is not finite."""
        if self._sum is None:
            return
        sums, keys, first = self._sum, self._keys, self._first_batch
        self._sum, self._keys = None, ()
        self._first_batch = (batch_idx + 1) if batch_idx is not None else 0
        if bool(torch.isfinite(sums).all()):
            return
        span = (f"batches {first} to the last" if batch_idx is None else
                f"batch {first}" if batch_idx == first else f"batches {first}-{batch_idx}")
        summed = "" if batch_idx == first else " (summed)"
        bad = ", ".join(f"{k} = {v}{summed}" for k, v in zip(keys, sums.tolist()) if not math.isfinite(v))
        where = f"{span} of epoch {trainer.current_epoch} ({pl_module.images_seen} images seen)"
        raise DivergenceError(f"training diverged: {bad} at {where}{last_good_hint(self.last_checkpoint)}")


def last_good_hint(last_checkpoint) -> str:
    """``; the last good checkpoint is ... (resume with --ckpt-path ...)``, or that none was written yet."""
    if last_checkpoint is None:
        return ""
    p = Path(last_checkpoint)
    return (f"; the last good checkpoint is {p} (resume with --ckpt-path, e.g. at a lower learning rate)"
            if p.is_file() else "; no checkpoint had been written yet")
