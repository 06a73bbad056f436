"""gan_zoo: generative adversarial networks as PyTorch Lightning modules.

Public API::

    gan_zoo.list_models()                 # registered model names
    gan_zoo.get_model("dcgan", **hparams)  # a LightningModule ready to fit
    gan_zoo.list_pretrained()             # the zoo: pretrained entries (and the metric extractors)
    gan_zoo.load_pretrained("dcgan.fmnist32").sample(64, seed=0)
"""

import gan_zoo.strategies  # noqa: F401  (registers the "gan_ddp" strategy with Lightning)
from gan_zoo.pretrained import list_pretrained, load_pretrained
from gan_zoo.registry import get_model, list_models

__all__ = ["list_models", "get_model", "list_pretrained", "load_pretrained"]
__version__ = "0.1.0"
