"""Each loss against its formula, on fixed scores, with exact values."""

import math

import torch
from torch.testing import assert_close

from gan_zoo import losses
from gan_zoo.balance import AdaptiveL2Policy, MarginPolicy, make_balance_policy
from gan_zoo.networks.blocks import MinibatchDiscrimination

S_REAL = torch.tensor([2.0, -1.0, 0.5])
S_FAKE = torch.tensor([-3.0, 0.0, 1.5])


def _log_sigmoid(x):
    return math.log(1.0 / (1.0 + math.exp(-x)))


def test_bce_d_loss_matches_formula():
    expected = (-sum(_log_sigmoid(s) for s in S_REAL.tolist()) / 3
                - sum(math.log(1 - 1 / (1 + math.exp(-s))) for s in S_FAKE.tolist()) / 3)
    assert_close(losses.bce_d_loss(S_REAL, S_FAKE), torch.tensor(expected))


def test_bce_d_loss_with_one_sided_label_smoothing():
    # ctmakro 2017 (Fast LSGAN in Canton): -(log(1 - D(G(z))) + 0.1 log(1 - D(x)) + 0.9 log D(x)); fakes keep target 0
    d = lambda s: 1 / (1 + math.exp(-s))  # noqa: E731
    real = sum(-(0.9 * math.log(d(s)) + 0.1 * math.log(1 - d(s))) for s in S_REAL.tolist()) / 3
    fake = sum(-math.log(1 - d(s)) for s in S_FAKE.tolist()) / 3
    assert_close(losses.bce_d_loss(S_REAL, S_FAKE, real_target=0.9), torch.tensor(real + fake))


def test_ns_g_loss_matches_formula():
    expected = -sum(_log_sigmoid(s) for s in S_FAKE.tolist()) / 3
    assert_close(losses.ns_g_loss(S_FAKE), torch.tensor(expected))


def test_bce_d_loss_is_stable_for_large_logits():
    big = torch.tensor([200.0, -200.0])
    assert torch.isfinite(losses.bce_d_loss(big, -big)) and torch.isfinite(losses.ns_g_loss(-big))
    assert_close(losses.ns_g_loss(torch.tensor([-200.0])), torch.tensor(200.0))


def test_bce_errors_are_the_two_halves():
    err_r, err_f = losses.bce_errors(S_REAL, S_FAKE)
    assert_close(err_r + err_f, losses.bce_d_loss(S_REAL, S_FAKE))
    assert_close(err_r, torch.tensor(-sum(_log_sigmoid(s) for s in S_REAL.tolist()) / 3))


def test_lsgan_losses_both_codings():
    for coding, (a, b, c) in losses.LSGAN_CODINGS.items():
        d_exp = 0.5 * sum((s - b) ** 2 for s in S_REAL.tolist()) / 3 + 0.5 * sum((s - a) ** 2 for s in S_FAKE.tolist()) / 3
        g_exp = 0.5 * sum((s - c) ** 2 for s in S_FAKE.tolist()) / 3
        assert_close(losses.lsgan_d_loss(S_REAL, S_FAKE, a, b), torch.tensor(d_exp), msg=coding)
        assert_close(losses.lsgan_g_loss(S_FAKE, c), torch.tensor(g_exp), msg=coding)
    assert losses.LSGAN_CODINGS["01"] == (0.0, 1.0, 1.0)
    assert losses.LSGAN_CODINGS["pearson"] == (-1.0, 1.0, 0.0)
    # (0, 1, 1) by hand on these scores
    assert_close(losses.lsgan_d_loss(S_REAL, S_FAKE), torch.tensor((1.0 + 4.0 + 0.25 + 9.0 + 0.0 + 2.25) / 6))


def test_l2_penalty():
    w1, w2 = torch.tensor([1.0, -2.0], requires_grad=True), torch.tensor([[3.0]], requires_grad=True)
    assert_close(losses.l2_penalty([w1, w2], 0.5), torch.tensor(0.5 * (1 + 4 + 9)))


def test_r1_penalty_matches_formula_and_reaches_d():
    gamma = 0.3
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, -4.0]]))
    x = torch.tensor([[1.0, 2.0], [-0.5, 0.25], [0.0, 4.0]], requires_grad=True)
    pen = losses.r1_penalty(lin(x), x, gamma)
    assert_close(pen, torch.tensor(0.5 * gamma * 25.0))  # grad_x = w for every x: ||w||^2 = 9 + 16
    pen.backward()  # d/dw of gamma / 2 * ||w||^2 is gamma * w (double backward); nothing reaches the bias
    assert_close(lin.weight.grad, gamma * lin.weight.detach())
    assert lin.bias.grad is None or torch.equal(lin.bias.grad, torch.zeros(1))
    x2 = x.detach().requires_grad_(True)
    # s(x) = sum x^2: grad_x = 2x, so the penalty is gamma / 2 * mean(4 ||x||^2) = gamma / 2 * 4 * (5 + 0.3125 + 16) / 3
    assert_close(losses.r1_penalty(x2.pow(2).sum(1), x2, gamma), torch.tensor(0.5 * gamma * 4 * 21.3125 / 3))


def test_minibatch_discrimination_matches_hand_computation():
    torch.manual_seed(0)
    mbd = MinibatchDiscrimination(in_features=4, num_kernels=3, kernel_dim=2)
    f = torch.randn(5, 4)
    out = mbd(f)
    M = (f @ mbd.T).view(5, 3, 2)
    o = torch.zeros(5, 3)
    for i in range(5):
        for j in range(5):
            if i != j:
                o[i] += torch.exp(-(M[i] - M[j]).abs().sum(-1))
    assert out.shape == (5, 7)
    assert_close(out[:, :4], f)
    assert_close(out[:, 4:], o)


def test_margin_policy_decisions():
    p = MarginPolicy(0.3)
    t = torch.tensor
    assert p.decide(t(0.5), t(0.5)) == (True, True)
    assert p.decide(t(0.2), t(0.5)) == (False, True)  # D too good on reals: skip D
    assert p.decide(t(0.5), t(0.1)) == (False, True)  # D too good on fakes: skip D
    assert p.decide(t(0.8), t(0.5)) == (True, False)  # D too bad: skip G
    assert p.decide(t(0.5), t(0.75)) == (True, False)
    assert p.decide(t(0.2), t(0.8)) == (True, True)  # both would be skipped: update both


def test_adaptive_l2_coefficient_follows_g_loss():
    p = AdaptiveL2Policy()
    p.observe_g_loss(torch.tensor(1.5))
    p.observe_g_loss(torch.tensor(1.4))
    assert_close(p.coef, torch.tensor(2e-5))
    p.observe_g_loss(torch.tensor(1.0))  # in range: unchanged
    assert_close(p.coef, torch.tensor(2e-5))
    for _ in range(3):
        p.observe_g_loss(torch.tensor(0.5))
    assert_close(p.coef, torch.tensor(0.0))  # floored at 0
    w = torch.ones(3, requires_grad=True)
    p.coef.fill_(0.1)
    assert_close(p.d_penalty([w]), torch.tensor(0.3))
    assert "coef" in p.state_dict()


def test_unknown_balance_policy():
    import pytest

    with pytest.raises(ValueError, match="margin"):
        make_balance_policy("sometimes")
