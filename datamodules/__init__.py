"""LightningDataModules for every data set, over one shared base (``gan_zoo.datamodules.base.GANDataModule``).

Importing this package registers them all; ``get_datamodule(name, **kwargs)`` builds one by name and
``list_datamodules()`` lists the names.
"""

from gan_zoo.datamodules.base import DATASETS, DataError, DataNotFoundError, GANDataModule, ResumableLoader
from gan_zoo.datamodules import celeba, cifar10, image_folder, lsun, mnist, toy  # noqa: F401  (register)

__all__ = ["GANDataModule", "ResumableLoader", "DataError", "DataNotFoundError", "get_datamodule", "get_datamodule_class",
           "list_datamodules"]


def list_datamodules() -> list[str]:
    """Sorted names of the registered data sets."""
    return DATASETS.names()


def get_datamodule_class(name: str) -> type:
    """The registered class for ``name`` (case-insensitive); an unknown name lists the valid ones."""
    return DATASETS.get(name)


def get_datamodule(name: str, **kwargs) -> GANDataModule:
    """Build the data set registered as ``name``."""
    return get_datamodule_class(name)(**kwargs)
