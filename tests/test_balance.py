"""The balancing policies of the "Balancing the GAN game" post (gan_zoo/balance.py) on DCGAN and LSGAN: what each
model's D and G errors are, the policies on the 2D toys, and the same decisions on every rank under DDP."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.testing import assert_close

import gan_zoo
from gan_zoo.datamodules.base import ResumableLoader
from gan_zoo.datamodules.toy import ring_modes
from gan_zoo.balance import (AdaptiveL2Policy, MarginPolicy, lsgan_real_probability, mean_over_ranks,
                             probability_errors)
from gan_zoo.losses import LSGAN_CODINGS, bce_errors, lsgan_g_loss, ns_g_loss
from tests.helpers import tiny_trainer

ROOT = Path(__file__).resolve().parents[1]
LOG2 = math.log(2.0)
CODINGS = sorted(LSGAN_CODINGS)  # "01": (a, b, c) = (0, 1, 1); "pearson": (-1, 1, 0)


# --- the errors each model gives the policies -------------------------------------------------------------------------

@pytest.mark.parametrize("coding", CODINGS)
def test_lsgan_probability_is_the_clamped_position_between_the_fake_and_real_targets(coding):
    a, b, _ = LSGAN_CODINGS[coding]
    s = torch.tensor([a, b, (a + b) / 2, a + 0.25 * (b - a), a - 3.0, b + 0.5])
    assert_close(lsgan_real_probability(s, a, b), torch.tensor([0.0, 1.0, 0.5, 0.25, 0.0, 1.0]))


@pytest.mark.parametrize("coding", CODINGS)
def test_lsgan_errors_are_the_bce_errors_of_that_probability(coding):
    a, b, c = LSGAN_CODINGS[coding]
    model = gan_zoo.get_model("lsgan", data_dim=2, hidden=8, latent_dim=2, coding=coding)
    mid = torch.full((4,), (a + b) / 2)
    # at the equilibrium score (a + b) / 2 every error is log 2, DCGAN's at its equilibrium logit 0
    err_r, err_f = model.balance_errors(mid, mid)
    assert_close(err_r, torch.tensor(LOG2))
    assert_close(err_f, torch.tensor(LOG2))
    assert_close(model.balance_g_error(mid, lsgan_g_loss(mid, c)), torch.tensor(LOG2))
    assert [float(e) for e in bce_errors(torch.zeros(4), torch.zeros(4))] == [float(err_r), float(err_f)]
    # per-sample BCE, batch means; a score past a target is certainty: log 0 floored at -100 as in torch's BCELoss
    at = lambda q: a + q * (b - a)  # noqa: E731  the score whose probability is q
    real = torch.tensor([at(0.8), at(0.4), b + 1.0])
    fake = torch.tensor([at(0.1), at(0.7), a - 1.0])
    err_r, err_f = model.balance_errors(real, fake)
    assert_close(err_r, torch.tensor((-math.log(0.8) - math.log(0.4) + 0.0) / 3))
    assert_close(err_f, torch.tensor((-math.log(0.9) - math.log(0.3) + 0.0) / 3))
    assert_close(model.balance_g_error(fake, lsgan_g_loss(fake, c)),
                 torch.tensor((-math.log(0.1) - math.log(0.7) + 100.0) / 3))
    assert_close(probability_errors(torch.zeros(2), torch.ones(2)), (torch.tensor(100.0), torch.tensor(100.0)))


# The l2 bracket [0.9, 1.3] on G's error, in LSGAN's own G loss for a batch of equal scores s = a + (b - a) e^-f:
# 0.5 * (s - c)^2, and the equilibrium loss 0.5 * ((a + b) / 2 - c)^2 (the numbers in LSGAN's docstring).
LSGAN_L2_BRACKET = {"01": (0.17608, 0.26461, 0.125), "pearson": (0.017456, 0.10348, 0.0)}


@pytest.mark.parametrize("coding", CODINGS)
def test_lsgan_l2_thresholds_in_its_own_loss(coding):
    a, b, c = LSGAN_CODINGS[coding]
    model = gan_zoo.get_model("lsgan", data_dim=2, hidden=8, latent_dim=2, coding=coding, balance="l2")
    policy = model.balance
    lower, upper, equilibrium = LSGAN_L2_BRACKET[coding]
    for f, loss in [(policy.lower, lower), (policy.upper, upper), (LOG2, equilibrium)]:
        s = torch.full((5,), a + (b - a) * math.exp(-f))
        assert_close(model.balance_g_error(s, lsgan_g_loss(s, c)), torch.tensor(f))
        assert_close(lsgan_g_loss(s, c), torch.tensor(loss), atol=2e-5, rtol=0)


def test_dcgan_reads_its_logits_exactly_as_before():
    """DCGAN's errors are ``bce_errors`` of its logits and its G error is its G loss, the very tensor."""
    model = gan_zoo.get_model("dcgan", data_dim=2, hidden=8, latent_dim=2, label_smoothing=0.1)
    s_r, s_f = torch.randn(16), torch.randn(16)
    for mine, reference in zip(model.balance_errors(s_r, s_f), bce_errors(s_r, s_f)):
        assert torch.equal(mine, reference)
    loss = ns_g_loss(s_f)
    assert model.balance_g_error(s_f, loss) is loss


