"""DCGAN generator and discriminator (Radford et al. 2015) for any ``s0 * 2**m`` resolution.

Layer for layer this is the reference PyTorch DCGAN (no conv biases when batch norm is on, 3,576,704 + 2,765,568
parameters at 64x64 RGB); the generator projects z to ``s0 x s0`` (4x4 for powers of two, 7x7 for 28) with a transposed conv, then doubles the
resolution m times; the discriminator mirrors it and ends with a linear layer on the flattened ``s0 x s0`` features
(the same map as the canonical final 4x4 valid conv), which is where minibatch discrimination is inserted.
"""

from __future__ import annotations

from torch import Tensor, nn

from gan_zoo.networks.blocks import MinibatchDiscrimination, base_resolution, dcgan_init_


def _widths(base: int, m: int, max_channels: int) -> list[int]:
    # Channel width at each of the m feature resolutions, from the coarsest (widest) to the finest.
    return [min(base * 2 ** i, max_channels) for i in reversed(range(m))]


class DCGANGenerator(nn.Module):
    """z (N, nz) -> images (N, C, H, W) in [-1, 1].

    Args:
        latent_dim: size of z.
        channels: image channels (1 or 3).
        resolution: output side length (see ``base_resolution``).
        ngf: width of the finest feature map; coarser ones double up to ``max_channels``.
        upsample: ``"deconv"`` (stride-2 transposed convs, the paper) or ``"nearest"`` (nearest-neighbour upsampling
            followed by a 3x3 conv: no checkerboard artefacts; Odena, Dumoulin & Olah, "Deconvolution and
            Checkerboard Artifacts", 2016, and ctmakro, "Fast LSGAN in Canton (TensorFlow)", 2017).
        max_channels: cap on the channel width.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 1, resolution: int = 32, ngf: int = 64,
                 upsample: str = "deconv", max_channels: int = 512):
        super().__init__()
        if upsample not in ("deconv", "nearest"):
            raise ValueError(f"upsample must be 'deconv' or 'nearest', got {upsample!r}")
        s0, m = base_resolution(resolution)
        widths = _widths(ngf, m, max_channels)
        self.latent_dim, self.channels, self.resolution = latent_dim, channels, resolution
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], s0, 1, 0, bias=False),  # (N, w0, s0, s0)
            nn.BatchNorm2d(widths[0]), nn.ReLU(True),
        ]
        outs = widths[1:] + [channels]
        for i, (cin, cout) in enumerate(zip(widths, outs)):
            last = i == len(outs) - 1
            if upsample == "deconv":
                layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False))  # doubles H and W
            else:
                layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=False)]
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(cout), nn.ReLU(True)]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z.view(z.shape[0], self.latent_dim, 1, 1))  # (N, C, H, W)


class DCGANDiscriminator(nn.Module):
    """images (N, C, H, W) -> raw scores (N,). No sigmoid: the losses work on logits / linear scores.

    Args:
        channels: image channels.
        resolution: input side length.
        ndf: width of the first feature map; deeper ones double up to ``max_channels``.
        batch_norm: BatchNorm after every conv but the first (the paper; Larsen & Sønderby, "Generating Faces with
            Torch", 2015, found D better without).
        minibatch_kernels: B for minibatch discrimination before the last layer (0 = off).
        minibatch_kernel_dim: C for minibatch discrimination.
        max_channels: cap on the channel width.
    """

    def __init__(self, channels: int = 1, resolution: int = 32, ndf: int = 64, batch_norm: bool = True,
                 minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5, max_channels: int = 512):
        super().__init__()
        s0, m = base_resolution(resolution)
        widths = [min(ndf * 2 ** i, max_channels) for i in range(m)]
        layers: list[nn.Module] = []
        cin = channels
        for i, cout in enumerate(widths):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=not batch_norm))  # halves H and W
            if batch_norm and i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, True))
            cin = cout
        self.features = nn.Sequential(*layers, nn.Flatten())  # (N, w * s0 * s0)
        n_feat = cin * s0 * s0
        self.mbd = MinibatchDiscrimination(n_feat, minibatch_kernels, minibatch_kernel_dim) if minibatch_kernels else None
        self.head = nn.Linear(self.mbd.out_features if self.mbd else n_feat, 1, bias=not batch_norm)
        dcgan_init_(self)

    def forward(self, x: Tensor) -> Tensor:
        f = self.features(x)
        if self.mbd is not None:
            f = self.mbd(f)
        return self.head(f).squeeze(1)  # (N,)


class DCGANClassifier(nn.Module):
    """The DCGAN discriminator's conv trunk with a classification head (the semi-supervised GAN's D).

    ``features(x)`` is the last hidden layer (flattened conv features, for feature matching); ``forward(x)`` the
    ``num_outputs`` logits. No batch norm by default: labeled, unlabeled and generated batches pass separately, and
    batch statistics would mix the batch composition into the classifier.

    Args:
        channels: image channels.
        resolution: input side.
        ndf: width of the first feature map.
        num_outputs: K + 1 (Odena) or K (Salimans).
        dropout: dropout before the head.
        batch_norm: batch norm after every conv but the first.
    """

    def __init__(self, channels: int = 1, resolution: int = 28, ndf: int = 64, num_outputs: int = 11,
                 dropout: float = 0.3, batch_norm: bool = False):
        super().__init__()
        trunk = DCGANDiscriminator(channels, resolution, ndf, batch_norm)
        self.features_net = trunk.features  # (N, F)
        n_feat = trunk.head.in_features
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(n_feat, num_outputs)
        dcgan_init_(self)

    def features(self, x: Tensor) -> Tensor:
        return self.features_net(x)

    def classify_features(self, f: Tensor) -> Tensor:
        return self.head(self.dropout(f))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify_features(self.features(x))  # (N, num_outputs)
