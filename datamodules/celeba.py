"""CelebA (aligned and cropped) from torchvision's on-disk layout.

``<root>/celeba/img_align_celeba/*.jpg`` plus ``<root>/celeba/list_eval_partition.txt`` (0 train, 1 valid, 2 test).
Images (178x218) are centre-cropped to 140x140, then resized (the crop of the DCGAN/PGGAN CelebA experiments).
"""

from __future__ import annotations

from pathlib import Path

from gan_zoo.datamodules.base import DataNotFoundError, candidate_roots, register_datamodule
from gan_zoo.datamodules.image_folder import FileImageDataModule

PARTITIONS = {"train": "0", "valid": "1", "test": "2"}


@register_datamodule("celeba")
class CelebADataModule(FileImageDataModule):
    """CelebA faces, 64x64 RGB by default (needs the files: torchvision's Google-Drive download is unreliable)."""

    native_resolution = 64
    native_channels = 3
    center_crop = 140

    def locate(self) -> Path:
        roots = candidate_roots(self.data_dir)
        for root in roots:
            for d in (root / "celeba", root):
                if (d / "img_align_celeba").is_dir() and (d / "list_eval_partition.txt").is_file():
                    return d
        looked = "\n  ".join(str(r / "celeba") for r in roots)
        raise DataNotFoundError(
            "celeba: 'img_align_celeba/' and 'list_eval_partition.txt' were not found in:\n  " + looked +
            "\nDownload img_align_celeba.zip and list_eval_partition.txt from the CelebA site and extract them into "
            "<data-dir>/celeba/ (torchvision's layout).")

    def files(self, split: str) -> tuple[list[Path], list[int]]:
        if split not in PARTITIONS:
            raise ValueError(f"celeba has splits {', '.join(PARTITIONS)}, not {split!r}")
        d = self.locate()
        paths = []
        for line in (d / "list_eval_partition.txt").read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[1] == PARTITIONS[split]:
                paths.append(d / "img_align_celeba" / parts[0])
        missing = [p for p in paths[:10] if not p.is_file()]
        if not paths or missing:
            raise DataNotFoundError(f"celeba: {split} images missing under {d / 'img_align_celeba'} "
                                    f"(e.g. {missing[0].name if missing else 'none listed'})")
        return paths, [-1] * len(paths)
