"""The semi-supervised GAN: both D forms against their formulas, no double softmax, no label leakage."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import gan_zoo
from gan_zoo.datamodules.base import ResumableLoader
from gan_zoo import losses
from gan_zoo.networks.blocks import GaussianNoise, WeightNormLinear
from tests.helpers import StepRecorder, param_names, tiny_trainer

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
Y = torch.tensor([0, 2])


def _lse(row):
    return math.log(sum(math.exp(v) for v in row))


def test_supervised_loss_is_cross_entropy_on_raw_logits():
    expected = -sum(LOGITS[i, Y[i]].item() - _lse(LOGITS[i].tolist()) for i in range(2)) / 2
    sup, _ = losses.salimans_d_loss(LOGITS, Y, LOGITS, LOGITS)
    assert_close(sup, torch.tensor(expected))
    # a softmax before the cross-entropy (the known bug) gives another value
    assert not torch.allclose(F.cross_entropy(LOGITS.softmax(1), Y), sup)


def test_salimans_unsupervised_loss_by_hand():
    real, fake = LOGITS, torch.tensor([[-1.0, 0.0, 0.5], [2.0, 2.0, -3.0]])
    lse_r = [_lse(r) for r in real.tolist()]
    lse_f = [_lse(r) for r in fake.tolist()]
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    # -log D(x) with D = Z/(Z+1) for reals, -log(1 - D(G(z))) for fakes, halved (as in the paper's code)
    expected = (0.5 * sum(-lse + sp(lse) for lse in lse_r) / 2 + 0.5 * sum(sp(lse) for lse in lse_f) / 2)
    _, unsup = losses.salimans_d_loss(LOGITS, Y, real, fake)
    assert_close(unsup, torch.tensor(expected))
    assert_close(losses.salimans_ns_g_loss(fake), torch.tensor(sum(sp(-lse) for lse in lse_f) / 2))


def test_odena_losses_by_hand():
    lab = torch.tensor([[1.0, 0.0, -1.0, 0.5]])  # K = 3 plus "fake"
    unl = torch.tensor([[0.2, 0.1, 0.3, 2.0]])
    fake = torch.tensor([[0.0, 1.0, 0.0, -0.5]])
    p = lambda row: [math.exp(v) / sum(math.exp(u) for u in row) for v in row]  # noqa: E731
    sup_exp = -math.log(p(lab[0].tolist())[1])
    unsup_exp = -math.log(1 - p(unl[0].tolist())[3]) - math.log(p(fake[0].tolist())[3])
    sup, unsup = losses.odena_d_loss(lab, torch.tensor([1]), unl, fake)
    assert_close(sup, torch.tensor(sup_exp))
    assert_close(unsup, torch.tensor(unsup_exp))
    assert_close(losses.odena_g_loss(fake), torch.tensor(-math.log(1 - p(fake[0].tolist())[3])))


def test_feature_matching_loss():
    a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    assert_close(losses.feature_matching_loss(a, b), torch.tensor((2 - 1) ** 2 + (3 - 1) ** 2.0))


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("form,outputs", [("odena", 11), ("salimans", 10)])
def test_shapes_for_both_forms(form, outputs, arch):
    m = gan_zoo.get_model("semisupgan", form=form, ngf=8, ndf=8, arch=arch)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert m.discriminator(x).shape == (4, outputs)
    assert m.classify(x).shape == (4, 10)
    assert m.sample(3).shape == (3, 1, 28, 28)
    fake = m.generator(m.sample_latent(5))  # the raw generator, in training mode, unclamped
    assert fake.shape == (5, 1, 28, 28) and fake.min() >= -1 and fake.max() <= 1
    if arch == "mlp":
        assert m.discriminator.features(x).shape == (4, 250)  # the last hidden layer: what feature matching reads


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("form", ["odena", "salimans"])
def test_unlabeled_images_never_enter_the_supervised_loss(form, arch):
    torch.manual_seed(0)
    m = gan_zoo.get_model("semisupgan", form=form, ngf=8, ndf=8, arch=arch)
    m.discriminator.eval()  # no dropout randomness
    x_lab = (torch.rand(4, 1, 28, 28) * 2 - 1).requires_grad_(True)
    x_unl = (torch.rand(6, 1, 28, 28) * 2 - 1).requires_grad_(True)
    fake = torch.rand(6, 1, 28, 28) * 2 - 1
    terms = m.d_losses(x_lab, torch.tensor([0, 1, 2, 3]), x_unl, fake)
    g_lab, g_unl = torch.autograd.grad(terms["sup"], [x_lab, x_unl], allow_unused=True, retain_graph=True)
    assert g_unl is None and g_lab.abs().sum() > 0
    g_lab2, g_unl2 = torch.autograd.grad(terms["unsup"], [x_lab, x_unl], allow_unused=True)
    assert g_lab2 is None and g_unl2.abs().sum() > 0


def _semi_loader(n=48, bs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    xl, yl = torch.rand(10, 1, 28, 28, generator=g) * 2 - 1, torch.arange(10)

    def fetch(idx):
        return {"x": x[idx], "y": torch.full((len(idx),), -1)}

    loader = ResumableLoader(n=n, batch_size=bs, seed=seed, fetch=fetch)
    loader.extra = lambda epoch, b: {"x_lab": xl[(b * 4) % 10 : (b * 4) % 10 + 4], "y_lab": yl[(b * 4) % 10 : (b * 4) % 10 + 4]}
    return loader


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("supervised_only", [False, True])
def test_steps_move_exactly_their_network(supervised_only, arch):
    torch.manual_seed(0)
    m = gan_zoo.get_model("semisupgan", ngf=8, ndf=8, supervised_only=supervised_only, arch=arch)
    rec = StepRecorder()
    tiny_trainer(2, callbacks=[rec]).fit(m, _semi_loader())
    g_names, d_names = param_names(m.generator, "generator"), param_names(m.discriminator, "discriminator")
    expected = [1] * 2 if supervised_only else [1, 0, 1, 0]  # 0 = G, 1 = D
    assert [i for i, _ in rec.steps] == expected
    for i, changed in rec.steps:
        if arch == "mlp" and i == 1:
            # a ReLU unit dead on the whole (noisy) batch gets no gradient, and Adam's first step leaves it: the D
            # step moves D only, its head and first layer surely
            assert changed <= d_names and {"discriminator.head.weight_g", "discriminator.trunk.2.weight_v"} <= changed
        else:
            assert changed == (g_names if i == 0 else d_names)
    assert m.d_ema_updates == 2


def _first_layer(d: torch.nn.Module) -> torch.nn.Module:
    return next(m for m in d.modules() if not list(m.children()))


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_supervised_only_baseline_never_runs_g_or_reads_unlabeled_images(arch):
    """The baseline's D (its data-dependent initialisation included) sees labeled batches only: unlabeled images are
    NaN here, and the generator is never called."""
    torch.manual_seed(0)
    m = gan_zoo.get_model("semisupgan", ngf=8, ndf=8, supervised_only=True, arch=arch)
    loader = _semi_loader()
    fetch = loader.fetch
    loader.fetch = lambda idx: {**fetch(idx), "x": torch.full((len(idx), 1, 28, 28), float("nan"))}
    g_calls, d_inputs = [], []
    m.generator.register_forward_pre_hook(lambda mod, args: g_calls.append(1))
    _first_layer(m.discriminator).register_forward_pre_hook(lambda mod, args: d_inputs.append(args[0].detach()))
    tiny_trainer(2).fit(m, loader)
    assert g_calls == []
    assert d_inputs and all(x.shape[0] == 4 and torch.isfinite(x).all() for x in d_inputs)  # labeled batches of 4
    assert len(d_inputs) == (3 if arch == "mlp" else 2)  # the mlp's data-dependent initialisation, then 2 steps
    assert all(torch.isfinite(p).all() for p in m.discriminator.parameters())
    assert all(torch.isfinite(p).all() for p in m.discriminator_ema.parameters())


# --- arch="mlp": Salimans et al.'s permutation-invariant MNIST networks -----------------------------------------------


def _mlp(**kw):
    torch.manual_seed(0)
    return gan_zoo.get_model("semisupgan", arch="mlp", **kw)


def test_mlp_noise_is_on_in_training_mode_only():
    d = _mlp().discriminator
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    d.eval()
    assert torch.equal(d(x), d(x)) and torch.equal(d.features(x), d.features(x))
    d.train()
    assert not torch.equal(d(x), d(x)) and not torch.equal(d.features(x), d.features(x))
    noise = [m for m in d.modules() if isinstance(m, GaussianNoise)]
    assert [m.std for m in noise] == [0.3, 0.5, 0.5, 0.5, 0.5, 0.5]  # the input, then after each hidden layer


def test_mlp_weight_normalisation_on_the_right_layers():
    m = _mlp()
    d, g = m.discriminator, m.generator
    dense = [mod for mod in d.modules() if isinstance(mod, WeightNormLinear)]
    assert [(mod.in_features, mod.out_features) for mod in dense] == [
        (784, 1000), (1000, 500), (500, 250), (250, 250), (250, 250), (250, 10)]
    assert not any(isinstance(mod, torch.nn.Linear) for mod in d.modules())  # every dense layer of D normalised
    d_params = dict(d.named_parameters())
    for mod in dense[:-1]:  # hidden layers: a scale set by the data-dependent initialisation, not trained
        assert "weight_g" in dict(mod.named_buffers()) and "weight_g" not in dict(mod.named_parameters())
    assert "head.weight_g" in d_params and "head.weight_v" in d_params  # the head's scale is trained
    # G: batch-normalised hidden layers, a weight-normalised output layer with a trained scale
    assert [mod.out_features for mod in g.modules() if isinstance(mod, torch.nn.Linear)] == [500, 500]
    assert isinstance(g.out, WeightNormLinear) and (g.out.in_features, g.out.out_features) == (500, 784)
    assert "out.weight_g" in dict(g.named_parameters())
    assert len([mod for mod in g.modules() if isinstance(mod, torch.nn.BatchNorm1d)]) == 2
    for mod in dense + [g.out]:  # each row of W has the norm of its scale
        assert_close(mod.weight.norm(dim=1), mod.weight_g.abs())


def test_mlp_data_dependent_initialisation_moves_d_only():
    m = _mlp()
    x_lab = torch.rand(32, 1, 28, 28) * 2 - 1
    g_before = {k: v.clone() for k, v in m.generator.state_dict().items()}
    d = m.discriminator.eval()  # without noise: the first layer's pre-activations come out standardised on x_lab
    m.init_d_from_data(x_lab)
    assert all(torch.equal(v, g_before[k]) for k, v in m.generator.state_dict().items())
    pre = d.trunk[2](torch.flatten((x_lab + 1) / 2, 1))
    assert_close(pre.mean(0), torch.zeros(1000), atol=1e-4, rtol=0)
    assert_close(pre.std(0, unbiased=False), torch.ones(1000), atol=1e-4, rtol=0)
    for k, v in m.discriminator_ema.state_dict().items():  # the classifier starts from the initialised D
        assert torch.equal(v, d.state_dict()[k]), k


def test_mlp_latents_are_uniform_like_their_code():
    m = _mlp()
    z = m.sample_latent(1000)
    assert z.shape == (1000, 100) and z.min() >= 0 and z.max() < 1 and abs(z.mean().item() - 0.5) < 0.02
    assert m.fixed_z.min() >= 0 and m.fixed_z.max() < 1
    assert torch.equal(m.sample(4, seed=3), m.sample(4, seed=3))
    assert gan_zoo.get_model("semisupgan", ngf=8, ndf=8).sample_latent(1000).min() < 0  # conv: standard normal


MLP_DDP_SCRIPT = """
import os, sys
sys.path.insert(0, {root!r})
import lightning as L, torch
import gan_zoo
from tests.test_semisup import _semi_loader

