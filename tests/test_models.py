"""Every registered image model: a short real training run changes exactly the parameters it should."""

import copy

import pytest
import torch
from torch.testing import assert_close

import gan_zoo
from gan_zoo.balance import BalancePolicy
from tests.helpers import StepRecorder, param_names, random_loader, tiny_trainer

ALTERNATING = ["dcgan", "lsgan"]


@pytest.mark.parametrize("name", ALTERNATING)
@pytest.mark.parametrize("channels", [1, 3])
def test_d_step_moves_only_d_and_g_step_moves_only_g(name, channels):
    torch.manual_seed(0)
    model = gan_zoo.get_model(name, channels=channels, resolution=16, ngf=8, ndf=8, latent_dim=8)
    rec = StepRecorder()
    ema_before = copy.deepcopy(model.generator_ema.state_dict())
    tiny_trainer(2, callbacks=[rec]).fit(model, random_loader(channels, 16))
    g_names, d_names = param_names(model.generator, "generator"), param_names(model.discriminator, "discriminator")
    # optimizers: 0 = G, 1 = D; per batch the D step comes first
    assert [i for i, _ in rec.steps] == [1, 0, 1, 0]
    for i, changed in rec.steps:
        assert changed == (g_names if i == 0 else d_names)
    assert model.images_seen == 16
    # the EMA generator moved (it follows G) but has no trainable parameters
    assert any(not torch.equal(ema_before[k], v) for k, v in model.generator_ema.state_dict().items())
    assert not any(p.requires_grad for p in model.generator_ema.parameters())


@pytest.mark.parametrize("name", ALTERNATING)
def test_options_train(name):
    torch.manual_seed(0)
    model = gan_zoo.get_model(name, channels=1, resolution=16, ngf=8, ndf=8, latent_dim=8, upsample="nearest",
                              minibatch_kernels=5, instance_noise=0.5, instance_noise_images=32, balance="l2")
    tiny_trainer(2).fit(model, random_loader(1, 16))
    assert model.noise.sigma(model.images_seen) == pytest.approx(0.5 * (1 - 16 / 32))


def test_instance_noise_anneals_linearly_to_zero():
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=4, ndf=4, instance_noise=0.2, instance_noise_images=1000)
    for seen, sigma in [(0, 0.2), (250, 0.15), (1000, 0.0), (5000, 0.0)]:
        model.images_seen = seen
        assert model.noise.sigma(model.images_seen) == pytest.approx(sigma)


class _ForcedPolicy(BalancePolicy):
    needs_errors = True

    def __init__(self, decision):
        super().__init__()
        self.decision = decision

    def decide(self, err_real, err_fake):
        return self.decision


@pytest.mark.parametrize("decision", [(False, True), (True, False)])
def test_skipped_steps_do_not_move_their_network_and_are_logged(decision):
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8, balance="margin")
    model.balance = _ForcedPolicy(decision)
    g0 = copy.deepcopy(model.generator.state_dict())
    d0 = copy.deepcopy(model.discriminator.state_dict())
    logged = {}
    model.write_train_logs = lambda metrics, shown: logged.update(metrics)  # capture what the step logs
    tiny_trainer(1, log_every_n_steps=1).fit(model, random_loader(1, 16))
    g_moved = any(not torch.equal(g0[k], v) for k, v in model.generator.state_dict().items() if "weight" in k)
    d_moved = any(not torch.equal(d0[k], v) for k, v in model.discriminator.state_dict().items() if "weight" in k)
    assert (d_moved, g_moved) == decision
    assert logged["balance/d_skipped"] == float(not decision[0])
    assert logged["balance/g_skipped"] == float(not decision[1])


def test_l2_policy_adds_penalty_to_d_loss():
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8, balance="l2")
    model.balance.coef.fill_(0.01)
    expected = 0.01 * sum(p.pow(2).sum() for p in model.discriminator.parameters())
    assert_close(model.balance.d_penalty(model.discriminator.parameters()), expected)


@pytest.mark.parametrize("name", ALTERNATING)
def test_sample_contract(name):
    model = gan_zoo.get_model(name, channels=3, resolution=32, ngf=8, ndf=8)
    x = model.sample(5, seed=3)
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert_close(model.sample(5, seed=3), x)
    assert not torch.equal(model.sample(5, seed=4), x)
    assert model.training  # sampling restores the mode


def test_sample_uses_ema_generator_and_ema_can_be_off():
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=4, ndf=4)
    assert model.sampling_generator is model.generator_ema
    with torch.no_grad():
        for p in model.generator_ema.parameters():
            p.zero_()
    model.generator_ema.eval()
    x = model.sample(2, seed=0)
    assert torch.allclose(x, x[0].flatten()[0].expand_as(x))  # zero weights: a constant image
    off = gan_zoo.get_model("dcgan", resolution=16, ngf=4, ndf=4, ema_decay=0.0)
    assert off.generator_ema is None and off.sampling_generator is off.generator


def test_ema_update_formula():
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=4, ndf=4, ema_decay=0.9)
    model.ema_updates = 1000  # past the warm-up: beta = decay
    e0 = [p.clone() for p in model.generator_ema.parameters()]
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
    model.update_ema()
    for e, p, e_new in zip(e0, model.generator.parameters(), model.generator_ema.parameters()):
        assert_close(e_new, 0.9 * e + 0.1 * p)
    # warm-up: the first update uses beta = min(decay, 1/10)
    model.ema_updates = 0
    e0 = [p.clone() for p in model.generator_ema.parameters()]
    model.update_ema()
    for e, p, e_new in zip(e0, model.generator.parameters(), model.generator_ema.parameters()):
        assert_close(e_new, 0.1 * e + 0.9 * p)


def test_fixed_noise_is_a_non_persistent_buffer():
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=4, ndf=4, n_fixed_samples=16)
    assert model.fixed_z.shape == (16, 100)
    assert "fixed_z" not in model.state_dict()
    assert_close(gan_zoo.get_model("dcgan", resolution=16, ngf=4, ndf=4, n_fixed_samples=16).fixed_z, model.fixed_z)


@pytest.mark.parametrize("bad", [dict(resolution=30), dict(coding="x"), dict(ema_decay=1.0), dict(upsample="bicubic"),
                                 dict(balance="maybe")])
def test_bad_hparams_raise_value_error(bad):
    name = "lsgan" if "coding" in bad else "dcgan"
    with pytest.raises(ValueError):
        gan_zoo.get_model(name, **bad)


def test_per_step_values_reach_lightning_only_on_the_steps_the_loggers_write():
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8)
    calls = []
    model.write_train_logs = lambda metrics, shown: calls.append((model.images_seen, sorted(metrics), sorted(shown)))
    tiny_trainer(6, log_every_n_steps=3).fit(model, random_loader(1, 16))
    assert [c[0] for c in calls] == [24, 48]  # batches 3 and 6 of 8 images: logger values and bar values
    assert calls[0][1] == ["d/fake_score", "d/real_score", "loss/d", "loss/g", "train/kimg"]
    assert calls[0][2] == ["d", "g"]
