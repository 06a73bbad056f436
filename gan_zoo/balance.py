"""Policies that balance the D and G updates, from "Balancing the GAN game" (Larsen & Sønderby, "Generating Faces
with Torch", Torch blog, 2015).

They are independent of any particular GAN: a model with a D step and a G step asks the policy, per batch,
whether to apply each step (``margin``) or how much L2 penalty to add to D's loss (``l2``).

The policies read the post's quantities, BCE errors of ``D`` = the discriminator's probability that its input is
real: ``err_R = BCE(D(x), 1)``, ``err_F = BCE(D(G(z)), 0)`` and G's error ``BCE(D(G(z)), 1)``. The model computes them
from its own scores (``AlternatingGAN.balance_errors`` / ``balance_g_error``): for BCE-trained models ``D =
sigmoid(s)``; for LSGAN ``D`` is ``lsgan_real_probability``. Their thresholds are the post's, which sit where they
sit relative to the equilibrium errors (``log 2`` each): any model whose ``D`` is 1/2 at its equilibrium reads them
the same way.

Under data parallelism every rank must make the same decision (a step skipped on one rank but taken on another
leaves an all-reduce unmatched: the run hangs), so both policies average what they read over the ranks first.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gan_zoo.losses import l2_penalty

BALANCE_CHOICES = ("none", "margin", "l2")

BCE_LOG_FLOOR = -100.0  # torch.nn.BCELoss clamps its log terms here, so a probability of exactly 0 or 1 stays finite


def mean_over_ranks(t: Tensor) -> Tensor:
    """``t`` averaged over the processes of the default process group (one all-reduce); ``t`` itself when there is
    no group or it has one process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.detach().clone()
        dist.all_reduce(t)
        return t / dist.get_world_size()
    return t


def lsgan_real_probability(scores: Tensor, a: float, b: float) -> Tensor:
    """LSGAN's score read as the probability that the input is real: ``clamp((s - a) / (b - a), 0, 1)``.

    For a fixed G, LSGAN's optimal D (Mao et al. 2016) is ``s*(x) = (b p_data(x) + a p_g(x)) / (p_data(x) + p_g(x))``,
    so ``(s* - a) / (b - a) = p_data / (p_data + p_g)``: the optimal BCE discriminator ``D*(x)`` (Goodfellow et al.
    2014), the quantity ``sigmoid(s)`` estimates in DCGAN. Optimal scores lie in ``[a, b]``; a score beyond a target
    claims no more than certainty, hence the clamp. At the equilibrium ``p_g = p_data`` the score is ``(a + b) / 2``
    and the probability 1/2, as DCGAN's. This is derived from the loss, not fitted to runs.
    """
    return ((scores.float() - a) / (b - a)).clamp(0.0, 1.0)


def probability_errors(p_real: Tensor, p_fake: Tensor) -> tuple[Tensor, Tensor]:
    """``(err_R, err_F) = (mean -log p(x), mean -log(1 - p(G(z))))``, BCE on probabilities with the log terms floored
    at -100 as ``torch.nn.BCELoss`` does (written out: ``binary_cross_entropy`` is not autocast-safe)."""
    err_r = -torch.log(p_real).clamp_min(BCE_LOG_FLOOR)
    err_f = -torch.log1p(-p_fake).clamp_min(BCE_LOG_FLOOR)
    return err_r.mean(), err_f.mean()


def probability_g_error(p_fake: Tensor) -> Tensor:
    """G's error ``BCE(D(G(z)), 1) = mean -log p(G(z))`` (log floored at -100, as ``probability_errors``)."""
    return -torch.log(p_fake).clamp_min(BCE_LOG_FLOOR).mean()


