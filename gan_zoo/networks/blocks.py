"""Layers shared by several networks. Plain ``torch.nn``: no Lightning import anywhere in ``networks/``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class GaussianNoise(nn.Module):
    """``x + std * eps``, ``eps ~ N(0, 1)``, in training mode; the identity in eval mode.

    Args:
        std: standard deviation of the added noise (0 = the identity).
    """

    def __init__(self, std: float):
        super().__init__()
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.std == 0:
            return x
        return x + self.std * torch.randn_like(x)

    def extra_repr(self) -> str:
        return f"std={self.std}"


class WeightNormLinear(nn.Module):
    """A fully connected layer with weight normalisation (Salimans & Kingma, "Weight Normalization", 2016):
    ``y = x W^T + b`` with row ``i`` of ``W`` equal to ``weight_g[i] * weight_v[i] / ||weight_v[i]||``.

    ``weight_g`` is a parameter with ``train_scale=True`` and otherwise a buffer: a scale that only
    ``data_init_`` sets, as in the DenseLayer of Salimans et al.'s code (openai/improved-gan,
    mnist_svhn_cifar10/nn.py), which torch's ``weight_norm`` (always a trained scale) cannot express.

    Args:
        in_features: input size.
        out_features: output size.
        train_scale: train ``weight_g`` (else it is a buffer set by ``data_init_``).
        init_std: standard deviation of the initial ``weight_v`` entries (the direction; 0.1 in their code).
    """

    def __init__(self, in_features: int, out_features: int, train_scale: bool = True, init_std: float = 0.1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight_v = nn.Parameter(torch.randn(out_features, in_features) * init_std)
        if train_scale:
            self.weight_g = nn.Parameter(torch.ones(out_features))
        else:
            self.register_buffer("weight_g", torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    @property
    def weight(self) -> Tensor:
        return self.weight_v * (self.weight_g / self.weight_v.norm(dim=1)).unsqueeze(1)  # (out, in)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    @torch.no_grad()
    def data_init_(self, x: Tensor) -> Tensor:
        """Data-dependent initialisation (Salimans & Kingma 2016, section 3): set ``weight_g`` and ``bias`` so that
        each output unit has mean 0 and standard deviation 1 over the batch ``x``; returns those outputs."""
        t = F.linear(x, self.weight)  # (N, out)
        mean, std = t.mean(0), t.std(0, unbiased=False).clamp_min(1e-8)
        self.weight_g.div_(std)
        self.bias.copy_(-mean / std)
        return (t - mean) / std

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"train_scale={isinstance(self.weight_g, nn.Parameter)}")
