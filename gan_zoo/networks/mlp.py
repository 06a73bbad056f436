"""MLP generator and discriminator for vector data (the 2D toys)."""

from __future__ import annotations

from torch import Tensor, nn


def _mlp(sizes: list[int], act) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """z (N, latent_dim) -> points (N, data_dim); ReLU hidden layers, linear output."""

    def __init__(self, latent_dim: int = 2, data_dim: int = 2, hidden: int = 128, layers: int = 3):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = _mlp([latent_dim] + [hidden] * layers + [data_dim], nn.ReLU)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """points (N, data_dim) -> raw scores (N,); LeakyReLU 0.2 hidden layers."""

    def __init__(self, data_dim: int = 2, hidden: int = 128, layers: int = 3, out_features: int = 1):
        super().__init__()
        self.out_features = out_features
        self.net = _mlp([data_dim] + [hidden] * layers + [out_features], lambda: nn.LeakyReLU(0.2))

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return out.squeeze(1) if self.out_features == 1 else out
