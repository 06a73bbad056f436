"""gan_zoo: generative adversarial networks as PyTorch Lightning modules.

Public API::

    gan_zoo.list_models()                 # registered model names
    gan_zoo.get_model("dcgan", **hparams)  # a LightningModule ready to fit
"""

from gan_zoo.registry import get_model, list_models

__all__ = ["list_models", "get_model"]
__version__ = "0.1.0"
