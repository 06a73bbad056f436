"""SelfGAN: the loss against the seed's formulas, the replay buffer, one optimizer moving G and D together."""

import math

import pytest
import torch
from torch.testing import assert_close

import gan_zoo
from gan_zoo.losses import selfgan_loss
from tests.helpers import StepRecorder, param_names, random_loader, tiny_trainer

S_REAL = torch.tensor([1.0, -0.5, 2.0])
S_GEN = torch.tensor([0.3, -1.2, 0.0])
S_LAST = torch.tensor([-2.0, 0.7, 0.1])


def _sig(s):
    return 1 / (1 + math.exp(-s))


def _by_hand(weighting, weights):
    real = [-math.log(_sig(s)) for s in S_REAL.tolist()]
    gen = [-math.log(_sig(s)) for s in S_GEN.tolist()]
    fake = [-math.log(1 - _sig(s)) for s in S_LAST.tolist()]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    if weights == "loss":
        v_r, v_g, v_f = mean(real), mean(gen), mean(fake)
    else:
        v_r = 1 - mean([_sig(s) for s in S_REAL.tolist()])
        v_g = 1 - mean([_sig(s) for s in S_GEN.tolist()])
        v_f = mean([_sig(s) for s in S_LAST.tolist()])
    if weighting == "gpu":
        return mean([(r + 0.1 * v_g * g + 0.9 * v_f * f) / 2 for r, g, f in zip(real, gen, fake)])
    return mean([r * v_r + g * v_g + f * v_f for r, g, f in zip(real, gen, fake)]) / (v_r + v_g + v_f)


@pytest.mark.parametrize("weighting", ["gpu", "tpu"])
@pytest.mark.parametrize("weights", ["loss", "probability"])
def test_selfgan_loss_matches_the_formulas(weighting, weights):
    assert_close(selfgan_loss(S_REAL, S_GEN, S_LAST, weighting, weights), torch.tensor(_by_hand(weighting, weights)))


def test_gradients_flow_through_the_weights():
    s = S_GEN.clone().requires_grad_(True)
    selfgan_loss(S_REAL, s, S_LAST).backward()
    g_flow = s.grad.clone()
    # gpu/loss weighting: d/ds of mean(0.1 * v_g * gen / 2) with v_g = mean(gen): 0.1 * 2 * v_g * dgen / (2 N)
    gen = torch.nn.functional.softplus(-S_GEN)
    dgen = -torch.sigmoid(-S_GEN)
    assert_close(g_flow, 0.1 * 2 * gen.mean() * dgen / (2 * 3))


def test_one_step_moves_g_and_d_with_one_optimizer_and_replays_the_previous_fakes():
    torch.manual_seed(0)
    model = gan_zoo.get_model("selfgan", channels=1, resolution=16, ngf=8, ndf=8, latent_dim=8)
    fakes, d_inputs = [], []
    g_forward, d_forward = model.generator.forward, model.discriminator.forward
    model.generator.forward = lambda z: fakes.append(g_forward(z)) or fakes[-1]
    model.discriminator.forward = lambda x: d_inputs.append(x.detach().clone()) or d_forward(x)
    rec = StepRecorder()
    tiny_trainer(2, callbacks=[rec]).fit(model, random_loader(1, 16))
    g_names, d_names = param_names(model.generator, "generator"), param_names(model.discriminator, "discriminator")
    assert [i for i, _ in rec.steps] == [0, 0]  # a single optimizer, one step per batch
    assert rec.steps[0][1] == g_names | d_names
    # D sees real, G(z), last per step; the first "last" is zeros, the second is step 1's G(z)
    assert len(d_inputs) == 6
    assert torch.equal(d_inputs[2], torch.zeros_like(d_inputs[2]))
    assert torch.equal(d_inputs[5], fakes[0].detach())
    assert torch.equal(model.last_fake, fakes[1].detach())  # the buffer now holds step 2's images


def test_selfgan_on_a_toy_through_the_cli(tmp_path):
    from gan_zoo.fit import main
    from tests.test_fit import read_metrics

    run = tmp_path / "run"
    assert main(["--model", "selfgan", "--data", "ring8", "--max-images", "512", "--batch-size", "64", "--hidden",
                 "32", "--latent-dim", "2", "--logger", "csv", "--out", str(run), "--no-progress-bar"]) == 0
    rows = [r for r in read_metrics(run) if r.get("toy/modes")]
    assert rows and 0 <= float(rows[-1]["toy/modes"]) <= 8 and "toy/reverse_kl" in rows[-1]
    assert list((run / "samples").glob("toy_*.png"))
    samples = gan_zoo.get_model("selfgan", data_dim=2).sample(5, seed=0)
    assert samples.shape == (5, 2)


def test_bad_selfgan_options():
    with pytest.raises(ValueError, match="weighting"):
        gan_zoo.get_model("selfgan", weighting="cpu")
    with pytest.raises(ValueError, match="weights"):
        gan_zoo.get_model("selfgan", weights="odds")
