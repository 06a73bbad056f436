"""Layers shared by several networks. Plain ``torch.nn``: no Lightning import anywhere in ``networks/``."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MinibatchDiscrimination(nn.Module):
    """Minibatch discrimination (Salimans et al. 2016, section 3.2).

    ``M_i = f(x_i) T`` reshaped to ``(B, C)``; ``o_b(x_i) = sum_{j != i} exp(-||M_ib - M_jb||_1)``. The ``B`` features
    ``o(x_i)`` are concatenated to ``f(x_i)``. The statistic is over the batch it is given, so call D separately on
    real and fake batches.

    Args:
        in_features: size A of the input feature vector.
        num_kernels: B, the number of kernels (100 in the paper).
        kernel_dim: C, the dimension of each kernel (5 in the paper).
    """

    def __init__(self, in_features: int, num_kernels: int = 100, kernel_dim: int = 5):
        super().__init__()
        self.num_kernels, self.kernel_dim = num_kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, num_kernels * kernel_dim) * 0.1)
        self.out_features = in_features + num_kernels

    def forward(self, f: Tensor) -> Tensor:
        m = (f @ self.T).view(-1, self.num_kernels, self.kernel_dim)  # (N, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(-1)  # (N, N, B): ||M_ib - M_jb||_1
        o = torch.exp(-l1).sum(1) - 1.0  # (N, B); the j == i term is exp(0) = 1
        return torch.cat([f, o], dim=1)  # (N, A + B)


def dcgan_init_(module: nn.Module) -> None:
    """DCGAN initialisation: conv / linear weights ~ N(0, 0.02), BN gamma ~ N(1, 0.02), biases 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def base_resolution(resolution: int) -> tuple[int, int]:
    """Split ``resolution`` into ``(s0, m)`` with ``resolution = s0 * 2**m``, ``4 <= s0 <= 7`` and ``m >= 1``.

    28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4). Raises ``ValueError`` for resolutions a strided conv stack cannot do.
    """
    r, m = int(resolution), 0
    while r % 2 == 0 and r // 2 >= 4:
        r //= 2
        m += 1
    if m < 1 or not 4 <= r <= 7:
        raise ValueError(
            f"resolution {resolution} is not supported: it must be s * 2**m with 4 <= s <= 7 and m >= 1 "
            "(e.g. 16, 28, 32, 64, 128, ... 1024)"
        )
    return r, m
