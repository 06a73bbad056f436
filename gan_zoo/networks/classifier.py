"""A small CNN classifier for 28x28 grey images: the domain feature extractor behind FID / IS / KID on
Fashion-MNIST and MNIST (``fmnist-cnn``, ``mnist-cnn``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class DomainCNN(nn.Module):
    """Four 3x3 conv + batch-norm + ReLU layers (32, 32, 64, 64 channels, max-pool after each pair), a 128-unit
    hidden layer, 10 logits.

    ``features(x)`` is the 128-d penultimate activation (for FID / KID); ``forward(x)`` the logits (for IS and
    accuracy). Inputs are images in [-1, 1] of any size and 1 or 3 channels: RGB is converted to luma and the image
    resized (bilinear, antialiased) to 28x28 first.
    """

    num_features = 128
    resolution = 28

    def __init__(self, num_classes: int = 10):
        super().__init__()
        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        self.trunk = nn.Sequential(
            *conv(1, 32), *conv(32, 32), nn.MaxPool2d(2),  # (N, 32, 14, 14)
            *conv(32, 64), *conv(64, 64), nn.MaxPool2d(2),  # (N, 64, 7, 7)
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, self.num_features), nn.ReLU(inplace=True),  # (N, 128)
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(self.num_features, num_classes)

    def prepare(self, x: Tensor) -> Tensor:
        """[-1, 1] images (N, C, H, W) -> (N, 1, 28, 28)."""
        if x.shape[1] == 3:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear", antialias=True,
                              align_corners=False)
        return x

    def features(self, x: Tensor) -> Tensor:
        return self.trunk(self.prepare(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))
