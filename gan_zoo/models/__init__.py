"""One registered LightningModule per GAN. Importing this package registers them all; ``get_model(name)`` builds
one by name and ``list_models()`` lists the names."""

from __future__ import annotations

from typing import Iterable

from gan_zoo.models.dcgan import DCGAN
from gan_zoo.models.lsgan import LSGAN
from gan_zoo.models.pggan import PGGAN
from gan_zoo.models.selfgan import SelfGAN
from gan_zoo.models.semisup import SemiSupervisedGAN
from gan_zoo.models.bigan import BiGAN, BigBiGAN
from gan_zoo.models.egan import EGAN
from gan_zoo.models.ensemble_sgan import EnsembleSGAN
from gan_zoo.registry import MODELS

__all__ = ["BiGAN", "BigBiGAN", "DCGAN", "EGAN", "EnsembleSGAN", "LSGAN", "PGGAN", "SelfGAN", "SemiSupervisedGAN",
           "get_model", "get_model_class", "list_models"]


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by fnmatch patterns."""
    return MODELS.names(include, exclude)


def get_model_class(name: str) -> type:
    """The registered class for ``name`` (case-insensitive); an unknown name lists the valid ones."""
    return MODELS.get(name)


def get_model(name: str, **hparams):
    """Build the model registered as ``name`` with the given hyperparameters."""
    return get_model_class(name)(**hparams)
