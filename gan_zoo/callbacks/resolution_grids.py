"""A sample grid for every resolution a progressive GAN finishes."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torchvision.utils import save_image

from gan_zoo.callbacks.samples import image_grid, log_image


class ResolutionGrids(L.Callback):
    """When the level grows (and at the end), write ``res<R>.png``: the fixed-noise samples of the EMA generator at
    the resolution just finished (alpha 1), upsampled (nearest) to the final size so grids compare side by side."""

    def __init__(self, dirpath: str | Path, key: str = "samples/resolution"):
        self.dirpath, self.key = Path(dirpath), key
        self._level: int | None = None

    @torch.no_grad()
    def write(self, trainer, pl_module, level: int) -> None:
        if not trainer.is_global_zero:
            return
        imgs = pl_module.generate(pl_module.fixed_z, level=level, alpha=1.0)
        final = pl_module.hparams.resolution
        if imgs.shape[-1] != final:
            imgs = F.interpolate(imgs, size=(final, final), mode="nearest")
        grid = image_grid(imgs)
        self.dirpath.mkdir(parents=True, exist_ok=True)
        res = 4 * 2 ** level
        path = self.dirpath / f"res{res:04d}.png"
        save_image(grid, path)
        for logger in trainer.loggers:
            log_image(logger, self.key, grid, path, pl_module.images_seen)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        level = pl_module.schedule.at(pl_module.images_seen).level
        if self._level is not None and level > self._level:
            self.write(trainer, pl_module, self._level)
        self._level = level

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, pl_module.schedule.at(pl_module.images_seen).level)
