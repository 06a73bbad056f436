"""The model zoo: pretrained GANs loadable by name, offline, verified.

    import gan_zoo
    gan_zoo.list_pretrained()                          # ['bigbigan.fmnist32', 'dcgan.fmnist32', ..., 'fmnist-cnn']
    model = gan_zoo.load_pretrained("dcgan.fmnist32")   # eval mode, on the CPU
    images = model.sample(64, seed=0)                   # (64, 1, 32, 32) in [-1, 1]

Entries are listed in ``checkpoints/zoo.json`` (the manifest; ``checkpoints/extractors.json`` lists the metric
feature extractors, which load by name too and return the extractor). An entry's file is a weights-only export:
``{"format", "model", "hparams", "data", "images_seen", "state_dict"}`` where ``state_dict`` holds only what the
model needs for its purpose (the EMA generator; plus the encoder of BiGAN / BigBiGAN and the EMA classifier of the
semi-supervised GAN; see ``GANModule.export_modules``). Its name is ``<entry>-<first 8 hex digits of sha256>.pt``.

Loading resolves the file through ``gan_zoo.weights.locate`` (``checkpoints/``, ``$GAN_ZOO_WEIGHTS``, the download
cache, then the entry's URL if it has one), checks its sha256 on every load, reads it with
``torch.load(weights_only=True)``, builds the model from the recorded hyperparameters and loads every exported module
strictly (missing, unexpected or mis-shaped tensors are refused with their names). The discriminator and optimizers
of a loaded model are freshly initialised: an entry is for sampling (encoding, classifying), not for resuming a fit.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from gan_zoo import weights
from gan_zoo.checkpoint_io import (atomic_torch_save, current_hparams, first_line, load_checkpoint,
                                   load_matching_state, read_weights)
from gan_zoo.errors import CheckpointError, ExtractorError, PretrainedError, UnknownNameError
from gan_zoo.metrics.extractors import extractor_manifest, load_extractor
from gan_zoo.models import get_model_class
from gan_zoo.registry import MODELS

FORMAT = "gan_zoo.pretrained/1"
MANIFEST = "zoo.json"
DATA_FIELDS = ("name", "resolution", "channels", "resize_mode", "num_labeled")  # all a file may say of its data: no paths
REQUIRED_FIELDS = ("model", "file", "sha256", "size", "num_params", "hparams", "data", "resolution", "channels",
                   "images_seen", "metrics", "ci_check", "recipe", "versions", "license")


# --- the manifest ----------------------------------------------------------------------------------------------------

def manifest_path() -> Path:
    return weights.CHECKPOINTS / MANIFEST


def manifest() -> dict[str, dict]:
    """The zoo manifest (``checkpoints/zoo.json``): entry name -> entry."""
    path = manifest_path()
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"the zoo manifest {path} is not valid JSON: {e}") from e


def _extractors() -> dict[str, dict]:
    """The extractor manifest's entries; none when the manifest is absent, an error naming it when it is corrupt."""
    if not (weights.CHECKPOINTS / "extractors.json").is_file():
        return {}
    try:
        return extractor_manifest()
    except ExtractorError as e:
        raise PretrainedError(str(e)) from e


def list_pretrained(kind: str = "all") -> list[str]:
    """Names of the pretrained entries: ``kind="gan"`` the generators, ``"extractor"`` the metric feature
    extractors, ``"all"`` both (GANs first)."""
    if kind not in ("all", "gan", "extractor"):
        raise ValueError(f"kind must be 'all', 'gan' or 'extractor', got {kind!r}")
    if not manifest_path().is_file() and not (weights.CHECKPOINTS / "extractors.json").is_file():
        raise PretrainedError(f"no zoo manifest found: looked for {MANIFEST} and extractors.json in "
                              f"{weights.CHECKPOINTS} (an installed gan_zoo has them in gan_zoo/checkpoints; reinstall "
                              "it, or run from a source checkout)")
    gans = sorted(manifest()) if kind in ("all", "gan") else []
    ext = sorted(_extractors()) if kind in ("all", "extractor") else []
    return gans + ext


