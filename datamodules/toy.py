"""2D Gaussian-mixture toys for mode-collapse experiments (PacGAN / VEEGAN protocol).

- ``ring8``: 8 modes evenly spaced on a circle of radius 1, std 0.01.
- ``grid25``: 25 modes at {-4, -2, 0, 2, 4}^2, std 0.05.

``x`` is a float ``(N, 2)`` tensor (not normalised: metrics compare against the true modes), ``y`` the mode index.
The training set is a fixed draw of ``num_points`` points (100,000 by default) from ``seed``; the test split is an
independent draw of 2,500 points.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gan_zoo.datamodules.base import GANDataModule, register_datamodule, subset_indices


def ring_modes(k: int = 8, radius: float = 1.0) -> Tensor:
    angles = torch.arange(k, dtype=torch.float64) * (2 * math.pi / k)
    return torch.stack([radius * angles.cos(), radius * angles.sin()], 1).float()  # (k, 2)


def grid_modes(values=(-4.0, -2.0, 0.0, 2.0, 4.0)) -> Tensor:
    v = torch.tensor(values)
    return torch.cartesian_prod(v, v)  # (25, 2)


class _ToyDataModule(GANDataModule):
    is_image = False
    data_dim = 2
    native_resolution = 0
    native_channels = 0
    num_classes = 0
    std = 0.0

    def __init__(self, *args, num_points: int = 100_000, **kwargs):
        kwargs.setdefault("resolution", 0)
        super().__init__(*args, **kwargs)
        self.num_points = int(num_points)
        self.resolution = self.channels = 0

    @classmethod
    def modes(cls) -> Tensor:
        raise NotImplementedError

    def locate(self) -> None:
        return None

    def draw(self, n: int, seed: int) -> tuple[Tensor, Tensor]:
        g = torch.Generator().manual_seed(seed)
        m = self.modes()
        y = torch.randint(len(m), (n,), generator=g)
        return m[y] + self.std * torch.randn(n, 2, generator=g), y

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        if split == "train":
            return self.draw(self.num_points, self.seed)
        if split == "test":
            return self.draw(2500, 10_000_019 + self.seed)
        raise ValueError(f"{self.name} has splits 'train' and 'test', not {split!r}")

    def real_images(self, split: str = "test", n: int | None = None) -> Tensor:
        x, _ = self.split(split)
        return x[subset_indices(len(x), n)]

    def describe(self) -> str:
        return f"{self.name}: {self.num_points} 2D points from {len(self.modes())} modes (std {self.std})"


@register_datamodule("ring8")
class Ring8DataModule(_ToyDataModule):
    """8 Gaussians on a unit circle, std 0.01."""

    std = 0.01

    @classmethod
    def modes(cls) -> Tensor:
        return ring_modes(8, 1.0)


@register_datamodule("grid25")
class Grid25DataModule(_ToyDataModule):
    """25 Gaussians on a 5x5 grid with spacing 2, std 0.05."""

    std = 0.05

    @classmethod
    def modes(cls) -> Tensor:
        return grid_modes()
