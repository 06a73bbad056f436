"""BiGAN / BigBiGAN-lite networks: an encoder ``E: x -> z`` and a discriminator on ``(x, z)`` pairs.

The discriminator follows BigBiGAN (Donahue & Simonyan 2019) at a small scale: ``F`` a conv trunk on ``x``, ``H`` an
MLP on ``z``, ``J`` an MLP on ``concat(F(x), H(z))``, and linear score heads ``s_x`` (on ``F``), ``s_z`` (on ``H``) and
``s_xz`` (on ``J``). With ``unary=False`` only ``s_xz`` exists: the joint discriminator of BiGAN (Donahue et al.
2016).

``arch="mlp"`` swaps the conv trunks of E and F for fully connected ones on the flattened image (two hidden layers of
``16 * width`` units, 1024 at the default width 64): the permutation-invariant setting of BiGAN's MNIST experiments,
where the paper reports its 1-NN accuracy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _sn

from gan_zoo.networks.blocks import dcgan_init_
from gan_zoo.networks.dcgan import DCGANDiscriminator
from gan_zoo.networks.mlp import image_mlp_trunk

ARCHS = ("conv", "mlp")


def check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")


def _conv_trunk(channels: int, resolution: int, width: int, batch_norm: bool) -> tuple[nn.Sequential, int]:
    # The DCGAN discriminator's strided conv stack: (N, C, H, W) -> (N, w, s0, s0), and its output width.
    trunk = DCGANDiscriminator(channels, resolution, width, batch_norm)
    convs = nn.Sequential(*list(trunk.features)[:-1])  # drop the Flatten
    out_ch = [m for m in convs if isinstance(m, nn.Conv2d)][-1].out_channels
    return convs, out_ch


class Encoder(nn.Module):
    """images (N, C, H, W) -> latents (N, latent_dim).

    A DCGAN-discriminator conv trunk (batch norm), or with ``arch="mlp"`` two fully connected layers of ``16 * nef``
    units, then a linear map of the flattened features to ``z``. With ``stochastic=True`` the map gives a mean and a
    pre-softplus scale, and ``forward`` draws ``mu + softplus(s) * eps`` (reparameterised, so gradients reach both);
    ``forward(x, sample=False)`` returns the mean.

    Args:
        channels: image channels.
        resolution: image side.
        latent_dim: size of z.
        nef: width of the first conv layer.
        stochastic: a Gaussian encoder instead of a deterministic one.
        arch: ``"conv"`` or ``"mlp"`` (permutation-invariant).
    """

    def __init__(self, channels: int = 1, resolution: int = 32, latent_dim: int = 100, nef: int = 64,
                 stochastic: bool = False, arch: str = "conv"):
        super().__init__()
        check_arch(arch)
        self.latent_dim, self.stochastic = latent_dim, stochastic
        if arch == "mlp":
            self.trunk, width, area = image_mlp_trunk(channels, resolution, 16 * nef, batch_norm=True), 16 * nef, 1
        else:
            self.trunk, width = _conv_trunk(channels, resolution, nef, batch_norm=True)
            area = (resolution >> (len([m for m in self.trunk if isinstance(m, nn.Conv2d)]))) ** 2
        self.feature_dim = width  # pooled feature size (see ``features``)
        self.head = nn.Linear(width * area, latent_dim * (2 if stochastic else 1))
        dcgan_init_(self)

    def features(self, x: Tensor) -> Tensor:
        """Spatially averaged trunk features (N, feature_dim) (the last hidden layer for ``arch="mlp"``): what a
        linear probe reads."""
        h = self.trunk(x)
        return h.mean(dim=(2, 3)) if h.dim() == 4 else h

    def forward(self, x: Tensor, sample: bool = True) -> Tensor:
        h = self.head(self.trunk(x).flatten(1))
        if not self.stochastic:
            return h
        mu, s = h.chunk(2, dim=1)
        if not sample:
            return mu
        return mu + F.softplus(s) * torch.randn_like(mu)


class JointDiscriminator(nn.Module):
    """Scores for ``(x, z)`` pairs: ``forward(x, z) -> (s_x, s_z, s_xz)``, each (N,); ``s_x`` and ``s_z`` are ``None``
    when ``unary=False``.

    Args:
        channels: image channels.
        resolution: image side.
        latent_dim: size of z.
        ndf: width of the first conv layer of ``F``.
        hidden: width of the ``H`` and ``J`` MLPs and of ``F``'s projected features.
        unary: the unary heads ``s_x`` and ``s_z`` (BigBiGAN); off gives BiGAN's joint discriminator.
        dropout: dropout in ``J`` (and before the heads).
        spectral_norm: spectral normalisation on every conv and linear layer (BigBiGAN).
        arch: ``"conv"`` or ``"mlp"`` (``F`` fully connected, ``16 * ndf`` units, no batch norm).
    """

    def __init__(self, channels: int = 1, resolution: int = 32, latent_dim: int = 100, ndf: int = 64,
                 hidden: int = 256, unary: bool = True, dropout: float = 0.2, spectral_norm: bool = True,
                 arch: str = "conv"):
        super().__init__()
        check_arch(arch)
        self.unary = unary
        lrelu = lambda: nn.LeakyReLU(0.2, True)  # noqa: E731
        if arch == "mlp":
            trunk = [image_mlp_trunk(channels, resolution, 16 * ndf, batch_norm=False)]
            flat = 16 * ndf
        else:  # module names as before the mlp option, so saved conv checkpoints still load
            convs, width = _conv_trunk(channels, resolution, ndf, batch_norm=False)
            trunk = [convs, nn.Flatten()]
            flat = width * (resolution >> (len([m for m in convs if isinstance(m, nn.Conv2d)]))) ** 2
        self.F = nn.Sequential(*trunk, nn.Linear(flat, hidden), lrelu())
        self.H = nn.Sequential(nn.Linear(latent_dim, hidden), lrelu(), nn.Linear(hidden, hidden), lrelu())
        self.J = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, hidden), lrelu(), nn.Dropout(dropout),
                               nn.Linear(hidden, hidden), lrelu())
        self.head_xz = nn.Linear(hidden, 1)
        self.head_x = nn.Linear(hidden, 1) if unary else None
        self.head_z = nn.Linear(hidden, 1) if unary else None
        dcgan_init_(self)
        if spectral_norm:
            for name, m in list(self.named_modules()):
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    _sn(m)

    def forward(self, x: Tensor, z: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor]:
        fx, hz = self.F(x), self.H(z)
        s_xz = self.head_xz(self.J(torch.cat([fx, hz], dim=1))).squeeze(1)
        if not self.unary:
            return None, None, s_xz
        return self.head_x(fx).squeeze(1), self.head_z(hz).squeeze(1), s_xz
