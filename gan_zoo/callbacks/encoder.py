"""Callbacks for models with an encoder (BiGAN, BigBiGAN): reconstruction grids and the linear probe."""

from __future__ import annotations

import sys

import torch

from gan_zoo.callbacks.periodic import EveryNImages
from gan_zoo.callbacks.samples import SampleGrid


class ReconstructionGrid(SampleGrid):
    """Real test images and their reconstructions ``G(E(x))``: rows of 8 reals, each above its row of
    reconstructions; ``recon_<images seen>.png`` every ``every_n_images`` and ``recon_final.png`` at the end.

    Args:
        dirpath: output directory.
        every_n_images: images seen between grids.
        n: number of real images (a multiple of 8).
        split: the split the real images come from (fixed images, the same in every grid).
    """

    nrow = 8

    def __init__(self, dirpath, every_n_images: int = 10_000, n: int = 32, split: str = "test"):
        super().__init__(dirpath, every_n_images, key="samples/reconstruction", prefix="recon", final="recon_final")
        if n % 8:
            raise ValueError(f"n must be a multiple of 8, got {n}")
        self.n, self.split = n, split
        self._real: torch.Tensor | None = None

    def images(self, trainer, pl_module) -> torch.Tensor:
        if self._real is None:
            self._real = trainer.datamodule.real_images(self.split, self.n)
        real = self._real.to(pl_module.device)
        rec = pl_module.reconstruct(real)
        rows = [t for i in range(0, self.n, 8) for t in (real[i : i + 8], rec[i : i + 8])]
        return torch.cat(rows)


class LinearProbe(EveryNImages):
    """Linear-probe test accuracy of the encoder at the end of the fit (and every ``every_n_images``):
    ``metrics/probe_acc`` (pooled encoder features) and ``metrics/probe_z_acc`` (the latent ``E(x)``).

    Args:
        every_n_images: images seen between probes (0 = only at the end).
        n_train: training images for the probe (default: the whole train split).
    """

    def __init__(self, every_n_images: int = 0, n_train: int | None = None):
        super().__init__(every_n_images)
        self.n_train = n_train
        self.history: list[dict] = []

    def run(self, trainer, pl_module, final: bool) -> None:
        from gan_zoo.metrics.probe import probe_model

        res = probe_model(pl_module, trainer.datamodule, self.n_train, device=pl_module.device)
        logged = {f"metrics/{k}_acc": v["test_acc"] for k, v in res.items()}
        logged["train/kimg"] = pl_module.images_seen / 1000
        self.history.append(logged)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=pl_module.images_seen)
            print("linear probe test accuracy: " + ", ".join(
                f"{k} {v['test_acc']:.2f} % ({v['dim']}-d)" for k, v in res.items()), file=sys.stderr)