def test_the_rank_mean_is_a_no_op_on_one_process():
    t = torch.tensor([0.25, 0.75])
    assert mean_over_ranks(t) is t
    assert MarginPolicy(0.3).decide(torch.tensor(LOG2), torch.tensor(LOG2)) == (True, True)


# --- on the 2D toy ------------------------------------------------------------------------------------------------------

def ring8_loader(n: int, batch_size: int = 64, seed: int = 0, offset: float = 0.0, rank: int = 0,
                 world_size: int = 1) -> ResumableLoader:
    """ring8 (8 modes on the unit circle, std 0.01), shifted by ``offset``."""
    g = torch.Generator().manual_seed(seed)
    m = ring_modes()
    x = m[torch.randint(len(m), (n,), generator=g)] + 0.01 * torch.randn(n, 2, generator=g) + offset
    return ResumableLoader(n=n, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size,
                           fetch=lambda idx: {"x": x[idx]})


def toy_model(name: str, **kw):
    torch.manual_seed(0)
    return gan_zoo.get_model(name, **{**dict(data_dim=2, latent_dim=2, hidden=32, lr=1e-3, ema_decay=0.0), **kw})


class Recorder(L.Callback):
    """Records the policy's per-step decisions (margin) or the G errors it observes (l2)."""

    def __init__(self):
        self.decisions, self.g_errors = [], []

    def on_train_start(self, trainer, pl_module):
        policy = pl_module.balance
        decide, observe = policy.decide, policy.observe_g_loss

        def recorded_decide(err_real, err_fake):
            out = decide(err_real, err_fake)
            self.decisions.append(out)
            return out

        def recorded_observe(g_error):
            self.g_errors.append(float(g_error.detach()))
            observe(g_error)

        policy.decide, policy.observe_g_loss = recorded_decide, recorded_observe


STEPS = 400
TOY_CASES = {"dcgan": ("dcgan", {}), "lsgan-01": ("lsgan", dict(coding="01")),
             "lsgan-pearson": ("lsgan", dict(coding="pearson"))}


