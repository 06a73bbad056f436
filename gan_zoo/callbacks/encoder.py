"""Models with an encoder (BiGAN, BigBiGAN): their callbacks (reconstruction grids, the linear probe) and the
measurements that run a model's encoder and generator (``probe_model``, ``inversion_metrics``), on top of the
feature-level probes of ``gan_zoo.metrics.probe``."""

from __future__ import annotations

import sys
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_zoo.callbacks.periodic import EveryNImages
from gan_zoo.callbacks.samples import SampleGrid
from gan_zoo.datamodules.base import subset_indices, to_float
from gan_zoo.metrics.probe import linear_probe, nearest_neighbour_accuracy


class ReconstructionGrid(SampleGrid):
    """Real test images and their reconstructions ``G(E(x))``: rows of 8 reals, each above its row of
    reconstructions; ``recon_<images seen>.png`` every ``every_n_images`` and ``recon_final.png`` at the end.

    Args:
        dirpath: output directory.
        every_n_images: images seen between grids.
        n: number of real images (a multiple of 8).
        split: the split the real images come from (fixed images, the same in every grid).
    """

    nrow = 8

    def __init__(self, dirpath, every_n_images: int = 10_000, n: int = 32, split: str = "test"):
        super().__init__(dirpath, every_n_images, key="samples/reconstruction", prefix="recon", final="recon_final")
        if n % 8:
            raise ValueError(f"n must be a multiple of 8, got {n}")
        self.n, self.split = n, split
        self._real: torch.Tensor | None = None

    def images(self, trainer, pl_module) -> torch.Tensor:
        if self._real is None:
            self._real = trainer.datamodule.real_images(self.split, self.n)
        real = self._real.to(pl_module.device)
        rec = pl_module.reconstruct(real)
        rows = [t for i in range(0, self.n, 8) for t in (real[i : i + 8], rec[i : i + 8])]
        return torch.cat(rows)


class LinearProbe(EveryNImages):
    """Linear-probe test accuracy of the encoder at the end of the fit (and every ``every_n_images``):
    ``metrics/probe_acc`` (pooled encoder features) and ``metrics/probe_z_acc`` (the latent ``E(x)``).

    Args:
        every_n_images: images seen between probes (0 = only at the end).
        n_train: training images for the probe (default: the whole train split).
    """

    def __init__(self, every_n_images: int = 0, n_train: int | None = None):
        super().__init__(every_n_images)
        self.n_train = n_train
        self.history: list[dict] = []

    def run(self, trainer, pl_module, final: bool) -> None:
        res = probe_model(pl_module, trainer.datamodule, self.n_train, device=pl_module.device)
        logged = {f"metrics/{k}_acc": v["test_acc"] for k, v in res.items()}
        logged["train/kimg"] = pl_module.images_seen / 1000
        self.history.append(logged)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(logged, step=pl_module.images_seen)
            print("linear probe test accuracy: " + ", ".join(
                f"{k} {v['test_acc']:.2f} % ({v['dim']}-d)" for k, v in res.items()), file=sys.stderr)


@torch.no_grad()
def extract(fn: Callable[[Tensor], Tensor], x_uint8: Tensor, batch_size: int = 1000, device="cpu") -> Tensor:
    """``fn`` on uint8 images (converted to [-1, 1] floats) in batches, as one float32 CPU tensor (N, F)."""
    out = [fn(to_float(x_uint8[i : i + batch_size]).to(device)).float().flatten(1).cpu()
           for i in range(0, len(x_uint8), batch_size)]
    return torch.cat(out)


def probe_model(model, dm, n_train: int | None = None, device="cpu", nearest_neighbour: bool = False) -> dict:
    """Linear probes of a model's encoder on ``dm``: pooled encoder features (``probe``), the latent ``E(x)``
    (``probe_z``); trained on the train split (``n_train`` images, default all), scored on the test split. With
    ``nearest_neighbour`` each also gets ``nn1_acc``, the 1-nearest-neighbour accuracy on the same features."""
    x_tr, y_tr = dm.split("train")
    idx = subset_indices(len(x_tr), n_train)
    x_tr, y_tr = x_tr[idx], y_tr[idx]
    x_te, y_te = dm.split("test")
    out = {}
    for key, fn in (("probe", model.encoder_features), ("probe_z", model.encode)):
        f_tr, f_te = extract(fn, x_tr, device=device), extract(fn, x_te, device=device)
        res = linear_probe(f_tr, y_tr, f_te, y_te, device=device)
        if nearest_neighbour:
            res["nn1_acc"] = nearest_neighbour_accuracy(f_tr.to(device), y_tr.to(device), f_te.to(device),
                                                        y_te.to(device))
        out[key] = res
    return out


