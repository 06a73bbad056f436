"""gan_zoo: generative adversarial networks as PyTorch Lightning modules.

Public API::

    gan_zoo.list_models()                 # registered model names
    gan_zoo.get_model("dcgan", **hparams)  # a LightningModule ready to fit
    gan_zoo.list_pretrained()             # the zoo: pretrained entries (and the metric extractors)
    gan_zoo.load_pretrained("dcgan.fmnist32").sample(64, seed=0)
"""

from pathlib import Path as _Path

if not (_Path(__file__).parent / "datamodules").is_dir():
    # A source checkout: the data modules live in the repository's top-level datamodules/ folder, which the wheel
    # installs as gan_zoo/datamodules (pyproject.toml); make them gan_zoo.datamodules here too.
    __path__.append(str(_Path(__file__).resolve().parent.parent))  # noqa: F821  (a package's __path__)

import gan_zoo.strategies  # noqa: F401  (registers the "gan_ddp" strategy with Lightning)
from gan_zoo.pretrained import list_pretrained, load_pretrained
from gan_zoo.models import get_model, list_models

__all__ = ["list_models", "get_model", "list_pretrained", "load_pretrained"]
__version__ = "0.1.0"
