"""One registered LightningModule per GAN. Importing this package registers them all."""

from gan_zoo.models.dcgan import DCGAN
from gan_zoo.models.lsgan import LSGAN
from gan_zoo.models.pggan import PGGAN
from gan_zoo.models.selfgan import SelfGAN
from gan_zoo.models.semisup import SemiSupervisedGAN

__all__ = ["DCGAN", "LSGAN", "PGGAN", "SelfGAN", "SemiSupervisedGAN"]
