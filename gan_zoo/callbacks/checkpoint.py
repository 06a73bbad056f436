"""Checkpoints and budgets counted in images seen."""

from __future__ import annotations

from pathlib import Path

import lightning as L

from gan_zoo.callbacks.periodic import crossed


class ImagesCheckpoint(L.Callback):
    """Write ``last.ckpt`` every ``every_n_images`` and when the fit ends, plus a kept snapshot
    ``kimgNNNNNN.ckpt`` every ``snapshot_every_n_images`` (0 = none); stop the fit after ``max_images``.

    Checkpoints are written at the end of a training batch, so a resumed fit continues mid-epoch with the next batch.
    Writes go through the trainer's CheckpointIO (atomic with ``AtomicCheckpointIO``).

    Args:
        dirpath: directory of the checkpoints.
        every_n_images: images between two updates of ``last.ckpt`` (0 = only at the end).
        snapshot_every_n_images: images between two kept snapshots (0 = none).
        max_images: stop the fit once this many images have been seen (None = no image budget).
    """

    def __init__(self, dirpath: str | Path, every_n_images: int = 10_000, snapshot_every_n_images: int = 0,
                 max_images: int | None = None):
        self.dirpath = Path(dirpath)
        self.every = int(every_n_images)
        self.snapshot_every = int(snapshot_every_n_images)
        self.max_images = max_images
        self._saved_at = -1
        self._last_seen = 0

    @property
    def last_path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def _save(self, trainer: L.Trainer, path: Path) -> None:
        trainer.save_checkpoint(path, weights_only=False)  # full state: optimizers, loops, callbacks

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_seen = pl_module.images_seen
        if self.max_images is not None and pl_module.images_seen >= self.max_images:
            trainer.should_stop = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        before, now = self._last_seen, pl_module.images_seen
        self._last_seen = now
        done = self.max_images is not None and now >= self.max_images
        if crossed(self.snapshot_every, before, now):
            self._save(trainer, self.dirpath / f"kimg{now // 1000:06d}.ckpt")
        if done or crossed(self.every, before, now):
            self._save(trainer, self.last_path)
            self._saved_at = now
        if done:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        if self._saved_at != pl_module.images_seen:
            self._save(trainer, self.last_path)
            self._saved_at = pl_module.images_seen

    def state_dict(self) -> dict:
        return {"saved_at": self._saved_at}

    def load_state_dict(self, state: dict) -> None:
        self._saved_at = int(state.get("saved_at", -1))
