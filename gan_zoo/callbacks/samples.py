"""Sample grids from the fixed noise, as PNG files and in whichever logger is active."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from torchvision.utils import make_grid, save_image

from gan_zoo.callbacks.periodic import EveryNImages


def image_grid(images: torch.Tensor, nrow: int | None = None) -> torch.Tensor:
    """``(N, C, H, W)`` in [-1, 1] -> one ``(C, H', W')`` grid in [0, 1]."""
    n = images.shape[0]
    nrow = nrow or max(1, int(round(n ** 0.5)))
    return make_grid(images.float().cpu(), nrow=nrow, padding=2, normalize=True, value_range=(-1, 1))


def log_image(logger, key: str, grid: torch.Tensor, path: Path, images_seen: int) -> None:
    """Send a grid to W&B or TensorBoard at ``images_seen``; other loggers (CSV, none) only get the PNG file."""
    if isinstance(logger, WandbLogger):
        logger.log_image(key=key, images=[str(path)], step=images_seen, caption=[f"{images_seen / 1000:.1f} kimg"])
    elif isinstance(logger, TensorBoardLogger):
        logger.experiment.add_image(key, grid, global_step=images_seen)


class SampleGrid(EveryNImages):
    """Write a grid of the fixed-noise samples every ``every_n_images`` and at the end of the fit.

    Files: ``<dirpath>/<prefix>_<images seen, 9 digits>.png`` and ``<dirpath>/<final>.png``.
    Only image models (``channels > 0``) make grids; rank 0 writes. Subclasses change what is drawn (``images``).

    Args:
        dirpath: output directory.
        every_n_images: images between two grids (0 = only at the start and the end).
        key: logger key.
        prefix: file name prefix.
        final: file name (without .png) of the end-of-fit grid.
    """

    repeat_at_end = True  # final.png is written even where the fit ends on a periodic grid (as a copy of it)

    nrow: int | None = None

    def __init__(self, dirpath: str | Path, every_n_images: int = 10_000, key: str = "samples/grid",
                 prefix: str = "samples", final: str = "final"):
        super().__init__(every_n_images)
        self.dirpath = Path(dirpath)
        self.key, self.prefix, self.final = key, prefix, final
        self.written: list[Path] = []

    def periodic_name(self, images_seen: int) -> str:
        """The file name of the grid written at ``images_seen``."""
        return f"{self.prefix}_{images_seen:09d}.png"

    def images(self, trainer, pl_module) -> torch.Tensor:
        """The images of one grid, (N, C, H, W) in [-1, 1]."""
        return pl_module.sample_fixed()

    def write(self, trainer, pl_module, name: str) -> Path | None:
        if not trainer.is_global_zero:
            return None
        grid = image_grid(self.images(trainer, pl_module), self.nrow)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / name
        save_image(grid, path)
        for logger in trainer.loggers:
            log_image(logger, self.key, grid, path, pl_module.images_seen)
        self.written.append(path)
        return path

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        if pl_module.images_seen == 0:
            self.write(trainer, pl_module, self.periodic_name(0))

    def run(self, trainer, pl_module, final: bool) -> None:
        last = self.written[-1] if self.written else None
        if final and last is not None and last.name == self.periodic_name(pl_module.images_seen):
            # the fit ended on a periodic grid: final.png is that file, not a second logged copy of it
            if trainer.is_global_zero:
                shutil.copyfile(last, self.dirpath / f"{self.final}.png")
            return
        self.write(trainer, pl_module, f"{self.final}.png" if final else self.periodic_name(pl_module.images_seen))