def entry_name(name: str, entries: dict[str, dict] | None = None) -> str:
    """``name``, or the entry it names by its model's old name, an alias (``sgan.fmnist32`` is
    ``ensemble_sgan.fmnist32``)."""
    entries = manifest() if entries is None else entries
    model, dot, tag = name.partition(".")
    if name in entries or not dot:
        return name
    try:
        renamed = f"{MODELS.canonical(model)}.{tag}"
    except UnknownNameError:
        return name
    return renamed if renamed in entries else name


def pretrained_info(name: str) -> dict:
    """The manifest entry of ``name`` (a copy); an unknown name lists the valid ones."""
    entries = manifest()
    name = entry_name(name, entries)
    if name in entries:
        return dict(entries[name])
    ext = _extractors()
    if name in ext:
        return dict(ext[name], kind="extractor")
    raise UnknownNameError(f"unknown pretrained model {name!r}; available: {', '.join(list_pretrained()) or 'none'}")


# --- export ----------------------------------------------------------------------------------------------------------

def export_payload(model, data: dict | None = None) -> dict[str, Any]:
    """The weights-only export of ``model``: its hyperparameters and the state of ``model.export_modules()``."""
    modules = model.export_modules()
    state = {f"{prefix}.{k}": v.detach().cpu().clone() for prefix, m in modules.items()
             for k, v in m.state_dict().items()}
    return {"format": FORMAT, "model": model.model_name, "hparams": _plain(dict(model.hparams)),
            "data": _plain(dict(data or {})), "images_seen": int(model.images_seen), "state_dict": state}


def export_pretrained(model, directory: str | os.PathLike, name: str, data: dict | None = None) -> Path:
    """Write ``model``'s export to ``directory/<name>-<sha8>.pt`` atomically; return the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    os.close(fd)
    try:
        atomic_torch_save(export_payload(model, data), tmp)
        path = directory / f"{name}-{weights.sha256_file(tmp)[:8]}.pt"
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _plain(obj):
    """Hyperparameters as JSON / weights_only-safe primitives (tuples become lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"hyperparameter value {obj!r} of type {type(obj).__name__} is not a primitive")


# --- loading ---------------------------------------------------------------------------------------------------------

