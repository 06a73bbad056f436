"""LSUN scenes from torchvision's on-disk layout: ``<root>/<category>_train_lmdb`` (and ``_val_lmdb``).

Each LMDB maps keys to encoded images (webp/jpeg). Reading needs the ``lmdb`` package (``pip install lmdb``).
The images are decoded per batch by DataLoader workers (centre square crop, then resize); LSUN is too large for
memory.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image
from torch import Tensor

from gan_zoo.datamodules.base import (DataNotFoundError, GANDataModule, ResumableLoader, candidate_roots, register_datamodule,
                              subset_indices, to_float)


def _decode_bytes(data: bytes, resolution: int, channels: int) -> Tensor:
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("L" if channels == 1 else "RGB")
        w, h = im.size
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
        t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    return t.view(resolution, resolution, channels).permute(2, 0, 1).contiguous()


class LMDBImages(torch.utils.data.Dataset):
    """An LMDB of encoded images; opened lazily in each worker process."""

    def __init__(self, path: Path, resolution: int, channels: int):
        import lmdb  # optional dependency: only LSUN needs it

        self.path, self.resolution, self.channels = path, resolution, channels
        with lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False) as env:
            with env.begin() as txn:
                self.keys = [k for k, _ in txn.cursor()]
        self._env = None

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        import lmdb  # optional dependency: only LSUN needs it

        if self._env is None:
            self._env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False, meminit=False)
        with self._env.begin() as txn:
            data = txn.get(self.keys[i])
        return {"x": to_float(_decode_bytes(data, self.resolution, self.channels)), "y": torch.tensor(-1)}


@register_datamodule("lsun")
class LSUNDataModule(GANDataModule):
    """LSUN (one category, ``category``: bedroom by default), 64x64 RGB by default.

    Args (beyond GANDataModule's):
        category: LSUN scene category, e.g. bedroom, church_outdoor.
    """

    native_resolution = 64
    native_channels = 3

    def __init__(self, *args, category: str = "bedroom", **kwargs):
        super().__init__(*args, **kwargs)
        self.category = category

    def _lmdb_dir(self, split: str) -> Path:
        suffix = {"train": "train", "test": "val"}.get(split)
        if suffix is None:
            raise ValueError(f"lsun has splits 'train' and 'test' (LSUN's val), not {split!r}")
        roots = candidate_roots(self.data_dir)
        name = f"{self.category}_{suffix}_lmdb"
        for root in roots:
            for d in (root / name, root / "lsun" / name):
                if (d / "data.mdb").is_file():
                    return d
        looked = "\n  ".join(str(r / name) for r in roots)
        raise DataNotFoundError(f"lsun: '{name}/data.mdb' was not found in:\n  {looked}\nDownload the LSUN "
                                f"'{self.category}' LMDB with the LSUN download script and extract it into --data-dir.")

    def locate(self) -> Path:
        try:
            import lmdb  # noqa: F401  (optional dependency: checked here to say how to get it)
        except ImportError as e:
            raise DataNotFoundError("lsun: reading LSUN needs the lmdb package: `pip install lmdb`") from e
        return self._lmdb_dir("train")

    def _dataset(self, split: str) -> LMDBImages:
        self.locate()
        return LMDBImages(self._lmdb_dir(split), self.resolution, self.channels)

    def setup(self, stage: str | None = None) -> None:
        self.locate()

    def split(self, split: str = "train") -> tuple[Tensor, Tensor]:
        raise MemoryError("lsun is read from disk per batch; use real_images(split, n) for a sample")

    def real_images(self, split: str = "test", n: int | None = None) -> Tensor:
        ds = self._dataset(split)
        return torch.stack([ds[i]["x"] for i in subset_indices(len(ds), n).tolist()])

    def train_dataloader(self) -> ResumableLoader:
        if self.num_labeled:
            raise ValueError("lsun has no labels for semi-supervised mode")
        ds = self._dataset("train")
        rank, world = self.rank_world()
        return ResumableLoader(n=len(ds), batch_size=self.batch_size, seed=self.seed, dataset=ds, rank=rank,
                               world_size=world, num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def describe(self) -> str:
        return f"lsun/{self.category}: {self.channels}x{self.resolution}x{self.resolution} from LMDB"
