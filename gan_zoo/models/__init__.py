"""One registered LightningModule per GAN. Importing this package registers them all."""

from gan_zoo.models.dcgan import DCGAN
from gan_zoo.models.lsgan import LSGAN

__all__ = ["DCGAN", "LSGAN"]