class BalancePolicy(nn.Module):
    """No balancing: both steps are always taken and D gets no extra penalty."""

    def decide(self, err_real: Tensor, err_fake: Tensor) -> tuple[bool, bool]:
        """``(update_d, update_g)`` for this batch."""
        return True, True

    def d_penalty(self, d_params) -> Tensor | None:
        """Extra term for D's loss, or None."""
        return None

    def observe_g_loss(self, g_error: Tensor) -> None:
        """Called after each G step with G's error ``BCE(D(G(z)), 1)`` (a BCE-trained model's non-saturating G loss
        itself)."""

    @property
    def needs_errors(self) -> bool:
        """Whether ``decide`` reads D's errors (the model computes them only then)."""
        return False

    @property
    def needs_g_error(self) -> bool:
        """Whether ``observe_g_loss`` reads G's error (the model computes it only then)."""
        return False


class MarginPolicy(BalancePolicy):
    """Skip D's update while it is too good, G's while D is too bad (margin m, 0.3 in the "Balancing the GAN game"
    post).

    With ``err_R = BCE(D(x), 1)`` and ``err_F = BCE(D(G(z)), 0)``: skip D if ``err_F < m or err_R < m``; skip G if
    ``err_F > 1 - m or err_R > 1 - m``; if both would be skipped, update both. The losses and gradients may still be
    computed; only the optimizer step is skipped. Under data parallelism the errors are first averaged over the
    ranks (one all-reduce of two numbers), so every rank takes the same decision from the whole global batch.
    """

    def __init__(self, margin: float = 0.3):
        super().__init__()
        if not 0.0 < margin < 0.5:
            raise ValueError(f"balance margin must be in (0, 0.5), got {margin}")
        self.margin = margin

    @property
    def needs_errors(self) -> bool:
        return True

    def decide(self, err_real: Tensor, err_fake: Tensor) -> tuple[bool, bool]:
        m = self.margin
        errs = mean_over_ranks(torch.stack([err_real.detach(), err_fake.detach()]).float())
        r, f = errs.tolist()  # one host sync per step, only when this policy is on
        update_d = not (f < m or r < m)
        update_g = not (f > 1.0 - m or r > 1.0 - m)
        if not update_d and not update_g:
            return True, True
        return update_d, update_g


class AdaptiveL2Policy(BalancePolicy):
    """An L2 penalty on D's weights whose coefficient follows G's error (the "Balancing the GAN game" post).

    After each G step, with G's error ``f = BCE(D(G(z)), 1)``: if ``f > upper`` (1.3), the coefficient grows by
    ``step`` (1e-5); if ``f < lower`` (0.9), it shrinks by ``step``; it never goes below 0. G's error is ``log 2`` at
    the equilibrium, so the bracket asks D to be somewhat, not much, better than chance. The coefficient is a buffer,
    so it is checkpointed. Under data parallelism ``f`` is first averaged over the ranks (one all-reduce of one
    number, no host sync), so the coefficient follows the global batch and is the same on every rank, whether or not
    the strategy also broadcasts buffers.
    """

    def __init__(self, step: float = 1e-5, lower: float = 0.9, upper: float = 1.3):
        super().__init__()
        self.step, self.lower, self.upper = step, lower, upper
        self.register_buffer("coef", torch.zeros(()))

    @property
    def needs_g_error(self) -> bool:
        return True

    def d_penalty(self, d_params) -> Tensor:
        return l2_penalty(d_params, self.coef)

    @torch.no_grad()
    def observe_g_loss(self, g_error: Tensor) -> None:
        g = mean_over_ranks(g_error.detach().to(self.coef.dtype))
        delta = self.step * ((g > self.upper).to(g.dtype) - (g < self.lower).to(g.dtype))
        self.coef.copy_((self.coef + delta).clamp_min(0.0))  # tensor ops only: no host sync


def make_balance_policy(balance: str, margin: float = 0.3) -> BalancePolicy:
    """Build a policy by name: ``none``, ``margin`` or ``l2``."""
    if balance == "none":
        return BalancePolicy()
    if balance == "margin":
        return MarginPolicy(margin)
    if balance == "l2":
        return AdaptiveL2Policy()
    raise ValueError(f"unknown balance policy {balance!r}; valid: {', '.join(BALANCE_CHOICES)}")