@pytest.mark.parametrize("case", sorted(TOY_CASES))
def test_margin_policy_skips_a_moderate_share_of_steps_on_ring8(case):
    """Over the second half of a 400-step run (the game near its equilibrium, where D's errors hover around log 2),
    neither step is skipped on most batches; LSGAN's scores read as logits skipped G on ~95 % of them."""
    name, kw = TOY_CASES[case]
    model, rec = toy_model(name, balance="margin", **kw), Recorder()
    tiny_trainer(STEPS, callbacks=[rec]).fit(model, ring8_loader(STEPS * 64))
    late = rec.decisions[STEPS // 2:]
    assert len(rec.decisions) == STEPS
    d_skipped = sum(not d for d, _ in late) / len(late)
    g_skipped = sum(not g for _, g in late) / len(late)
    assert d_skipped <= 0.6 and g_skipped <= 0.6, (d_skipped, g_skipped)


@pytest.mark.parametrize("case", sorted(TOY_CASES))
def test_l2_policy_observes_g_error_on_the_bce_scale_on_ring8(case):
    """The G error the l2 policy compares with [0.9, 1.3] stays on the scale of its equilibrium value log 2 (LSGAN's
    raw G loss, ~0.1 for "01" and ~0.02 for "pearson", sat below the bracket for good)."""
    name, kw = TOY_CASES[case]
    model, rec = toy_model(name, balance="l2", **kw), Recorder()
    tiny_trainer(STEPS, callbacks=[rec]).fit(model, ring8_loader(STEPS * 64))
    late = torch.tensor(rec.g_errors[STEPS // 2:])
    assert len(rec.g_errors) == STEPS
    assert 0.4 < float(late.median()) < 1.3, float(late.median())


@pytest.mark.parametrize("coding", CODINGS)
def test_lsgan_l2_coefficient_grows_while_d_rejects_every_fake(coding):
    """D's output layer set to the constant fake target a: G's error is far above 1.3 (its LSGAN loss, 0.5, is above
    the bracket's 0.26 / 0.10 too), so each of 3 steps adds 1e-5. LSGAN's raw loss read on the BCE scale (0.5 < 0.9)
    kept the coefficient at 0."""
    a, _, _ = LSGAN_CODINGS[coding]
    model = toy_model("lsgan", balance="l2", coding=coding, lr=1e-4)
    last = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(a)
    rec = Recorder()
    tiny_trainer(3, callbacks=[rec]).fit(model, ring8_loader(3 * 64, offset=3.0))
    assert_close(model.balance.coef, torch.tensor(3e-5))
    assert min(rec.g_errors) > 3.0  # D(G(z)) < 5 %: D moved its output by less than lr per weight
    policy = AdaptiveL2Policy()
    policy.observe_g_loss(torch.tensor(0.5))  # what the policy saw before: LSGAN's loss at s = a
    assert float(policy.coef) == 0.0


# --- two processes (gloo) -------------------------------------------------------------------------------------------------

DDP_SCRIPT = '''
import json, os, sys
sys.path.insert(0, {root!r})
import lightning as L
from tests.test_balance import Recorder, ring8_loader, toy_model

name, policy, out = sys.argv[1], sys.argv[2], sys.argv[3]
rank = int(os.environ.get("LOCAL_RANK", 0))  # the launcher sets it in the second process

class Dump(Recorder):
    def __init__(self):
        super().__init__()
        self.coefs = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if policy == "l2":  # after this step's update, before the next step's buffer broadcast
            self.coefs.append(float(pl_module.balance.coef))

    def on_train_end(self, trainer, pl_module):
        with open(f"{{out}}/rank{{trainer.global_rank}}.json", "w") as f:
            json.dump({{"decisions": self.decisions, "g_errors": self.g_errors, "coefs": self.coefs,
                       "first": self.first}}, f)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.first = batch["x"].tolist()

# seeded: the same initial weights on both ranks; a fast D, so that its errors also drop below the margin
model = toy_model(name, balance=policy, balance_margin=0.45, lr_d=1e-2)
L.seed_everything(100 + rank)  # different latents on each rank
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="gan_ddp", max_epochs=1, limit_train_batches={steps},
                    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    callbacks=[Dump()])
# each rank its own data: ring8 around (0, 0) on rank 0, around (2, 2) on rank 1
trainer.fit(model, ring8_loader(2 * {steps} * 16, batch_size=16, offset=2.0 * rank, rank=rank, world_size=2))
'''
DDP_STEPS = 40


def run_two_ranks(tmp_path, name: str, policy: str, timeout: float = 120.0) -> tuple[dict, dict]:
    """Fit ``name`` with ``policy`` in 2 CPU processes (gan_ddp, gloo); returns each rank's record. A hang is killed
    (both processes: they run in their own session) and fails the test."""
    script = tmp_path / "ddp_balance.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), steps=DDP_STEPS))
    proc = subprocess.Popen([sys.executable, str(script), name, policy, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT), start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the 2-process fit did not finish in {timeout:.0f} s: a rank waits in a collective")
    assert proc.returncode == 0, err[-3000:]
    return tuple(json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcgan", "lsgan"])
def test_margin_policy_takes_the_same_decisions_on_both_ranks(name, tmp_path):
    """Margin 0.45 (skip D below 0.45, G above 0.55: both happen) on ranks with different data: every rank takes
    every step's decision from the errors averaged over the ranks, so all the decisions agree and the fit ends. Each
    rank deciding from its own batch left one rank in an all-reduce the other never joined."""
    r0, r1 = run_two_ranks(tmp_path, name, "margin")
    assert r0["first"] != r1["first"]  # the ranks trained on different data
    assert len(r0["decisions"]) == len(r1["decisions"]) == DDP_STEPS
    assert r0["decisions"] == r1["decisions"]
    assert any(not d for d, _ in r0["decisions"]) and any(not g for _, g in r0["decisions"])  # both steps skipped


@pytest.mark.slow
def test_l2_policy_keeps_the_same_coefficient_on_both_ranks(tmp_path):
    """The l2 policy observes G's error averaged over the ranks: though each rank's own G error differs, after every
    step's update (before gan_ddp's next buffer broadcast) both ranks hold the same coefficient, and it moved."""
    r0, r1 = run_two_ranks(tmp_path, "lsgan", "l2")
    assert r0["g_errors"] != r1["g_errors"]
    assert len(r0["coefs"]) == DDP_STEPS and r0["coefs"] == r1["coefs"]
    assert max(r0["coefs"]) > 0