@torch.no_grad()
def inversion_metrics(model, x: Tensor | None, y: Tensor | None, classifier=None, n_latent: int = 10_000,
                      seed: int = 0, batch_size: int = 500, pairing: bool = True) -> dict:
    """How well a model's encoder E inverts its (sampling) generator G, BiGAN's defining property.

    - ``latent_cos``: mean cosine similarity of ``z`` and ``E(G(z))`` over ``n_latent`` prior draws (seeded): 1 when E
      inverts G on G's own samples, about 0 when E's output is unrelated to the z that made the image.
    - with a ``classifier`` (``logits(x)``, e.g. the ``fmnist-cnn`` extractor) and labelled images ``x`` (uint8):
      ``recon_class_acc``, the % of images whose reconstruction ``G(E(x))`` the classifier assigns to the image's
      label, and ``real_class_acc``, the classifier's accuracy on the images themselves (the ceiling).
    - with images ``x``, ``pairing`` on, and a model whose ``discriminator(x, z)`` returns scores ending in the joint
      ``s_xz`` (turn ``pairing`` off for a model whose D is not trained, such as a zoo entry):
      ``d_pairing_gap``, D's mean joint score on the encoder pairs ``(x, E(x))`` minus that on the same pairs with
      the codes shuffled among the images (a seeded permutation). About 0 means D ignores which code goes with which
      image, so the E+G step gets no signal to make E invert G (only to match the codes' marginal); BiGAN needs it
      well above 0.
    """
    device = model.device
    z = model.sample_latent(n_latent, generator=torch.Generator().manual_seed(seed), device=device)
    z_hat = torch.cat([model.encode(model.generate(zb)) for zb in z.split(batch_size)])
    out = {"latent_cos": float(F.cosine_similarity(z_hat.float(), z.float(), dim=1).mean()), "n_latent": n_latent}
    if x is None:
        return out
    out["n_images"] = len(x)
    batches = [(i, to_float(x[i : i + batch_size]).to(device)) for i in range(0, len(x), batch_size)]
    codes = torch.cat([model.encode(xb) for _, xb in batches])
    if classifier is not None:
        real_ok = recon_ok = 0
        for i, xb in batches:
            yb = y[i : i + batch_size].to(device)
            real_ok += int((classifier.logits(xb).argmax(1) == yb).sum())
            recon_ok += int((classifier.logits(model.generate(codes[i : i + len(xb)])).argmax(1) == yb).sum())
        out.update(recon_class_acc=100.0 * recon_ok / len(x), real_class_acc=100.0 * real_ok / len(x))
    disc = getattr(model, "discriminator", None) if pairing else None
    if disc is not None:
        out["d_pairing_gap"] = _pairing_gap(disc, batches, codes, seed)
    return out


@torch.no_grad()
def pairing_gap(model, x: Tensor, seed: int = 0, batch_size: int = 500) -> float:
    """``d_pairing_gap`` of ``inversion_metrics`` alone, on uint8 images ``x``."""
    batches = [(i, to_float(x[i : i + batch_size]).to(model.device)) for i in range(0, len(x), batch_size)]
    return _pairing_gap(model.discriminator, batches, torch.cat([model.encode(xb) for _, xb in batches]), seed)


def _pairing_gap(disc, batches: list[tuple[int, Tensor]], codes: Tensor, seed: int) -> float:
    # D's mean joint score (the last score) on (x, E(x)) minus that with the codes permuted, in eval mode
    shuffled = codes[torch.randperm(len(codes), generator=torch.Generator().manual_seed(seed)).to(codes.device)]
    was = disc.training
    disc.eval()
    try:
        gap = sum(float((disc(xb, codes[i : i + len(xb)])[-1] - disc(xb, shuffled[i : i + len(xb)])[-1]).sum())
                  for i, xb in batches)
    finally:
        disc.train(was)
    return gap / len(codes)
