"""Linear probe: multinomial logistic regression on frozen features, fit on one split, scored on another.

The features are standardised with the training split's mean and std; the weights are fit full-batch with L-BFGS
(deterministic: no minibatch order, no random initialisation — weights start at zero) with an L2 penalty.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


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
