"""Mode coverage on the 2D toys, with a scatter plot, every N images and at the end of a fit."""

from __future__ import annotations

import sys
from pathlib import Path

import torchvision.transforms.functional as TF
from PIL import Image

from gan_zoo.callbacks.periodic import EveryNImages
from gan_zoo.callbacks.samples import log_image
from gan_zoo.metrics.toy import mode_metrics, scatter_png


class ToyModeMetrics(EveryNImages):
    """Log ``toy/modes``, ``toy/hq_percent`` and ``toy/reverse_kl`` on ``n_samples`` (2,500) samples and write
    ``<dirpath>/toy_<images seen>.png`` (logged to W&B / TensorBoard).

    Args:
        dirpath: where the scatter plots go.
        n_samples: samples per evaluation (2,500 in the protocol).
        every_n_images: images seen between evaluations (0 = only at the end).
        seed: sampling seed.
    """

    def __init__(self, dirpath: str | Path, n_samples: int = 2500, every_n_images: int = 0, seed: int = 0):
        super().__init__(every_n_images)
        self.dirpath, self.n_samples, self.seed = Path(dirpath), n_samples, seed
        self.history: list[dict] = []

    def evaluate(self, trainer, pl_module) -> dict:
        dm = trainer.datamodule
        samples = pl_module.sample(self.n_samples, seed=self.seed)
        res = mode_metrics(samples, dm.modes(), dm.std)
        logged = {"toy/modes": float(res["modes"]), "toy/hq_percent": 100.0 * res["hq"],
                  "toy/reverse_kl": res["reverse_kl"], "train/kimg": pl_module.images_seen / 1000}
        self.history.append(logged)
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
            path = self.dirpath / f"toy_{pl_module.images_seen:09d}.png"
            scatter_png(samples, dm.modes(), path)
            image = TF.to_tensor(Image.open(path))
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=pl_module.images_seen)
                log_image(logger, "toy/scatter", image, path, pl_module.images_seen)
            print(f"toy: {res['modes']}/{res['num_modes']} modes, {100 * res['hq']:.1f}% high quality, "
                  f"reverse KL {res['reverse_kl']:.3f}", file=sys.stderr)
        return logged

    def run(self, trainer, pl_module, final: bool) -> None:
        self.evaluate(trainer, pl_module)
