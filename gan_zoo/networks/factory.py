"""Pick the generator / discriminator pair for the data: DCGAN convnets for images, MLPs for vectors (the toys)."""

from __future__ import annotations

from torch import nn

from gan_zoo.networks.dcgan import DCGANDiscriminator, DCGANGenerator
from gan_zoo.networks.mlp import MLPDiscriminator, MLPGenerator


def gan_networks(*, channels: int, resolution: int, data_dim: int, latent_dim: int, ngf: int = 64, ndf: int = 64,
                 hidden: int = 128, upsample: str = "deconv", d_batch_norm: bool = True, minibatch_kernels: int = 0,
                 minibatch_kernel_dim: int = 5) -> tuple[nn.Module, nn.Module]:
    """``(G, D)``: MLPs of width ``hidden`` when ``data_dim > 0``, else DCGAN networks (the image options)."""
    if data_dim:
        if minibatch_kernels:
            raise ValueError("minibatch discrimination is only implemented for the image discriminator")
        return MLPGenerator(latent_dim, data_dim, hidden), MLPDiscriminator(data_dim, hidden)
    return (DCGANGenerator(latent_dim, channels, resolution, ngf, upsample),
            DCGANDiscriminator(channels, resolution, ndf, d_batch_norm, minibatch_kernels, minibatch_kernel_dim))
