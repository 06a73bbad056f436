"""Any folder tree of images, and the disk-backed data sets built on it (CelebA, LSUN).

``image_folder``: every image file under ``data_dir`` (recursively). If the top level has ``train/`` and ``test/``
folders they are the splits. Labels are the index of the first-level class folder when images sit in class
folders, otherwise -1. Sets up to ``max_in_memory`` bytes at the target resolution are decoded once into a uint8
tensor (with a progress bar); larger ones are decoded per batch by DataLoader workers.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor
from tqdm.auto import tqdm

from gan_zoo.datamodules.base import (DataError, DataNotFoundError, GANDataModule, ResumableLoader, register_datamodule, subset_indices,
                              to_float)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".ppm", ".pgm", ".tif", ".tiff")


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def decode_image(path: Path, resolution: int, channels: int, center_crop: int | None = None) -> Tensor:
    """Decode one file to uint8 ``(channels, resolution, resolution)``: optional centre crop, then a square centre
    crop and an antialiased resize."""
    try:
        with Image.open(path) as im:
            im = im.convert("L" if channels == 1 else "RGB")  # decodes the whole file
            w, h = im.size
            side = min(center_crop or min(w, h), w, h)
            left, top = (w - side) // 2, (h - side) // 2
            im = im.crop((left, top, left + side, top + side))
            if side != resolution:
                im = im.resize((resolution, resolution), Image.Resampling.LANCZOS)
            t = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
        reason = " ".join(str(e).replace(f" {str(path)!r}", "").split()) or type(e).__name__  # the path once
        raise DataError(f"cannot decode image {path}: {reason}; remove or replace the file") from e
    return t.view(resolution, resolution, channels).permute(2, 0, 1).contiguous()


class FileImageDataset(torch.utils.data.Dataset):
    """Files decoded on access (disk-backed data sets): item -> {"x": float (C, R, R) in [-1, 1], "y": label}."""

    def __init__(self, files: list[Path], labels: list[int], resolution: int, channels: int,
                 center_crop: int | None = None):
        self.files, self.labels = files, labels
        self.resolution, self.channels, self.center_crop = resolution, channels, center_crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> dict:
        x = decode_image(self.files[i], self.resolution, self.channels, self.center_crop)
        return {"x": to_float(x), "y": torch.tensor(self.labels[i])}


class FileImageDataModule(GANDataModule):
    """Base of data sets stored as image files. Subclasses implement ``files(split) -> (paths, labels)``.

    Args (beyond GANDataModule's):
        max_in_memory: decode the split into memory when it takes at most this many bytes at the target size.
    """

    native_resolution = 64
    native_channels = 3
    center_crop: int | None = None

    def __init__(self, *args, max_in_memory: int = 2 * 1024 ** 3, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_in_memory = max_in_memory

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        raise NotImplementedError

    def _in_memory(self, n: int) -> bool:
        return n * self.channels * self.resolution ** 2 <= self.max_in_memory

    def split(self, split: str = "train") -> tuple[Tensor, Tensor]:
        if split not in self._splits:
            paths, labels = self.files(split)
            if not self._in_memory(len(paths)):
                raise MemoryError(f"{self.name} {split}: {len(paths)} images exceed max_in_memory; "
                                  "iterate it with the disk loader")

            xs = [decode_image(p, self.resolution, self.channels, self.center_crop)
                  for p in tqdm(paths, desc=f"decoding {self.name}/{split}", disable=len(paths) < 2000)]
            self._splits[split] = (torch.stack(xs), torch.tensor(labels, dtype=torch.long))
        return self._splits[split]

    def setup(self, stage: str | None = None) -> None:
        paths, _ = self.files("train")
        if self._in_memory(len(paths)):
            self.split("train")

    def real_images(self, split: str = "test", n: int | None = None) -> Tensor:
        paths, labels = self.files(split)
        if self._in_memory(len(paths)):
            return super().real_images(split, n)
        ds = FileImageDataset(paths, labels, self.resolution, self.channels, self.center_crop)
        return torch.stack([ds[i]["x"] for i in subset_indices(len(paths), n).tolist()])

    def train_dataloader(self) -> ResumableLoader:
        paths, labels = self.files("train")
        if self._in_memory(len(paths)):
            return super().train_dataloader()
        if self.num_labeled:
            raise ValueError(f"{self.name}: semi-supervised mode needs an in-memory data set")
        rank, world = self.rank_world()
        ds = FileImageDataset(paths, labels, self.resolution, self.channels, self.center_crop)
        return ResumableLoader(n=len(ds), batch_size=self.batch_size, seed=self.seed, dataset=ds, rank=rank,
                               world_size=world, num_workers=self.num_workers, pin_memory=torch.cuda.is_available())


@register_datamodule("image_folder")
class ImageFolderDataModule(FileImageDataModule):
    """Any folder tree of images (``--data-dir`` required); optional ``train/`` and ``test/`` subfolders."""

    def locate(self) -> Path:
        if not self.data_dir:
            raise DataNotFoundError("image_folder: give the folder of images with --data-dir")
        root = Path(self.data_dir).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(f"image_folder: {root} is not a directory")
        return root

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        root = self.locate()
        has_splits = (root / "train").is_dir()
        if split not in ("train", "test"):
            raise ValueError(f"image_folder has splits 'train' and 'test', not {split!r}")
        folder = root / split if has_splits else root
        if split == "test" and not has_splits:
            raise DataNotFoundError(f"image_folder: {root} has no test/ folder (put the splits in train/ and test/)")
        paths = list_images(folder)
        if not paths:
            raise DataNotFoundError(f"image_folder: no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
        classes = sorted({p.relative_to(folder).parts[0] for p in paths if len(p.relative_to(folder).parts) > 1})
        if classes and all(len(p.relative_to(folder).parts) > 1 for p in paths):
            index = {c: i for i, c in enumerate(classes)}
            labels = [index[p.relative_to(folder).parts[0]] for p in paths]
        else:
            labels = [-1] * len(paths)
        return paths, labels
