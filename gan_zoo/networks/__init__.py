"""Plain ``nn.Module`` networks (no Lightning imports)."""

from gan_zoo.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_zoo.networks.mlp import MLPDiscriminator, MLPGenerator, MLPImageGenerator

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "MLPGenerator", "MLPDiscriminator", "MLPImageGenerator"]
