"""Feature extractors for FID / IS / KID, selectable by name, loaded offline and verified by sha256.

- ``fmnist-cnn``, ``mnist-cnn``: ``DomainCNN`` classifiers we trained (``scripts/train_extractor.py``), shipped in
  ``checkpoints/`` and listed in ``checkpoints/extractors.json`` with their sha256 and test accuracy. 128-d
  penultimate features for FID / KID, 10 logits for IS.
- ``inception``: torch-fidelity's Inception-v3 (the standard for paper numbers), from the file
  ``weights-inception-2015-12-05-6726825d.pth``: given as a path, or found in ``$TORCH_HOME/hub/checkpoints/``;
  its sha256 must start with ``6726825d`` (the hash prefix in its name). 2048-d pool features, 1008 logits.

Every extractor takes images in [-1, 1], ``(N, C, H, W)``, any size, 1 or 3 channels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from gan_zoo import weights
from gan_zoo.errors import ExtractorError, UnknownNameError
from gan_zoo.networks.classifier import DomainCNN
from gan_zoo.weights import sha256_file

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_SHA256_PREFIX = "6726825d"
EXTRACTORS = ("fmnist-cnn", "mnist-cnn", "inception")
DEFAULT_EXTRACTOR = {"fashion_mnist": "fmnist-cnn", "mnist": "mnist-cnn", "mnist5k": "mnist-cnn"}


def default_extractor(data: str, requested: str = "auto") -> str:
    """The extractor for ``data``: ``requested`` unless it is ``auto``, else ``fmnist-cnn`` / ``mnist-cnn`` for the
    28x28 data sets and ``inception`` for RGB data."""
    return DEFAULT_EXTRACTOR.get(data, "inception") if requested == "auto" else requested


class Extractor(nn.Module):
    """``features(x)`` (N, num_features) and ``logits(x)`` (N, num_classes) of images in [-1, 1]."""

    name: str
    num_features: int
    sha256: str
    resize_note: str = ""

    def features(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[0]

    def logits(self, x: Tensor) -> Tensor:
        return self.features_and_logits(x)[1]

    def compute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def features_and_logits(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both outputs for ``x``, from one forward pass. The last input's result is remembered, so FID, KID and
        IS updated with the same batch run the network once, not three times. The memo holds ``x`` itself and
        matches it by identity and version: a key of ``id`` and data pointer alone would match a new batch that
        Python and the allocator placed where a freed one was, and return the old batch's features."""
        memo = getattr(self, "_memo", None)
        if memo is None or memo[0] is not x or memo[1] != x._version:
            memo = (x, x._version, self.compute(x))
            self._memo = memo
        return memo[2]

    def forget(self) -> None:
        """Drop the remembered batch (and the reference to it)."""
        self._memo = None


class DomainExtractor(Extractor):
    def __init__(self, name: str, net: DomainCNN, sha256: str):
        super().__init__()
        self.name, self.net, self.sha256 = name, net.eval(), sha256
        self.num_features = net.num_features
        self.resize_note = "luma, bilinear antialiased resize to 28x28"
        self.requires_grad_(False)

    def compute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.net.features(x.float())
        return f, self.net.head(f)

    def train(self, mode: bool = True):  # never leaves eval mode (dropout off)
        return super().train(False)


class InceptionExtractor(Extractor):
    def __init__(self, path: Path, sha256: str, antialias: bool = False):
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3  # needs the optional torch-fidelity

        self.name, self.sha256, self.num_features = "inception", sha256, 2048
        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(path), antialias=antialias)
        self.resize_note = f"torch-fidelity bilinear resize to 299x299, antialias={antialias}"

    def compute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        u8 = ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)  # torch-fidelity takes uint8 [0, 255]
        feats, logits = self.net._torch_fidelity_forward(u8)
        return feats.reshape(len(x), -1), logits.reshape(len(x), -1)


def extractor_manifest() -> dict:
    """``checkpoints/extractors.json``: the shipped domain extractors with their files, sha256 and accuracy."""
    path = weights.CHECKPOINTS / "extractors.json"
    if not path.is_file():
        raise ExtractorError(f"no extractor manifest at {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ExtractorError(f"the extractor manifest {path} is not valid JSON: {e}") from e


def load_domain_cnn(name: str) -> DomainExtractor:
    entry = extractor_manifest().get(name)
    if entry is None:
        raise ExtractorError(f"{name!r} is not in checkpoints/extractors.json")
    path = weights.locate(entry["file"], entry["sha256"], name, ExtractorError, entry.get("url"))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = DomainCNN()
        net.load_state_dict(state, strict=True)
    except Exception as e:
        raise ExtractorError(f"{name}: {path} does not load into DomainCNN: {weights.load_failure(e)}") from e
    return DomainExtractor(name, net, entry["sha256"])


def inception_path(path: str | os.PathLike | None = None) -> Path:
    """The Inception weights file: ``path`` if given, else ``$TORCH_HOME/hub/checkpoints/``; never downloaded here."""
    if path:
        candidates = [Path(path).expanduser()]
    else:
        torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
        candidates = [torch_home / "hub" / "checkpoints" / INCEPTION_FILE]
    for c in candidates:
        if c.is_file():
            return c
    raise ExtractorError(
        f"inception: the weights file {INCEPTION_FILE} was not found at {candidates[0]}. Put it there (it is "
        "torch-fidelity's release file, downloaded automatically by torchmetrics when online), or pass its path "
        "with --inception-weights; offline, use a domain extractor such as fmnist-cnn.")


def check_weights_only(path: Path, what: str) -> None:
    """Refuse ``path`` unless it loads with ``torch.load(weights_only=True)``. torch-fidelity reads the Inception file
    with a plain ``torch.load`` (which unpickles anything before torch 2.6); a file that passes this check references
    no global beyond tensors and containers, so that second read runs no code either."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ExtractorError(f"{what}: {path} is not a plain weights file: {weights.load_failure(e)}") from e


def load_extractor(name: str, inception_weights: str | None = None, antialias: bool = False) -> Extractor:
    """Build an extractor by name (``fmnist-cnn``, ``mnist-cnn``, ``inception``), verifying its file's sha256."""
    if name in ("fmnist-cnn", "mnist-cnn"):
        return load_domain_cnn(name)
    if name == "inception":
        path = inception_path(inception_weights)
        digest = sha256_file(path)
        if not digest.startswith(INCEPTION_SHA256_PREFIX):
            raise ExtractorError(f"inception: {path} has sha256 {digest[:16]}..., expected a hash starting with "
                                 f"{INCEPTION_SHA256_PREFIX}: corrupt or a different file")
        check_weights_only(path, "inception")
        return InceptionExtractor(path, digest, antialias)
    raise UnknownNameError(f"unknown feature extractor {name!r}; valid: {', '.join(EXTRACTORS)}")


class FeatureView(nn.Module):
    """``extractor.features`` as a module with ``num_features``: what torchmetrics' FID / KID take as ``feature``."""

    def __init__(self, extractor: Extractor):
        super().__init__()
        self.extractor = extractor
        self.num_features = extractor.num_features

    def forward(self, x: Tensor) -> Tensor:
        return self.extractor.features(x).double()  # float64 statistics


class LogitView(nn.Module):
    """``extractor.logits`` as a module: what torchmetrics' IS takes as ``feature``."""

    def __init__(self, extractor: Extractor):
        super().__init__()
        self.extractor = extractor

    def forward(self, x: Tensor) -> Tensor:
        return self.extractor.logits(x).double()  # IS in float64
