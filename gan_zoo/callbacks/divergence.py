"""Stop a fit at the first non-finite loss, before any checkpoint can record the diverged weights."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from gan_zoo.errors import DivergenceError


class DivergenceGuard(L.Callback):
    """Checks the losses a ``training_step`` returns after every batch and raises ``DivergenceError`` at the first
    NaN / Inf. Register it before the checkpoint callback: the raise then happens before that batch's checkpoint, so
    ``last.ckpt`` keeps the last finite state. One host synchronisation per batch (a single ``isfinite`` over all
    the losses).

    Args:
        last_checkpoint: path named in the message as the one to resume from.
    """

    def __init__(self, last_checkpoint=None):
        self.last_checkpoint = last_checkpoint

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        losses = {k: v for k, v in (outputs or {}).items() if torch.is_tensor(v)}
        if not losses:
            return
        if bool(torch.isfinite(torch.stack([v.detach().float().reshape(-1)[0] for v in losses.values()])).all()):
            return
        bad = ", ".join(f"{k} = {float(v.reshape(-1)[0])}" for k, v in losses.items() if not torch.isfinite(v).all())
        where = (f"batch {batch_idx} of epoch {trainer.current_epoch} "
                 f"({pl_module.images_seen} images seen)")
        raise DivergenceError(f"training diverged: {bad} at {where}{last_good_hint(self.last_checkpoint)}")


def last_good_hint(last_checkpoint) -> str:
    """``; the last good checkpoint is ... (resume with --ckpt-path ...)``, or that none was written yet."""
    if last_checkpoint is None:
        return ""
    p = Path(last_checkpoint)
    return (f"; the last good checkpoint is {p} (resume with --ckpt-path, e.g. at a lower learning rate)"
            if p.is_file() else "; no checkpoint had been written yet")
