"""One registered LightningModule per GAN. Importing this package registers them all."""

from gan_zoo.models.dcgan import DCGAN
from gan_zoo.models.lsgan import LSGAN
from gan_zoo.models.pggan import PGGAN
from gan_zoo.models.selfgan import SelfGAN
from gan_zoo.models.semisup import SemiSupervisedGAN
from gan_zoo.models.bigan import BiGAN, BigBiGAN
from gan_zoo.models.egan import EGAN
from gan_zoo.models.sgan import EnsembleSGAN

__all__ = ["BiGAN", "BigBiGAN", "DCGAN", "EGAN", "EnsembleSGAN", "LSGAN", "PGGAN", "SelfGAN", "SemiSupervisedGAN"]