def read_export(path: str | os.PathLike) -> dict:
    """Read and validate an export file (``weights_only=True``); ``PretrainedError`` with the reason otherwise."""
    path = Path(path)
    payload = read_weights(path, "export", PretrainedError)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise PretrainedError(f"{path} is not a gan_zoo pretrained export (format {found!r}, expected {FORMAT!r}); "
                              "a training checkpoint is exported with scripts/export_pretrained.py")
    for key, kind in (("model", str), ("hparams", dict), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            found = "no" if key not in payload else f"a {type(payload[key]).__name__} as its"
            raise PretrainedError(f"{path} has {found} {key!r} entry (expected a {kind.__name__})")
    return payload


def build_from_export(payload: dict, source: str = "export"):
    """The model described by ``payload`` with its exported modules loaded strictly."""
    cls = get_model_class(payload["model"])
    try:
        model = cls(**current_hparams(payload["model"], payload["hparams"]))
    except (TypeError, ValueError) as e:
        raise PretrainedError(f"{source}: cannot build {cls.model_name} from its recorded hyperparameters: {e}") from e
    state = payload["state_dict"]
    modules = model.export_modules()
    for prefix, module in modules.items():
        sub = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
        try:
            module.load_state_dict(sub, strict=True)
        except RuntimeError as e:
            msg = " ".join(str(e).split())
            raise PretrainedError(f"{source}: the weights do not match {cls.model_name}.{prefix}: {msg[:400]}") from e
    extra = sorted(k for k in state if k.split(".")[0] not in modules)
    if extra:
        raise PretrainedError(f"{source}: unexpected tensors for {cls.model_name}: {', '.join(extra[:5])}")
    model.restore_progress(int(payload.get("images_seen", 0)))
    model.pretrained_meta = {"data": recorded_data(payload.get("data")), "images_seen": payload.get("images_seen", 0)}
    return model.eval().requires_grad_(False)


def recorded_data(data) -> dict:
    """The data set a checkpoint or export says it was trained on, reduced to ``DATA_FIELDS``. Anything else (the
    ``data_dir`` older checkpoints recorded) is dropped: where the data lives is the user's choice, never a file's."""
    return {k: data[k] for k in DATA_FIELDS if k in data} if isinstance(data, dict) else {}


def num_exported_params(model) -> int:
    """Number of tensor elements in ``model``'s export (parameters and buffers of the exported modules)."""
    return sum(v.numel() for m in model.export_modules().values() for v in m.state_dict().values())


def load_pretrained(name: str, device: str | torch.device = "cpu"):
    """Load a zoo entry by name, verified; returns the model in eval mode on ``device``.

    ``name`` may also be a path: an export file (``.pt``, from ``scripts/export_pretrained.py``) or a fit's training
    checkpoint (``.ckpt``), each loaded with ``weights_only=True`` and strict shape checks. A metric extractor's name
    (``fmnist-cnn``) returns that extractor."""
    entries = manifest()
    name = entry_name(name, entries)
    in_zoo = name in entries
    if not in_zoo and name in _extractors():
        return load_extractor(name).to(device)
    path_like = Path(name)
    if not in_zoo and path_like.suffix in (".pt", ".ckpt"):
        if not path_like.is_file():
            raise PretrainedError(f"{name}: no such file, and not a zoo entry (available: "
                                  f"{', '.join(list_pretrained()) or 'none'})")
        if path_like.suffix == ".ckpt":
            try:
                model, data, images_seen = load_training_checkpoint(str(path_like))
            except CheckpointError as e:
                raise PretrainedError(str(e)) from e
            model.pretrained_meta = {"data": data, "images_seen": images_seen, "source": str(path_like)}
            return model.requires_grad_(False).to(device)
        model = build_from_export(read_export(path_like), str(path_like))
        model.pretrained_meta["source"] = str(path_like)
        return model.to(device)
    entry = pretrained_info(name)
    path = weights.locate(entry["file"], entry["sha256"], name, PretrainedError, entry.get("url"))
    payload = read_export(path)
    if not MODELS.same(payload["model"], entry["model"]):  # an export may record its model's old name (an alias)
        raise PretrainedError(f"{name}: {path} holds a {payload['model']} model, the manifest says {entry['model']}")
    model = build_from_export(payload, f"{name} ({path})")
    model.pretrained_meta.update(name=name, entry=entry, source=str(path))
    return model.to(device)


def load_training_checkpoint(path: str, device: str = "cpu"):
    """``(model, data info, images seen)`` from a fit.py checkpoint, verified and in eval mode."""
    ckpt = load_checkpoint(path)
    cls = get_model_class(ckpt["gan_zoo"]["model"])
    try:
        model = cls(**ckpt.get("hyper_parameters", {}))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot build {cls.model_name} from its recorded hyperparameters: "
                              f"{first_line(e)}") from e
    load_matching_state(model, ckpt, str(path))
    model.restore_progress(int(ckpt["gan_zoo"].get("images_seen", 0)))
    return model.to(device).eval(), recorded_data(ckpt["gan_zoo"].get("data")), model.images_seen


def write_manifest(entries: dict[str, dict], path: str | os.PathLike | None = None) -> None:
    """Write the manifest atomically, entries sorted by name."""
    path = Path(path) if path else manifest_path()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps({k: entries[k] for k in sorted(entries)}, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
