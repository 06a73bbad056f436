"""Progressive GAN networks (Karras et al. 2017): every resolution block built up front, fade-in by ``alpha``.

Equalized learning rate: weights are drawn from N(0, 1) and scaled at run time by ``gain / sqrt(fan_in)`` (He's
constant), so Adam's per-parameter step sizes are the same for every layer. Pixel norm after every conv of G (and
on z); minibatch standard deviation at D's 4x4 block; nearest-neighbour upsampling, 2x2 average-pool downsampling,
LeakyReLU 0.2. G's output is linear (no tanh); samples are clamped to [-1, 1] by ``GANModule.generate``.

``level`` indexes resolutions: level 0 is 4x4, level k is ``4 * 2**k``. With ``alpha < 1`` at level k > 0 the
output blends the new block with the previous level's path:
``G: alpha * toRGB_k(block_k(h)) + (1 - alpha) * upsample(toRGB_{k-1}(h))``,
``D: alpha * block_k(fromRGB_k(x)) + (1 - alpha) * fromRGB_{k-1}(avgpool(x))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SQRT2 = math.sqrt(2.0)


def num_levels(resolution: int) -> int:
    """Number of levels for a final ``resolution`` (a power of two from 4 to 1024): 4 -> 1, 32 -> 4."""
    r = int(resolution)
    if r < 4 or r > 1024 or r & (r - 1):
        raise ValueError(f"resolution {resolution} is not supported by PGGAN: use a power of two from 4 to 1024")
    return int(math.log2(r)) - 1



def fade(old: Tensor, new: Tensor, alpha: float) -> Tensor:
    """``alpha * new + (1 - alpha) * old`` in the wider of the two dtypes (under CUDA autocast one branch can be
    bf16 / fp16 and the other fp32, which ``torch.lerp`` refuses)."""
    dtype = torch.promote_types(old.dtype, new.dtype)
    return torch.lerp(old.to(dtype), new.to(dtype), alpha)

class EqualizedConv2d(nn.Module):
    """Conv2d with weights ~ N(0, 1) scaled at run time by ``gain / sqrt(in_channels * k * k)``; bias starts at 0."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, gain: float = SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin * kernel * kernel)
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """Linear layer with weights ~ N(0, 1) scaled at run time by ``gain / sqrt(in_features)``."""

    def __init__(self, fin: int, fout: int, gain: float = SQRT2):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(fout, fin))
        self.bias = nn.Parameter(torch.zeros(fout))
        self.scale = gain / math.sqrt(fin)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """``x / sqrt(mean_c(x^2) + eps)``: unit RMS over channels at every pixel (or over features of a vector)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


class MinibatchStd(nn.Module):
    """Append one feature map: the std over groups of ``group_size`` samples, averaged over channels and pixels.

    Sample ``i`` belongs to group member ``i % M`` with ``M = N / G`` (the official layout: reshape to (G, M, ...)).
    """

    def __init__(self, group_size: int = 4, eps: float = 1e-8):
        super().__init__()
        self.group_size, self.eps = group_size, eps

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        if n % g:
            raise ValueError(f"minibatch-stddev: batch size {n} is not divisible by the group size {g}")
        y = x.view(g, -1, c, h, w).float()  # (G, M, C, H, W)
        y = y - y.mean(0, keepdim=True)
        std = (y.pow(2).mean(0) + self.eps).sqrt()  # (M, C, H, W)
        s = std.mean(dim=(1, 2, 3)).to(x.dtype)  # (M,)
        s = s.view(1, -1, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, s], dim=1)  # (N, C + 1, H, W)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


class PGGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, C, R, R) at the current ``level`` (R = 4 * 2**level).

    Args:
        latent_dim: size of z.
        channels: image channels.
        resolution: final resolution (power of two).
        fmap_base, fmap_max: width at resolution r is ``min(fmap_base // r, fmap_max)``.
    """

    def __init__(self, latent_dim: int = 128, channels: int = 1, resolution: int = 32, fmap_base: int = 2048,
                 fmap_max: int = 128):
        super().__init__()
        self.latent_dim, self.channels, self.num_levels = latent_dim, channels, num_levels(resolution)
        nf = [min(fmap_base // (4 * 2 ** k), fmap_max) for k in range(self.num_levels)]
        self.widths = nf
        self.pixel_norm = PixelNorm()
        # 4x4: dense projection (gain sqrt(2)/4 as in the official code), then a 3x3 conv
        self.project = EqualizedLinear(latent_dim, nf[0] * 16, gain=SQRT2 / 4)
        self.blocks = nn.ModuleList([nn.Sequential(EqualizedConv2d(nf[0], nf[0], 3, 1), _lrelu(), PixelNorm())])
        for k in range(1, self.num_levels):
            self.blocks.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                EqualizedConv2d(nf[k - 1], nf[k], 3, 1), _lrelu(), PixelNorm(),
                EqualizedConv2d(nf[k], nf[k], 3, 1), _lrelu(), PixelNorm()))
        self.to_rgb = nn.ModuleList([EqualizedConv2d(nf[k], channels, 1, gain=1.0) for k in range(self.num_levels)])
        self.register_buffer("level", torch.tensor(self.num_levels - 1))
        self.register_buffer("alpha", torch.tensor(1.0))

    def set_stage(self, level: int, alpha: float) -> None:
        self.level.fill_(level)
        self.alpha.fill_(alpha)

    def forward(self, z: Tensor, level: int | None = None, alpha: float | None = None) -> Tensor:
        level = int(self.level) if level is None else level
        alpha = float(self.alpha) if alpha is None else alpha
        h = self.pixel_norm(z)
        h = self.pixel_norm(F.leaky_relu(self.project(h), 0.2).view(z.shape[0], self.widths[0], 4, 4))
        h = self.blocks[0](h)  # (N, nf0, 4, 4)
        for k in range(1, level + 1):
            prev = h
            h = self.blocks[k](h)
        out = self.to_rgb[level](h)
        if level > 0 and alpha < 1.0:
            old = F.interpolate(self.to_rgb[level - 1](prev), scale_factor=2, mode="nearest")
            out = fade(old, out, alpha)
        return out


