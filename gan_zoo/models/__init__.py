"""One registered LightningModule per GAN. Importing this package registers them all."""

from gan_zoo.models.dcgan import DCGAN
from gan_zoo.models.lsgan import LSGAN
from gan_zoo.models.pggan import PGGAN
from gan_zoo.models.selfgan import SelfGAN
from gan_zoo.models.semisup import SemiSupervisedGAN
from gan_zoo.models.bigan import BiGAN, BigBiGAN

__all__ = ["BiGAN", "BigBiGAN", "DCGAN", "LSGAN", "PGGAN", "SelfGAN", "SemiSupervisedGAN"]
