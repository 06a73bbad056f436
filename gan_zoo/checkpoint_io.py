"""Checkpoint files: atomic writes and safe, validated reads.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed over the target
(``os.replace`` is atomic on POSIX): a crash mid-write leaves the previous checkpoint intact, never half a file.
Reads use ``torch.load(weights_only=True)``: a checkpoint can never run code.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, or for another model; the message says which."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO that writes atomically and reads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint(path, map_location=map_location or "cpu")


def load_checkpoint(path: str | os.PathLike, map_location="cpu", model_name: str | None = None) -> dict:
    """Load and validate a gan_zoo training checkpoint; raise ``CheckpointError`` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, pickled code ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "gan_zoo" not in ckpt:
        raise CheckpointError(f"{path} is not a gan_zoo training checkpoint (no 'state_dict' / 'gan_zoo' entry)")
    found = ckpt["gan_zoo"].get("model")
    if model_name is not None and found != model_name:
        raise CheckpointError(f"{path} is a checkpoint of model {found!r}, not {model_name!r}")
    return ckpt
