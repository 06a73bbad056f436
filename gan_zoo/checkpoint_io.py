"""Checkpoint files: atomic writes and safe, validated reads.

A checkpoint is written to a temporary file in the same directory, flushed to disk, then renamed over the target
(``os.replace`` is atomic on POSIX): a crash mid-write leaves the previous checkpoint intact, never half a file, and a
failed write (a full disk) removes its temporary file and says that the previous checkpoint is intact. A process
killed mid-write cannot remove its temporary file: ``remove_stale_temporaries`` does, when the next fit starts.
Reads use ``torch.load(weights_only=True)``: a checkpoint can never run code. Every read is validated (structure,
model, and for a resume Lightning's training state) and refused with the reason.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from gan_zoo.errors import CheckpointError, UnknownNameError
from gan_zoo.registry import MODELS
from gan_zoo.weights import load_failure

TMP_SUFFIX = ".tmp"
# What Lightning needs to resume a fit (optimizer moments, loop progress, the loader's position in the epoch).
RESUME_KEYS = ("optimizer_states", "lr_schedulers", "loops", "epoch", "global_step")
# Constructor options removed from a model, with the only value a file written before the removal may record: the
# behaviour that remains. Such a file loads with the option dropped; one that recorded another value is refused.
REMOVED_HPARAMS: dict[str, dict[str, Any]] = {
    "selfgan": {"detach_weights": False},  # neither the SelfGAN article nor its author's code detaches the weights
}


def current_hparams(model_name: str, hparams: dict) -> dict:
    """``hparams`` recorded by a checkpoint or an export of ``model_name``, without the options the model no longer
    has (``REMOVED_HPARAMS``); ``ValueError`` when one of them records a value other than the behaviour that
    remains."""
    try:
        removed = REMOVED_HPARAMS.get(MODELS.canonical(model_name), {})
    except UnknownNameError:
        removed = {}
    out = dict(hparams)
    for name, kept in removed.items():
        if name in out:
            value = out.pop(name)
            if value != kept:
                raise ValueError(f"it was trained with {name}={value!r}, an option {model_name} no longer has (only "
                                 f"{name}={kept!r} is supported)")
    return out


def first_line(e: BaseException) -> str:
    """``Type: first line of the message`` of an exception, also when the message is empty."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def _temporary(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to ``path`` atomically (temporary file + fsync + rename).

    A failed write (``OSError``: no space left on device, permission denied) removes the temporary file and raises
    ``CheckpointError`` saying so and that ``path``, if it existed, is unchanged."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary(path)
    except OSError as e:
        raise CheckpointError(f"cannot write {path}: {e.strerror or first_line(e)}") from e
    out = None
    try:
        with os.fdopen(fd, "wb") as f:
            out = _RecordingWriter(f)
            torch.save(obj, out)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        # torch's zip writer reports a failed write as "unexpected pos ..."; the file's own error says why
        os_error = e if isinstance(e, OSError) else getattr(out, "error", None)
        if os_error is None:
            raise
        reason = "no space left on device" if os_error.errno == errno.ENOSPC else (
            os_error.strerror or first_line(os_error))
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise CheckpointError(f"cannot write {path}: {reason}; {kept}") from e
    try:  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def remove_stale_temporaries(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files ``atomic_torch_save`` left in ``directory`` when its process was killed mid-write
    (``.<name>.<random>.tmp``); returns what was removed. Call it only while no other process writes there."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for p in directory.glob(f".*{TMP_SUFFIX}"):
        if p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except FileNotFoundError:
                pass
    return removed


class _RecordingWriter:
    """A binary file's ``write``, keeping the ``OSError`` it raised (torch's zip writer replaces it with its own)."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning CheckpointIO that writes atomically and reads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        return load_checkpoint(path, map_location=map_location or "cpu")


def read_weights(path: str | os.PathLike, what: str, error: type[Exception] = CheckpointError, map_location="cpu"):
    """``torch.load(path, weights_only=True)``; any failure (missing, empty, truncated, pickled code) is ``error``
    with the reason."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise error(f"cannot read {what} {path}: the file is empty (0 bytes)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, garbage bytes, pickled code ...
        raise error(f"cannot read {what} {path}: {load_failure(e)}") from e


def load_checkpoint(path: str | os.PathLike, map_location="cpu", model_name: str | None = None,
                    resume: bool = False) -> dict:
    """Load and validate a gan_zoo training checkpoint; raise ``CheckpointError`` with the reason.

    Args:
        path: the ``.ckpt`` file.
        map_location: where tensors are loaded.
        model_name: refuse a checkpoint of another model.
        resume: also require Lightning's training state (optimizer states, loop progress), which a fit resumes from.
    """
    path = Path(path)
    ckpt = read_weights(path, "checkpoint", CheckpointError, map_location)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or "gan_zoo" not in ckpt:
        raise CheckpointError(f"{path} is not a gan_zoo training checkpoint (no 'state_dict' / 'gan_zoo' entry)")
    meta = ckpt["gan_zoo"]
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not isinstance(
            meta.get("images_seen", 0), int):
        raise CheckpointError(f"{path} has a malformed 'gan_zoo' entry (expected a mapping with the model's name and "
                              f"its images seen, found {type(meta).__name__})")
    if not isinstance(ckpt.get("hyper_parameters", {}), dict):
        raise CheckpointError(f"{path} has malformed 'hyper_parameters' ({type(ckpt['hyper_parameters']).__name__}, "
                              "expected a mapping)")
    found = meta["model"]
    if model_name is not None and not MODELS.same(found, model_name):
        raise CheckpointError(f"{path} is a checkpoint of model {found!r}, not {model_name!r}")
    if "hyper_parameters" in ckpt:
        try:
            ckpt["hyper_parameters"] = current_hparams(found, ckpt["hyper_parameters"])
        except ValueError as e:
            raise CheckpointError(f"{path}: {e}") from e
    if resume:
        missing = [k for k in RESUME_KEYS if k not in ckpt]
        if missing:
            raise CheckpointError(f"{path} lacks Lightning's training state ({', '.join(missing)}): it can be sampled "
                                  "or evaluated but not resumed")
    return ckpt


def load_matching_state(model, ckpt: dict, source: str) -> None:
    """Load ``ckpt["state_dict"]`` into ``model`` strictly; a mismatch is ``CheckpointError`` naming the first
    differing tensors and the hyperparameters that differ from the checkpoint's."""
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (RuntimeError, KeyError, TypeError) as e:
        msg = " ".join(str(e).split())
        diff = hparam_differences(ckpt.get("hyper_parameters") or {}, dict(model.hparams))
        hint = f"; the checkpoint was trained with {diff}" if diff else ""
        raise CheckpointError(f"{source} does not match model {model.model_name}{hint}: {msg[:300]}") from e


def hparam_differences(saved: dict, current: dict) -> str:
    """``"lr=0.0002 (now 0.0001), ..."`` for the hyperparameters whose values differ; empty when none do."""
    keys = [k for k in current if k in saved and saved[k] != current[k]
            and not (isinstance(saved[k], (list, tuple)) and list(saved[k]) == list(current[k] or []))]
    return ", ".join(f"{k}={saved[k]!r} (now {current[k]!r})" for k in keys)
