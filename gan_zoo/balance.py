"""Policies that balance the D and G updates ("Balancing the GAN game", seed 004).

They are independent of any particular GAN: a model with a D step and a G step asks the policy, per batch,
whether to apply each step (``margin``) or how much L2 penalty to add to D's loss (``l2``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_zoo.losses import l2_penalty

BALANCE_CHOICES = ("none", "margin", "l2")


class BalancePolicy(nn.Module):
    """No balancing: both steps are always taken and D gets no extra penalty."""

    def decide(self, err_real: Tensor, err_fake: Tensor) -> tuple[bool, bool]:
        """``(update_d, update_g)`` for this batch."""
        return True, True

    def d_penalty(self, d_params) -> Tensor | None:
        """Extra term for D's loss, or None."""
        return None

    def observe_g_loss(self, g_loss: Tensor) -> None:
        """Called with G's loss after each G step."""

    @property
    def needs_errors(self) -> bool:
        return False


class MarginPolicy(BalancePolicy):
    """Skip D's update while it is too good, G's while D is too bad (margin m, 0.3 in the seed).

    With ``err_R = BCE(D(x), 1)`` and ``err_F = BCE(D(G(z)), 0)``: skip D if ``err_F < m or err_R < m``; skip G if
    ``err_F > 1 - m or err_R > 1 - m``; if both would be skipped, update both. The losses and gradients may still be
    computed; only the optimizer step is skipped.
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
        r, f = float(err_real), float(err_fake)  # one host sync per step, only when this policy is on
        update_d = not (f < m or r < m)
        update_g = not (f > 1.0 - m or r > 1.0 - m)
        if not update_d and not update_g:
            return True, True
        return update_d, update_g


class AdaptiveL2Policy(BalancePolicy):
    """An L2 penalty on D's weights whose coefficient follows G's loss (seed 004).

    After each G step: if G's loss > ``upper`` (1.3), the coefficient grows by ``step`` (1e-5); if < ``lower`` (0.9),
    it shrinks by ``step``; it never goes below 0. The coefficient is a buffer, so it is checkpointed.
    """

    def __init__(self, step: float = 1e-5, lower: float = 0.9, upper: float = 1.3):
        super().__init__()
        self.step, self.lower, self.upper = step, lower, upper
        self.register_buffer("coef", torch.zeros(()))

    def d_penalty(self, d_params) -> Tensor:
        return l2_penalty(d_params, self.coef)

    @torch.no_grad()
    def observe_g_loss(self, g_loss: Tensor) -> None:
        g = g_loss.detach().to(self.coef.dtype)
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
