"""Checkpoints counted in images seen, and a fit that stops cleanly on SIGINT / SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import lightning as L
import torch

from gan_zoo.callbacks.divergence import DivergenceError, last_good_hint
from gan_zoo.callbacks.periodic import crossed
from gan_zoo.checkpoint_io import remove_stale_temporaries

EXIT_STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as a shell reports it


class FitInterrupted(BaseException):
    """A fit ended by SIGINT or SIGTERM. ``checkpoint`` is the checkpoint that holds the fit's last step (None when
    training had not started), ``images_seen`` its images seen. A ``BaseException``, like ``KeyboardInterrupt``, so
    no ``except Exception`` on the way swallows it."""

    def __init__(self, signum: int, checkpoint: Path | None = None, images_seen: int | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.checkpoint, self.images_seen = signum, checkpoint, images_seen

    @property
    def exit_status(self) -> int:
        return EXIT_STATUS.get(self.signum, 128 + self.signum)


class SignalCatcher:
    """While installed (``with SignalCatcher() as catcher:``), SIGINT and SIGTERM ask the fit to stop instead of
    killing it: the first signal that arrives during the training batches (``deferring``) is kept in ``requested``
    and ``ImagesCheckpoint`` acts on it at the end of the current batch (a checkpoint of that step, then
    ``FitInterrupted``). A signal outside the training batches, or a second one, raises ``FitInterrupted`` at once.
    SIGINT is left alone where the process was started with it ignored (a background job)."""

    def __init__(self):
        self.requested: int | None = None
        self.deferring = False
        self.trainer = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "SignalCatcher":
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if sig == signal.SIGINT and previous == signal.SIG_IGN:
                continue
            self._previous[sig] = previous
            signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        first = self.requested is None
        if first:
            self.requested = signum
        connector = getattr(self.trainer, "_signal_connector", None)
        if connector is not None:
            # Lightning's own SIGTERM handler (called just before this one) would end the loop at the next batch
            # boundary, possibly after this batch's checkpoint decision: the stop is ours to make.
            connector.received_sigterm = False
        if first and self.deferring:
            return
        raise FitInterrupted(signum)


class ImagesCheckpoint(L.Callback):
    """Write ``last.ckpt`` every ``every_n_images`` and when the fit ends, plus a kept snapshot
    ``kimgNNNNNN.ckpt`` every ``snapshot_every_n_images`` (0 = none).

    Checkpoints are written at the end of a training batch, so a resumed fit continues mid-epoch with the next batch.
    The batch after which the fit stops (``trainer.should_stop``, set by ``ImagesBudget`` or any callback registered
    before this one) is checkpointed at its end too.
    Writes go through the trainer's CheckpointIO (atomic with ``AtomicCheckpointIO``); the loggers are flushed first.
    Before every write the model's parameters and buffers are checked: a non-finite value raises
    ``DivergenceError`` and the previous ``last.ckpt`` stays as it was. With a ``SignalCatcher``, a SIGINT or
    SIGTERM during training writes ``last.ckpt`` at the end of the current batch and raises ``FitInterrupted``
    (under several processes the ranks agree on the batch). Temporary files that a process killed mid-write left
    in ``dirpath`` are removed when training starts and ends.

    Args:
        dirpath: directory of the checkpoints.
        every_n_images: images between two updates of ``last.ckpt`` (0 = only at the end).
        snapshot_every_n_images: images between two kept snapshots (0 = none).
        signals: the fit's ``SignalCatcher`` (None: signals are not caught).
    """

    def __init__(self, dirpath: str | Path, every_n_images: int = 10_000, snapshot_every_n_images: int = 0,
                 signals: SignalCatcher | None = None):
        self.dirpath = Path(dirpath)
        self.every = int(every_n_images)
        self.snapshot_every = int(snapshot_every_n_images)
        self.signals = signals
        self.training_started = False
        self.training_ended = False
        self._saved_at = -1
        self._last_seen = 0

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def _save(self, trainer: L.Trainer, pl_module, path: Path) -> None:
        check_finite(pl_module, self.last_path)
        for logger in trainer.loggers:
            logger.save()
        trainer.save_checkpoint(path, weights_only=False)  # full state: optimizers, loops, callbacks

    def _clean(self, trainer) -> None:
        if trainer.is_global_zero:
            remove_stale_temporaries(self.dirpath)

    def on_train_start(self, trainer, pl_module) -> None:
        self.training_started = True
        self._clean(trainer)
        self._last_seen = pl_module.images_seen
        if self.signals is not None:
            self.signals.trainer = trainer
            self.signals.deferring = True

    def _stop_requested(self, trainer) -> bool:
        local = self.signals is not None and self.signals.requested is not None
        if trainer.world_size > 1:  # every rank stops after the same batch, or a collective would hang
            return bool(trainer.strategy.reduce_boolean_decision(local, all=False))
        return local

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        before, now = self._last_seen, pl_module.images_seen
        self._last_seen = now
        final = trainer.should_stop  # the fit ends after this batch (the budget): keep its step
        stop = self._stop_requested(trainer)
        if crossed(self.snapshot_every, before, now):
            self._save(trainer, pl_module, self.dirpath / f"kimg{now // 1000:06d}.ckpt")
        if final or stop or crossed(self.every, before, now):
            self._save(trainer, pl_module, self.last_path)
            self._saved_at = now
        if stop:
            signum = self.signals.requested if self.signals.requested is not None else signal.SIGTERM
            raise FitInterrupted(signum, self.last_path, now)

    def on_train_end(self, trainer, pl_module) -> None:
        self.training_ended = True
        if self._saved_at != pl_module.images_seen:
            self._save(trainer, pl_module, self.last_path)
            self._saved_at = pl_module.images_seen
        if self.signals is not None:
            self.signals.deferring = False  # the end-of-fit work (metrics) is interrupted at once
        self._clean(trainer)

    def state_dict(self) -> dict:
        return {"saved_at": self._saved_at}

    def load_state_dict(self, state: dict) -> None:
        self._saved_at = int(state.get("saved_at", -1))


def check_finite(module: torch.nn.Module, last_checkpoint: Path | None = None) -> None:
    """Raise ``DivergenceError`` naming the parameters and buffers of ``module`` that hold NaN or Inf (one host
    synchronisation when all are finite)."""
    tensors = {n: t for n, t in [*module.named_parameters(), *module.named_buffers()]
               if t.is_floating_point() and t.numel()}
    if not tensors or bool(torch.stack([torch.isfinite(t).all() for t in tensors.values()]).all()):
        return
    bad = [n for n, t in tensors.items() if not bool(torch.isfinite(t).all())]
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    seen = getattr(module, "images_seen", 0)  # any nn.Module can be checked; a GANModule also counts images
    raise DivergenceError(f"training diverged: non-finite values in {', '.join(bad[:3])}{more} at "
                          f"{seen} images seen; no checkpoint was written{last_good_hint(last_checkpoint)}")
