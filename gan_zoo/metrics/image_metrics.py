"""FID, IS and KID on torchmetrics, over any of our feature extractors.

``MetricSuite`` holds the torchmetrics objects (float64 statistics), takes the real features once (from the cache),
and then only fake images: ``update(fake)`` per batch, ``compute()`` on every rank (torchmetrics gathers the states
across processes; a rank that skipped ``compute()`` would hang the others). Under DDP each rank holds a disjoint
shard of the real features, so the gathered statistics are exactly those of the whole real set.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

from gan_zoo.errors import UnknownNameError
from gan_zoo.metrics.extractors import Extractor, FeatureView, LogitView

METRICS = ("fid", "is", "kid")


def metric_key(metric: str, n: int, extractor: str, split: str) -> str:
    """The logged name, stating the protocol: ``metrics/fid10k_fmnist-cnn_test``."""
    n_str = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    return f"metrics/{metric}{n_str}_{extractor}_{split}"


def named_results(results: dict[str, float], n: int, extractor: str, split: str) -> dict[str, float]:
    """``{"fid": v, "kid_std": s}`` -> ``{"metrics/fid10k_<extractor>_<split>": v, "metrics/kid10k_..._std": s}``."""
    out = {}
    for k, v in results.items():
        base, std = (k[: -len("_std")], "_std") if k.endswith("_std") else (k, "")
        out[metric_key(base, n, extractor, split) + std] = v
    return out


def parse_metrics(spec: str | tuple | list) -> tuple[str, ...]:
    names = tuple(s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip())
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
        raise UnknownNameError(f"unknown metric(s) {', '.join(bad) or '(none)'}; valid: {', '.join(METRICS)}")
    return names


class MetricSuite(nn.Module):
    """FID / IS / KID of generated images against fixed real features.

    Args:
        extractor: the feature extractor.
        metrics: any of "fid", "is", "kid".
        kid_subset_size: KID subset size (clipped to the number of images).
        kid_subsets: number of KID subsets.
        is_splits: number of IS splits.
    """

    def __init__(self, extractor: Extractor, metrics=METRICS, kid_subset_size: int = 1000, kid_subsets: int = 100,
                 is_splits: int = 10):
        super().__init__()
        self.extractor = extractor
        self.names = parse_metrics(metrics)
        self.kid_subset_size, self.kid_subsets = kid_subset_size, kid_subsets
        self.fid = self.kid = self.inception_score = None
        if "fid" in self.names:
            # FID's states are float64 already; set_dtype would also cast the extractor's weights
            self.fid = FrechetInceptionDistance(feature=FeatureView(extractor), reset_real_features=False)
        if "kid" in self.names:
            self.kid = KernelInceptionDistance(feature=FeatureView(extractor), reset_real_features=False,
                                               subsets=kid_subsets, subset_size=kid_subset_size)
        if "is" in self.names:
            self.inception_score = InceptionScore(feature=LogitView(extractor), splits=is_splits)

    def set_real_features(self, feats: Tensor, n_total: int | None = None) -> None:
        """Real features ``(n, d)`` (under DDP: this rank's shard of ``n_total``); the metrics' gathered states
        then cover the whole real set exactly once."""
        f64 = feats.double()
        if self.fid is not None:
            f64 = f64.to(self.fid.real_features_sum.device)
            self.fid.real_features_sum = f64.sum(0)
            self.fid.real_features_cov_sum = f64.t().mm(f64)
            self.fid.real_features_num_samples = torch.tensor(len(f64), device=f64.device)
        if self.kid is not None:
            self.kid.real_features = [f64]
        self._n_real = n_total or len(feats)

    @torch.no_grad()
    def update(self, fake: Tensor) -> None:
        """A batch of generated images in [-1, 1]."""
        if self.fid is not None:
            self.fid.update(fake, real=False)
        if self.kid is not None:
            self.kid.update(fake, real=False)
        if self.inception_score is not None:
            self.inception_score.update(fake)
        self.extractor.forget()

    def compute(self, n_fake: int) -> dict[str, float]:
        """All metrics; call on every rank. KID subsets are clipped to the smaller set."""
        out: dict[str, float] = {}
        if self.fid is not None:
            out["fid"] = float(self.fid.compute())
        if self.kid is not None:
            self.kid.subset_size = min(self.kid_subset_size, n_fake, self._n_real)
            mean, std = self.kid.compute()
            out["kid"], out["kid_std"] = float(mean), float(std)
        if self.inception_score is not None:
            mean, std = self.inception_score.compute()
            out["is"], out["is_std"] = float(mean), float(std)
        return out

    def reset_fake(self) -> None:
        for m in (self.fid, self.kid, self.inception_score):
            if m is not None:
                m.reset()  # reset_real_features=False keeps the real statistics


@torch.no_grad()
def extract_features(extractor: Extractor, images: Tensor, batch_size: int = 500, device=None) -> Tensor:
    """Features of ``images`` in [-1, 1] (N, C, H, W) as float32 (N, d)."""
    device = device or next(iter(extractor.parameters()), torch.zeros(())).device
    return torch.cat([extractor.features(b.to(device)).float().cpu() for b in images.split(batch_size)])