out, strategy = sys.argv[1], sys.argv[2]
rank = int(os.environ.get("LOCAL_RANK", 0))
loader = _semi_loader(seed=rank)  # each rank its own labeled batches: its own data-dependent initialisation

class Dump(L.Callback):
    def on_train_end(self, trainer, pl_module):
        torch.save({{k: v.detach().clone() for k, v in pl_module.discriminator.state_dict().items()}},
                   f"{{out}}/rank{{trainer.global_rank}}.pt")

torch.manual_seed(0)
model = gan_zoo.get_model("semisupgan", arch="mlp")
L.seed_everything(100 + rank)
L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=1, limit_train_batches=2, logger=False,
          enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
          callbacks=[Dump()]).fit(model, loader)
"""


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["gan_ddp", "ddp_find_unused_parameters_true"])
def test_mlp_data_dependent_initialisation_is_the_same_on_every_rank(strategy, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "ddp.py"
    script.write_text(MLP_DDP_SCRIPT.format(root=str(root)))
    r = subprocess.run([sys.executable, str(script), str(tmp_path), strategy], capture_output=True, text=True,
                       timeout=300, cwd=str(root), env={**os.environ, "PYTHONPATH": str(root)})
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = (torch.load(tmp_path / f"rank{i}.pt", weights_only=True) for i in (0, 1))
    for k in a:  # D's parameters and buffers (its weight scales included), after initialisation and 2 steps
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("arch", ["conv", "mlp"])
def test_fit_logs_test_accuracy(tmp_path, arch):
    from gan_zoo.fit import main
    from tests.test_datamodules import write_mnist
    from tests.test_fit import read_metrics

    write_mnist(tmp_path / "data", n_train=120, n_test=30)
    run = tmp_path / "run"
    assert main(["--model", "semisupgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--num-labeled",
                 "20", "--batch-size", "16", "--ngf", "8", "--ndf", "8", "--max-images", "64", "--logger", "csv",
                 "--out", str(run), "--metrics", "none", "--no-progress-bar", "--arch", arch]) == 0
    rows = [r for r in read_metrics(run) if r.get("metrics/test_acc")]
    assert len(rows) == 1 and 0 <= float(rows[0]["metrics/test_acc"]) <= 100


def test_bad_semisup_options():
    with pytest.raises(ValueError, match="form"):
        gan_zoo.get_model("semisupgan", form="k+2")
    with pytest.raises(ValueError, match="g_loss"):
        gan_zoo.get_model("semisupgan", g_loss="wgan")
    with pytest.raises(ValueError, match="arch must be one of conv, mlp, got 'resnet'"):
        gan_zoo.get_model("semisupgan", arch="resnet")
    for channels, resolution in ((1, 32), (3, 28)):
        with pytest.raises(ValueError, match="arch mlp takes 28x28 grey images: channels must be 1 and resolution 28"):
            gan_zoo.get_model("semisupgan", arch="mlp", channels=channels, resolution=resolution)
