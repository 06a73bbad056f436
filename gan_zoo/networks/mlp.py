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


class MLPImageGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, C, H, W) in [-1, 1] through fully connected layers only: the
    permutation-invariant generator of BiGAN's MNIST experiments (Donahue et al. 2016), two hidden layers of
    ``hidden`` units with batch norm and ReLU, then ``tanh``.

    Args:
        latent_dim: size of z.
        channels: image channels.
        resolution: image side.
        hidden: width of the hidden layers.
    """

    def __init__(self, latent_dim: int = 50, channels: int = 1, resolution: int = 28, hidden: int = 1024):
        super().__init__()
        self.latent_dim, self.shape = latent_dim, (channels, resolution, resolution)
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True),
            nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(True),
            nn.Linear(hidden, channels * resolution * resolution), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


def image_mlp_trunk(channels: int, resolution: int, hidden: int, batch_norm: bool) -> nn.Sequential:
    """images (N, C, H, W) -> features (N, hidden): flatten, then two fully connected layers with LeakyReLU 0.2
    (batch norm before the second activation when ``batch_norm``); the x-side of BiGAN's permutation-invariant
    encoder and discriminator."""
    lrelu = lambda: nn.LeakyReLU(0.2, True)  # noqa: E731
    second = [nn.Linear(hidden, hidden, bias=not batch_norm)] + ([nn.BatchNorm1d(hidden)] if batch_norm else [])
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * resolution * resolution, hidden), lrelu(), *second,
                         lrelu())
