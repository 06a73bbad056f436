"""CIFAR-10 from torchvision's on-disk layout (``<root>/cifar-10-batches-py/``): 50,000 train + 10,000 test, 32x32 RGB.

The batch files are pickles, so reading one could run code. Two checks stand in the way: each file's md5 must be the
published one (``MD5``, the values torchvision checks), and the file is read with ``BatchUnpickler``, which builds
nothing but numpy arrays, lists, dicts and strings (any other global is refused).
"""

from __future__ import annotations

import hashlib
import io
import pickle
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor

from gan_zoo.datamodules.base import (DataError, DataNotFoundError, GANDataModule, candidate_roots, download_allowed,
                              register_datamodule)

FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
ARCHIVE = "cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)"

# md5 of each batch file of cifar-10-python.tar.gz, as published and checked by torchvision
# (torchvision/datasets/cifar.py, CIFAR10.train_list / test_list).
MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

# The only globals a CIFAR-10 batch pickle references: numpy's array reconstruction (named numpy.core.multiarray in
# the original Python 2 files, numpy._core.multiarray when written by numpy 2), the ndarray class and dtype.
_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (a Python 2 pickle, read as latin1): numpy arrays, lists, dicts and strings only;
    any other global raises ``DataError`` naming the file and the global."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")
        self.path = path

    def find_class(self, module: str, name: str):
        obj = ALLOWED_GLOBALS.get((module, name))
        if obj is None:
            raise DataError(f"cifar10: {self.path} refers to {module}.{name}, which a CIFAR-10 batch never holds "
                            f"(only numpy arrays, lists and strings): refused, nothing was run. Delete the folder "
                            f"and extract it again from {ARCHIVE}")
        return obj

    def persistent_load(self, pid):
        raise DataError(f"cifar10: {self.path} holds a persistent reference, which a CIFAR-10 batch never holds: "
                        f"refused. Delete the folder and extract it again from {ARCHIVE}")


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` of one batch file, after checking its md5 against
    ``MD5``; ``DataError`` naming the file for a wrong md5, a forbidden global or a malformed batch."""
    blob = path.read_bytes()  # checked and parsed from the same bytes
    expected, found = MD5.get(path.name), hashlib.md5(blob, usedforsecurity=False).hexdigest()
    if found != expected:
        raise DataError(f"cifar10: {path} has md5 {found}, expected {expected}: the file is corrupt, truncated or not "
                        f"CIFAR-10's; delete it and download and extract {ARCHIVE} again")
    try:
        entry = BatchUnpickler(io.BytesIO(blob), path).load()
    except DataError:
        raise
    except Exception as e:  # truncated or malformed pickle
        detail = (str(e).splitlines() or [""])[0]
        raise DataError(f"cifar10: cannot read {path} ({type(e).__name__}: {detail}); extract it again from "
                        f"{ARCHIVE}") from e
    data = entry.get("data") if isinstance(entry, dict) else None
    labels = entry.get("labels") if isinstance(entry, dict) else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
            and isinstance(labels, list) and len(labels) == len(data)
            and all(type(v) is int and 0 <= v < 10 for v in labels)):
        raise DataError(f"cifar10: {path} is not a CIFAR-10 batch (a dict with 'data': uint8 (N, 3072) and "
                        f"'labels': N ints in 0..9); extract it again from {ARCHIVE}")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


@register_datamodule("cifar10")
class CIFAR10DataModule(GANDataModule):
    """CIFAR-10 (needs torchvision's files in a data root, or the internet for a torchvision download)."""

    native_resolution = 32
    native_channels = 3
    num_classes = 10

    def locate(self) -> Path:
        roots = candidate_roots(self.data_dir)
        needed = [f for files in SPLIT_FILES.values() for f in files]
        for root in roots:
            for d in (root / FOLDER, root):
                if all((d / f).is_file() for f in needed):
                    return d
        note = "downloads are disabled"
        if download_allowed(self.download):
            try:
                # torchvision checks the archive's and every file's md5 before it unpickles anything
                torchvision.datasets.CIFAR10(str(roots[0]), train=True, download=True)
                return roots[0] / FOLDER
            except Exception as e:
                note = f"a torchvision download into {roots[0]} failed ({type(e).__name__}: {e})"
        looked = "\n  ".join(str(r / FOLDER) for r in roots)
        raise DataNotFoundError(
            f"cifar10: torchvision's '{FOLDER}' folder ({', '.join(needed)}) was not found in:\n  {looked}\n"
            f"{note}. Download and extract cifar-10-python.tar.gz into --data-dir (or $GAN_ZOO_DATA), or run once "
            "online to let torchvision fetch it.")

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in SPLIT_FILES:
            raise ValueError(f"cifar10 has splits 'train' and 'test', not {split!r}")
        folder = self.locate()
        xs, ys = zip(*(read_batch(folder / name) for name in SPLIT_FILES[split]))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
