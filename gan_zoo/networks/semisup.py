"""The semi-supervised GAN's fully connected networks for permutation-invariant MNIST (28x28x1, flattened to 784),
after Salimans et al., "Improved Techniques for Training GANs", 2016, and their code (openai/improved-gan,
mnist_svhn_cifar10/train_mnist_feature_matching.py and nn.py).

Their code trains on pixels in [0, 1] with a sigmoid generator; the zoo's images are in [-1, 1]. The generator maps
its sigmoid output to ``2 * sigmoid - 1`` and the classifier maps its input back to ``(x + 1) / 2`` first, so the
composition D(G(z)), the noise levels and the data-dependent initialisation are those of their code.

Where the paper and the code differ, these follow the code: the paper gives both networks 5 hidden layers with weight
normalisation and noise on the output of each of D's layers; the code's generator has 2 hidden layers with batch
norm (weight normalisation on its output layer only), and its discriminator also has noise on its input.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_zoo.networks.blocks import GaussianNoise, WeightNormLinear

IMAGE_SHAPE = (1, 28, 28)
IMAGE_SIZE = 28 * 28


def _check_images(x: Tensor) -> None:
    if tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"the mlp networks take 28x28 grey images (N, 1, 28, 28), got {tuple(x.shape)}")


class SalimansMLPClassifier(nn.Module):
    """images (N, 1, 28, 28) in [-1, 1] -> ``num_outputs`` logits: the discriminator of Salimans et al.'s
    permutation-invariant MNIST experiments.

    Gaussian noise on the input (std 0.3, on [0, 1] pixels), then fully connected weight-normalised layers of 1000,
    500, 250, 250 and 250 ReLU units, each followed by Gaussian noise (std 0.5), then a weight-normalised linear head.
    The noise is on in training mode only. As in their code, the hidden layers' weight scales are not trained (only
    ``data_init_`` sets them) and the head's is.

    ``features(x)`` is the last hidden layer (N, 250), before its noise: what feature matching reads (their
    ``layers[-3]``); ``forward(x)`` the logits.

    Args:
        num_outputs: K (the K-logit form) or K + 1 (with a "fake" logit).
        hidden: widths of the hidden layers.
        input_noise: std of the noise on the input pixels (in [0, 1] units).
        hidden_noise: std of the noise on every hidden layer's output.
    """

    def __init__(self, num_outputs: int = 10, hidden: tuple[int, ...] = (1000, 500, 250, 250, 250),
                 input_noise: float = 0.3, hidden_noise: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten(), GaussianNoise(input_noise)]  # (N, 784)
        sizes = (IMAGE_SIZE, *hidden)
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(GaussianNoise(hidden_noise))
            layers += [WeightNormLinear(a, b, train_scale=False), nn.ReLU()]  # (N, b)
        self.trunk = nn.Sequential(*layers)
        self.noise = GaussianNoise(hidden_noise)
        self.head = WeightNormLinear(sizes[-1], num_outputs, train_scale=True)
        self.num_features = sizes[-1]

    def features(self, x: Tensor) -> Tensor:
        _check_images(x)
        return self.trunk((x + 1) / 2)  # (N, 250); their pixels are in [0, 1]

    def classify_features(self, f: Tensor) -> Tensor:
        return self.head(self.noise(f))

    def forward(self, x: Tensor) -> Tensor:
        return self.classify_features(self.features(x))  # (N, num_outputs)

    @torch.no_grad()
    def data_init_(self, x: Tensor) -> None:
        """Data-dependent initialisation of every weight-normalised layer, in order, on the batch ``x`` (their
        ``init_param``): each layer's pre-activations get mean 0 and std 1 over ``x`` (with the noise in training
        mode, as theirs)."""
        _check_images(x)
        h = (x + 1) / 2
        for m in [*self.trunk, self.noise, self.head]:
            h = m.data_init_(h) if isinstance(m, WeightNormLinear) else m(h)


class _BatchNormShift(nn.BatchNorm1d):
    # Batch norm with a learned shift and no learned scale (their nn.batch_norm(..., g=None)).
    def __init__(self, num_features: int):
        super().__init__(num_features, eps=1e-6, affine=False)
        self.shift = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + self.shift

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, learned shift, no learned scale"


class SalimansMLPGenerator(nn.Module):
    """z (N, latent_dim) -> images (N, 1, 28, 28) in [-1, 1]: the generator of Salimans et al.'s
    permutation-invariant MNIST experiments.

    Fully connected layers of 500 and 500 units, each with batch norm (a learned shift, no learned scale) and
    softplus, then a weight-normalised layer of 784 units with a sigmoid, mapped to [-1, 1] as ``2 * sigmoid - 1``
    (their images are in [0, 1]). Their latent is uniform on [0, 1)^100.

    Args:
        latent_dim: size of z.
        hidden: widths of the hidden layers.
    """

    def __init__(self, latent_dim: int = 100, hidden: tuple[int, ...] = (500, 500)):
        super().__init__()
        self.latent_dim = latent_dim
        layers: list[nn.Module] = []
        for a, b in zip((latent_dim, *hidden[:-1]), hidden):
            layers += [nn.Linear(a, b, bias=False), _BatchNormShift(b), nn.Softplus()]  # (N, b)
        self.net = nn.Sequential(*layers)
        self.out = WeightNormLinear(hidden[-1], IMAGE_SIZE, train_scale=True)
        for m in self.modules():  # Lasagne's default initialisation (Glorot uniform)
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
        nn.init.xavier_uniform_(self.out.weight_v)

    def forward(self, z: Tensor) -> Tensor:
        x = 2 * torch.sigmoid(self.out(self.net(z))) - 1  # (N, 784) in [-1, 1]
        return x.view(z.shape[0], *IMAGE_SHAPE)
