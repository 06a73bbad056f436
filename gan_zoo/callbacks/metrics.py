"""FID / IS / KID during and at the end of a fit, computed on the model's sampling generator (EMA where it has one).

The metric modules live here, in the callback, not on the LightningModule: their weights never enter a model
checkpoint. Under DDP each rank generates its share of the samples with its own seed and holds a disjoint shard of
the real features; torchmetrics gathers the states, and every rank calls ``compute()``.
"""

from __future__ import annotations

import math
import sys

import torch
from tqdm.auto import tqdm

from gan_zoo.callbacks.periodic import EveryNImages
from gan_zoo.metrics.cache import cached_features, stats_key
from gan_zoo.metrics.extractors import load_extractor
from gan_zoo.metrics.image_metrics import MetricSuite, extract_features, named_results


def real_features(dm, split: str, n_real: int | None, extractor, device=None) -> tuple[torch.Tensor, str]:
    """Real features of ``dm``'s ``split`` (first ``n_real`` images, all if None), through the on-disk cache."""
    images_n = n_real
    key = stats_key(data=dm.name, split=split, resolution=dm.resolution, channels=dm.channels,
                    resize_mode=getattr(dm, "resize_mode", None), n=images_n, extractor=extractor.name,
                    extractor_sha256=extractor.sha256, extractor_resize=extractor.resize_note)
    return cached_features(key, extractor.num_features,
                           lambda: extract_features(extractor, dm.real_images(split, n_real), device=device))


def generate_and_update(suite: MetricSuite, model, n: int, seed: int, rank: int, world: int,
                        batch_size: int = 500, progress: str | None = None, **generate_kwargs) -> int:
    """Generate this rank's share of ``n`` samples (seeded by ``seed`` and the rank) into ``suite``; return it.
    ``progress``: a bar with this description counts the samples. ``generate_kwargs`` go to ``model.generate``
    (e.g. SGAN's ``member``)."""
    share = math.ceil(n / world)
    share = max(0, min(share, n - rank * share))
    gen = torch.Generator().manual_seed(seed * 1000 + rank)
    done = 0
    with tqdm(total=share, desc=progress, unit="img", file=sys.stderr, leave=False, dynamic_ncols=True,
              disable=progress is None) as bar:
        while done < share:
            k = min(batch_size, share - done)
            z = model.sample_latent(k, generator=gen, device=model.device)
            suite.update(model.generate(z, **generate_kwargs))
            done += k
            bar.update(k)
    return share


class ImageMetrics(EveryNImages):
    """Compute FID / IS / KID every ``every_n_images`` and at the end of the fit.

    Args:
        metrics: any of "fid", "is", "kid".
        n_samples: generated images per evaluation (all ranks together).
        extractor: feature extractor name (``fmnist-cnn``, ``mnist-cnn``, ``inception``).
        split: real split to compare against.
        n_real: real images used (None = the whole split).
        every_n_images: images seen between evaluations (0 = only at the end).
        seed: sampling seed (the same latents at every evaluation).
        inception_weights: path of the Inception weights file (``inception`` only).
        progress: show a bar counting the samples of each evaluation (rank 0).
    """

    def __init__(self, metrics=("fid", "is", "kid"), n_samples: int = 10_000, extractor: str = "fmnist-cnn",
                 split: str = "test", n_real: int | None = None, every_n_images: int = 0, seed: int = 0,
                 inception_weights: str | None = None, batch_size: int = 500, progress: bool = False):
        super().__init__(every_n_images)
        self.metrics, self.n_samples, self.extractor_name = metrics, n_samples, extractor
        self.split, self.n_real, self.seed = split, n_real, seed
        self.inception_weights, self.batch_size, self.progress = inception_weights, batch_size, progress
        self.suite: MetricSuite | None = None
        self.history: list[dict] = []

    def setup(self, trainer, pl_module, stage: str) -> None:
        if self.suite is not None:
            return
        extractor = load_extractor(self.extractor_name, self.inception_weights)
        self.suite = MetricSuite(extractor, self.metrics).to(pl_module.device)
        dm = trainer.datamodule
        # Rank 0 computes (or reads) the real features and caches them; the others then read the cache.
        if trainer.is_global_zero:
            feats, status = real_features(dm, self.split, self.n_real, extractor, device=pl_module.device)
            print(f"real statistics ({dm.name}/{self.split}, {len(feats)} images, {extractor.name}): cache {status}",
                  file=sys.stderr)
        trainer.strategy.barrier("real features")
        if not trainer.is_global_zero:
            feats, _ = real_features(dm, self.split, self.n_real, extractor, device=pl_module.device)
        # Each rank holds a disjoint shard; torchmetrics' gather then rebuilds exactly the whole real set.
        shard = feats[trainer.global_rank :: trainer.world_size]
        self.suite.set_real_features(shard.to(pl_module.device), n_total=len(feats))
        if trainer.is_global_zero:  # the protocol behind every logged score
            protocol = {"metrics/extractor": extractor.name, "metrics/extractor_sha256": extractor.sha256,
                        "metrics/resize": extractor.resize_note, "metrics/n_fake": self.n_samples,
                        "metrics/n_real": len(feats), "metrics/real_split": self.split, "metrics/seed": self.seed}
            for logger in trainer.loggers:
                logger.log_hyperparams(protocol)

    def evaluate(self, trainer, pl_module) -> dict[str, float]:
        self.suite.reset_fake()
        label = f"metrics ({', '.join(self.metrics)} of {self.n_samples} samples)"
        generate_and_update(self.suite, pl_module, self.n_samples, self.seed, trainer.global_rank,
                            trainer.world_size, self.batch_size,
                            progress=label if self.progress and trainer.is_global_zero else None)
        res = self.suite.compute(self.n_samples)  # on every rank
        named = named_results(res, self.n_samples, self.extractor_name, self.split)
        named["train/kimg"] = pl_module.images_seen / 1000
        self.history.append(named)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(named, step=pl_module.images_seen)
        if trainer.is_global_zero or trainer.world_size > 1:  # under DDP every rank reports what it computed
            prefix = f"[rank {trainer.global_rank}] " if trainer.world_size > 1 else ""
            print(prefix + "  ".join(f"{k}={v:.6g}" for k, v in named.items()), file=sys.stderr)
        return named

    def run(self, trainer, pl_module, final: bool) -> None:
        self.evaluate(trainer, pl_module)
