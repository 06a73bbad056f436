"""LightningDataModules for every data set, over one shared base (``gan_zoo.datamodules.base.GANDataModule``).

``get_datamodule(name, **kwargs)`` builds one by name; ``list_datamodules()`` lists the names.
"""

from gan_zoo.datamodules.base import (DataError, DataNotFoundError, GANDataModule, ResumableLoader, get_datamodule,
                              get_datamodule_class, list_datamodules)
from gan_zoo.datamodules import celeba, cifar10, image_folder, lsun, mnist, toy  # noqa: F401,E402  (register)

__all__ = ["GANDataModule", "ResumableLoader", "DataError", "DataNotFoundError", "get_datamodule", "get_datamodule_class",
           "list_datamodules"]
