"""Real-data feature statistics cached on disk, keyed by a hash of everything that changes them.

The key holds the data set, split, resolution, channels, resize mode, extractor name and sha256, the extractor's
resize settings, the number of images and the torch / torchmetrics versions. A cache file is trusted only when it
loads with ``weights_only=True``, carries exactly the expected key, and has finite tensors of the right shapes;
anything else is recomputed and overwritten (atomically).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch
import torchmetrics
from torch import Tensor

from gan_zoo.checkpoint_io import atomic_torch_save


def cache_dir() -> Path:
    root = os.environ.get("GAN_ZOO_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gan_zoo"
    return Path(root) / "stats"


def stats_key(**fields) -> dict:
    key = dict(fields)
    key.update(torch=str(torch.__version__), torchmetrics=str(torchmetrics.__version__), subset="random, seed 0",
               format=2)
    return key


def key_hash(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _valid(entry, key: dict, num_features: int) -> bool:
    try:
        feats = entry["features"]
        return (entry["key"] == key and feats.dim() == 2 and feats.shape[1] == num_features
                and feats.shape[0] == entry["n"] and bool(torch.isfinite(feats).all()))
    except (KeyError, TypeError, AttributeError):
        return False


def cached_features(key: dict, num_features: int, compute: Callable[[], Tensor],
                    directory: Path | None = None) -> tuple[Tensor, str]:
    """Real features ``(n, d)`` from the cache, or from ``compute()`` (then cached). Returns (features, status)
    with status ``hit``, ``miss`` or ``rejected`` (a file was there but could not be trusted)."""
    directory = directory or cache_dir()
    path = directory / f"{key.get('data', 'data')}-{key.get('split', 'split')}-{key_hash(key)[:16]}.pt"
    status = "miss"
    if path.is_file():
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            entry = None
        if entry is not None and _valid(entry, key, num_features):
            return entry["features"], "hit"
        status = "rejected"
    feats = compute().float().cpu()
    atomic_torch_save({"key": key, "n": int(feats.shape[0]), "features": feats}, path)
    return feats, status
