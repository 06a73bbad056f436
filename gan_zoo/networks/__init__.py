"""Plain ``nn.Module`` networks (no Lightning imports)."""

from gan_zoo.networks.dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = ["DCGANGenerator", "DCGANDiscriminator"]
