"""Regularisers a model owns, built from its hyperparameters: what they compute, apart from which networks a model
applies them to (the model decides that). The R1 penalty is a loss term: ``gan_zoo.losses.r1_penalty``."""

from __future__ import annotations

import torch
from torch import Tensor


class InstanceNoise:
    """Instance noise (Sønderby et al., "Amortised MAP Inference for Image Super-resolution", 2016; as a GAN trick in
    ctmakro, "Fast LSGAN in Canton (TensorFlow)", 2017): Gaussian noise added to what a discriminator sees, real and
    fake alike, with std ``std`` at the start, annealed linearly to 0 over ``images`` images seen. It blurs the data
    and the samples alike, so D's score varies smoothly across the gaps between modes and a generator gets a gradient
    towards modes it has no samples near.

    A model builds one from its ``instance_noise`` and ``instance_noise_images`` hyperparameters, reads
    ``sigma(images_seen)`` once per step and passes each discriminator input it chooses through ``apply``.

    Args:
        std: the noise std at the start, >= 0 (0 = off).
        images: images seen over which the std anneals linearly to 0, >= 0 (0 = off).
    """

    def __init__(self, std: float = 0.0, images: int = 100_000):
        if std < 0 or images < 0:
            raise ValueError("instance_noise and instance_noise_images must be >= 0")
        self.std = std
        self.images = images

    def __repr__(self) -> str:
        return f"InstanceNoise(std={self.std}, images={self.images})"

    def sigma(self, images_seen: int) -> float:
        """The std after ``images_seen`` images (annealed linearly to 0; 0 when off)."""
        if self.std == 0 or self.images == 0:
            return 0.0
        return self.std * max(0.0, 1.0 - images_seen / self.images)

    @staticmethod
    def apply(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
        """``x + sigma * eps``, ``eps`` standard normal from the global RNG or from ``generator`` (drawn on the
        generator's device); ``x`` itself where ``sigma`` <= 0 (nothing is drawn)."""
        if sigma <= 0:
            return x
        if generator is None:
            return x + sigma * torch.randn_like(x)
        eps = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
        return x + sigma * eps.to(x.device)