class PGDiscriminator(nn.Module):
    """images (N, C, R, R) at the current level -> raw scores (N,).

    Args:
        channels: image channels.
        resolution: final resolution (power of two).
        fmap_base, fmap_max: widths as in the generator.
        mbstd_group: minibatch-stddev group size.
    """

    def __init__(self, channels: int = 1, resolution: int = 32, fmap_base: int = 2048, fmap_max: int = 128,
                 mbstd_group: int = 4):
        super().__init__()
        self.num_levels = num_levels(resolution)
        nf = [min(fmap_base // (4 * 2 ** k), fmap_max) for k in range(self.num_levels)]
        self.from_rgb = nn.ModuleList([nn.Sequential(EqualizedConv2d(channels, nf[k], 1), _lrelu())
                                       for k in range(self.num_levels)])
        # blocks[k] maps level k to level k - 1 (k >= 1); blocks[0] is the final 4x4 block
        self.blocks = nn.ModuleList([nn.Sequential(
            MinibatchStd(mbstd_group),
            EqualizedConv2d(nf[0] + 1, nf[0], 3, 1), _lrelu(),
            nn.Flatten(),
            EqualizedLinear(nf[0] * 16, nf[0]), _lrelu(),
            EqualizedLinear(nf[0], 1, gain=1.0))])
        for k in range(1, self.num_levels):
            self.blocks.append(nn.Sequential(
                EqualizedConv2d(nf[k], nf[k], 3, 1), _lrelu(),
                EqualizedConv2d(nf[k], nf[k - 1], 3, 1), _lrelu(),
                nn.AvgPool2d(2)))

    def forward(self, x: Tensor, level: int, alpha: float = 1.0) -> Tensor:
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level](h)
            if alpha < 1.0:
                old = self.from_rgb[level - 1](F.avg_pool2d(x, 2))
                h = fade(old, h, alpha)
            for k in range(level - 1, 0, -1):
                h = self.blocks[k](h)
        return self.blocks[0](h).squeeze(1)  # (N,)
