"""CIFAR-10 from torchvision's on-disk layout (``<root>/cifar-10-batches-py/``): 50,000 train + 10,000 test, 32x32 RGB."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from datamodules.base import DataNotFoundError, GANDataModule, candidate_roots, download_allowed, register_datamodule

FOLDER = "cifar-10-batches-py"
SPLIT_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


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
                import torchvision

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
        xs, ys = [], []
        for name in SPLIT_FILES[split]:
            with open(folder / name, "rb") as f:
                entry = pickle.load(f, encoding="latin1")  # torchvision's own format: plain dicts of arrays
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64))
        return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
