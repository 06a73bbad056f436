"""Linear probe: multinomial logistic regression on frozen features, fit on one split, scored on another.

The features are standardised with the training split's mean and std; the weights are fit full-batch with L-BFGS
(deterministic: no minibatch order, no random initialisation — weights start at zero) with an L2 penalty.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


@torch.no_grad()
def extract(fn: Callable[[Tensor], Tensor], x_uint8: Tensor, batch_size: int = 1000, device="cpu") -> Tensor:
    """``fn`` on uint8 images (converted to [-1, 1] floats) in batches, as one float32 CPU tensor (N, F)."""
    from gan_zoo.datamodules.base import to_float

    out = [fn(to_float(x_uint8[i : i + batch_size]).to(device)).float().flatten(1).cpu()
           for i in range(0, len(x_uint8), batch_size)]
    return torch.cat(out)


def _check_features(train_x: Tensor, test_x: Tensor) -> None:
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, F) with the same F, got {tuple(train_x.shape)} and "
                         f"{tuple(test_x.shape)}")


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, l2: float = 1e-4,
                 max_iter: int = 200, device=None) -> dict:
    """Fit logistic regression on ``(train_x, train_y)`` (on ``device``, default the features' own); return
    ``{"train_acc", "test_acc"}`` in % and the feature dimension."""
    _check_features(train_x, test_x)
    device = device or train_x.device
    train_x, test_x = train_x.to(device).double(), test_x.to(device).double()
    train_y, test_y = train_y.to(device), test_y.to(device)
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    a, b = (train_x - mean) / std, (test_x - mean) / std
    k = int(max(train_y.max(), test_y.max())) + 1
    w = torch.zeros(a.shape[1], k, dtype=torch.float64, device=device, requires_grad=True)
    bias = torch.zeros(k, dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, train_y) + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        train_acc = 100.0 * float(((a @ w + bias).argmax(1) == train_y).double().mean())
        test_acc = 100.0 * float(((b @ w + bias).argmax(1) == test_y).double().mean())
    return {"train_acc": train_acc, "test_acc": test_acc, "dim": int(a.shape[1])}


@torch.no_grad()
def nearest_neighbour_accuracy(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor,
                               batch_size: int = 1000) -> float:
    """Accuracy (%) of the 1-nearest-neighbour classifier: each test point takes the label of the train point with the
    highest cosine similarity, both centred on the train mean (the BiGAN paper's 1-NN protocol measures this kind of
    accuracy on MNIST). Ties go to the first train point."""
    _check_features(train_x, test_x)
    mean = train_x.mean(0)
    a = F.normalize(train_x - mean, dim=1)
    correct = 0
    for i in range(0, len(test_x), batch_size):
        b = F.normalize(test_x[i : i + batch_size] - mean, dim=1)
        correct += int((train_y[(b @ a.T).argmax(1)] == test_y[i : i + batch_size]).sum())
    return 100.0 * correct / len(test_x)


def probe_model(model, dm, n_train: int | None = None, device="cpu", nearest_neighbour: bool = False) -> dict:
    """Linear probes of a model's encoder on ``dm``: pooled encoder features (``probe``), the latent ``E(x)``
    (``probe_z``); trained on the train split (``n_train`` images, default all), scored on the test split. With
    ``nearest_neighbour`` each also gets ``nn1_acc``, the 1-nearest-neighbour accuracy on the same features."""
    from gan_zoo.datamodules.base import subset_indices

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
    from gan_zoo.datamodules.base import to_float

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
    from gan_zoo.datamodules.base import to_float

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
