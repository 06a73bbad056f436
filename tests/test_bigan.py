"""BiGAN / BigBiGAN-lite: the losses against their formulas, which step moves what, shapes, the linear probe."""

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import gan_zoo
from gan_zoo.datamodules.base import GANDataModule
from gan_zoo.losses import bigan_d_loss, bigan_eg_loss, bigbigan_d_loss, bigbigan_eg_loss
from gan_zoo.metrics.probe import linear_probe
from tests.helpers import StepRecorder, param_names, random_loader, tiny_trainer

ENC = (torch.tensor([0.5, -1.5]), torch.tensor([2.0, 0.25]), torch.tensor([1.2, -0.3]))  # (s_x, s_z, s_xz)
GEN = (torch.tensor([-0.2, 1.4]), torch.tensor([-3.0, 0.5]), torch.tensor([0.1, -2.0]))


def test_bigbigan_losses_match_the_formulas():
    relu = lambda v: max(v, 0.0)  # noqa: E731
    d = sum(sum(relu(1 - v) for v in se.tolist()) / 2 + sum(relu(1 + v) for v in sg.tolist()) / 2
            for se, sg in zip(ENC, GEN))
    assert_close(bigbigan_d_loss(ENC, GEN), torch.tensor(d))
    # E+G: mean(s_x + s_z + s_xz)[enc] - mean(...)[gen]
    eg = sum((ENC[0] + ENC[1] + ENC[2]).tolist()) / 2 - sum((GEN[0] + GEN[1] + GEN[2]).tolist()) / 2
    assert_close(bigbigan_eg_loss(ENC, GEN), torch.tensor(eg))


def test_dropping_the_unary_heads_leaves_exactly_the_joint_term():
    joint_e, joint_g = (None, None, ENC[2]), (None, None, GEN[2])
    assert_close(bigbigan_d_loss(joint_e, joint_g), F.relu(1 - ENC[2]).mean() + F.relu(1 + GEN[2]).mean())
    assert_close(bigbigan_eg_loss(joint_e, joint_g), ENC[2].mean() - GEN[2].mean())
    unary_only = bigbigan_d_loss(ENC[:2] + (torch.full((2,), 1e9),), GEN[:2] + (torch.full((2,), -1e9),))
    assert_close(bigbigan_d_loss(ENC, GEN) - bigbigan_d_loss(joint_e, joint_g), unary_only)
    assert_close(bigan_d_loss(joint_e, joint_g), F.softplus(-ENC[2]).mean() + F.softplus(GEN[2]).mean())


def test_bigan_bce_losses_match_the_formulas():
    import math

    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    se, sg = ENC[2].tolist(), GEN[2].tolist()
    d = -sum(math.log(sig(v)) for v in se) / 2 - sum(math.log(1 - sig(v)) for v in sg) / 2
    eg = -sum(math.log(1 - sig(v)) for v in se) / 2 - sum(math.log(sig(v)) for v in sg) / 2
    assert_close(bigan_d_loss((None, None, ENC[2]), (None, None, GEN[2])), torch.tensor(d))
    assert_close(bigan_eg_loss((None, None, ENC[2]), (None, None, GEN[2])), torch.tensor(eg))


def _tiny(name, channels=1, **kw):
    torch.manual_seed(0)
    return gan_zoo.get_model(name, channels=channels, resolution=16, ngf=8, nef=8, ndf=8, d_hidden=16,
                             latent_dim=6, **kw)


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("name,d_steps", [("bigan", 1), ("bigbigan", 2)])
def test_d_steps_never_move_e_or_g_and_the_eg_step_never_moves_d(name, d_steps, arch):
    model = _tiny(name, arch=arch)
    assert model.hparams.d_steps == d_steps
    g_grad, e_grad = [], []
    g_fwd, e_fwd = model.generator.forward, model.encoder.forward
    model.generator.forward = lambda z: (lambda o: g_grad.append(o.requires_grad) or o)(g_fwd(z))
    model.encoder.forward = lambda x, sample=True: (lambda o: e_grad.append(o.requires_grad) or o)(e_fwd(x, sample))
    rec = StepRecorder()
    tiny_trainer(4, callbacks=[rec]).fit(model, random_loader(1, 16))
    d_names = param_names(model.discriminator, "discriminator")
    eg_names = param_names(model.generator, "generator") | param_names(model.encoder, "encoder")
    assert len(d_names) > 0 and len(eg_names) > 0
    expected = []
    for b in range(4):
        expected.append((1, d_names))
        if (b + 1) % d_steps == 0:
            expected.append((0, eg_names))
    assert [i for i, _ in rec.steps] == [i for i, _ in expected]
    for (_, changed), (_, allowed) in zip(rec.steps, expected):
        assert changed <= allowed  # a D step never moves E or G, the E+G step never moves D
        # every weight moves (a bias can sit still: with every hinge active its gradient is exactly 0)
        assert {n for n in allowed if "bias" not in n} <= changed
    # one G and one E forward per batch (the E+G step reuses the D step's), with a graph only on E+G batches
    assert g_grad == [(b + 1) % d_steps == 0 for b in range(4)]
    assert e_grad == g_grad


@pytest.mark.parametrize("arch", ["conv", "mlp"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("unary", [False, True])
def test_shapes(channels, unary, arch):
    model = _tiny("bigbigan", channels=channels, unary=unary, arch=arch).eval()
    x = torch.rand(5, channels, 16, 16) * 2 - 1
    z = model.encode(x)
    assert z.shape == (5, 6)
    assert model.reconstruct(x).shape == (5, channels, 16, 16)
    assert model.sample(3, seed=0).shape == (3, channels, 16, 16)
    s_x, s_z, s_xz = model.discriminator(x, z)
    assert s_xz.shape == (5,)
    assert (s_x is None and s_z is None) == (not unary)
    if unary:
        assert s_x.shape == (5,) and s_z.shape == (5,)
    assert model.encoder_features(x).shape == (5, model.encoder.feature_dim)
    if arch == "mlp":  # fully connected throughout: 16 * width hidden units, no conv anywhere
        assert model.encoder.feature_dim == 16 * 8
        assert not any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def test_mlp_networks_are_permutation_invariant():
    # Permuting the pixels of the input and the columns of the first layers' weights gives the same outputs: the
    # mlp encoder and discriminator see no spatial structure (the setting of BiGAN's MNIST 1-NN result).
    model = _tiny("bigbigan", arch="mlp", spectral_norm=False).eval()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    z = model.encode(x)
    scores = model.discriminator(x, z)
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for lin in (model.encoder.trunk[1], model.discriminator.F[0][1]):
            lin.weight.copy_(lin.weight[:, perm])  # column j now reads pixel perm[j]
    xp = x.flatten(1)[:, perm].view_as(x)
    assert not torch.equal(xp, x)
    assert_close(model.encode(xp), z)
    for a, b in zip(model.discriminator(xp, z), scores):
        assert_close(a, b)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="arch must be one of conv, mlp"):
        _tiny("bigan", arch="resnet")


def test_stochastic_encoder_is_reparameterised():
    model = _tiny("bigbigan", stochastic_encoder=True)
    enc = model.encoder.train()
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    torch.manual_seed(1)
    a = enc(x)
    torch.manual_seed(2)
    b = enc(x)
    assert not torch.allclose(a, b)  # sampled
    mu = enc(x, sample=False)
    assert_close(enc(x, sample=False), mu)  # the mean is deterministic
    enc(x).pow(2).sum().backward()
    head = enc.head.weight.grad
    assert head[:6].abs().sum() > 0 and head[6:].abs().sum() > 0  # gradient reaches the mean and the scale rows


def test_encoder_lr_multiplier():
    model = _tiny("bigbigan", lr_e_mult=10.0, lr=1e-4)
    opt_eg, _ = model.configure_optimizers()
    assert [g["lr"] for g in opt_eg.param_groups] == [1e-4, pytest.approx(1e-3)]


def test_linear_probe_is_exact_on_separable_data_and_chance_on_noise():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(400) % 4
    centres = torch.randn(4, 8, generator=g) * 5
    x = centres[y] + torch.randn(400, 8, generator=g) * 0.1
    res = linear_probe(x[:300], y[:300], x[300:], y[300:])
    assert res["test_acc"] == 100.0 and res["dim"] == 8
    assert linear_probe(x[:300], y[:300], x[300:], y[300:]) == res  # deterministic
    noise = torch.randn(2000, 8, generator=g)
    ry = torch.randint(0, 4, (2000,), generator=g)
    assert 15.0 < linear_probe(noise[:1000], ry[:1000], noise[1000:], ry[1000:])["test_acc"] < 35.0


def test_nearest_neighbour_accuracy_on_known_points():
    from gan_zoo.metrics.probe import nearest_neighbour_accuracy

    # train points on the axes (mean 0), one class each; cosine similarity picks the axis nearest in angle
    train = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    test = torch.tensor([[2.0, 0.1], [0.1, -3.0], [-1.0, -0.2]])  # nearest: classes 0, 3, 2
    acc = nearest_neighbour_accuracy(train, torch.tensor([0, 1, 2, 3]), test, torch.tensor([0, 3, 1]))
    torch.testing.assert_close(acc, 200.0 / 3)
    # the train mean is subtracted first: shifted by (5, 5), the same points give the same answer
    torch.testing.assert_close(nearest_neighbour_accuracy(train + 5, torch.tensor([0, 1, 2, 3]), test + 5,
                                                          torch.tensor([0, 3, 1]), batch_size=2), 200.0 / 3)
    with pytest.raises(ValueError, match="same F"):
        nearest_neighbour_accuracy(train, torch.tensor([0, 1, 2, 3]), torch.zeros(2, 3), torch.tensor([0, 1]))


def test_probe_model_adds_the_nearest_neighbour_accuracy_on_the_same_features():
    from gan_zoo.callbacks.encoder import extract, probe_model
    from gan_zoo.metrics.probe import nearest_neighbour_accuracy

    model = _tiny("bigbigan").eval()
    dm = _Tiny(batch_size=8)
    res = probe_model(model, dm, nearest_neighbour=True)
    (x_tr, y_tr), (x_te, y_te) = dm.split("train"), dm.split("test")
    for key, fn in (("probe", model.encoder_features), ("probe_z", model.encode)):
        expect = nearest_neighbour_accuracy(extract(fn, x_tr), y_tr, extract(fn, x_te), y_te)
        assert res[key]["nn1_acc"] == expect
    assert "nn1_acc" not in probe_model(model, dm)["probe"]  # off by default (the end-of-fit callback)


class _Inverse:
    """A stand-in model whose encoder undoes its generator exactly (``roll`` > 0 permutes the code first)."""

    device = torch.device("cpu")

    def __init__(self, roll: int = 0):
        self.roll = roll
        self.discriminator = _DotScore()

    def sample_latent(self, n, generator=None, device=None):
        return torch.randn(n, 4, generator=generator)

    def generate(self, z):
        return (z / 10).view(-1, 1, 2, 2)

    def encode(self, x):
        return (x.flatten(1) * 10).roll(self.roll, dims=1)


class _DotScore(torch.nn.Module):
    def forward(self, x, z):  # a joint score that depends on the pairing: x . z
        return None, None, (x.flatten(1) * z).sum(1)


class _ArgmaxPixel:
    def logits(self, x):
        return x.flatten(1)


def test_inversion_metrics_on_encoders_with_known_answers():
    from gan_zoo.callbacks.encoder import inversion_metrics, pairing_gap

    # an exact inverse gives cosine 1; a permuted one gives the mean cosine of z and its permutation
    assert_close(inversion_metrics(_Inverse(), None, None, n_latent=64, seed=3)["latent_cos"], 1.0)
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
    expect = F.cosine_similarity(z, z.roll(1, dims=1), dim=1).mean().item()
    res = inversion_metrics(_Inverse(roll=1), None, None, n_latent=64, seed=3, batch_size=10)
    assert_close(res["latent_cos"], expect)
    assert set(res) == {"latent_cos", "n_latent"}  # no images, no class check or pairing gap
    # images with one bright pixel; the classifier reads its position; 6 of the 8 labels are right
    pos = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    x = (F.one_hot(pos, 4) * 255).to(torch.uint8).view(-1, 1, 2, 2)
    y = torch.tensor([0, 1, 2, 3, 1, 2, 2, 3])
    res = inversion_metrics(_Inverse(roll=1), x, y, _ArgmaxPixel(), n_latent=8, seed=5, batch_size=3)
    assert_close(res["real_class_acc"], 100.0 * 6 / 8)
    # G(E(x)) moves the bright pixel one place on: right only for images 4 and 5, whose labels are pos + 1
    assert_close(res["recon_class_acc"], 100.0 * 2 / 8)
    # the pairing gap: mean x . E(x) minus mean x . E(x') with the codes permuted by the seeded permutation
    xf, codes = (x.flatten(1).float() / 127.5 - 1), (x.flatten(1).float() / 127.5 - 1).roll(1, dims=1) * 10
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(5))
    assert_close(res["d_pairing_gap"], ((xf * codes).sum(1) - (xf * codes[perm]).sum(1)).mean().item())
    assert pairing_gap(_Inverse(roll=1), x, seed=5, batch_size=3) == res["d_pairing_gap"]  # the same, alone
    assert res["n_images"] == 8
    assert "d_pairing_gap" not in inversion_metrics(_Inverse(roll=1), x, y, n_latent=8, pairing=False)


class _Tiny(GANDataModule):
    """A labeled image data set the test writes itself: 10 classes, each a brightness level."""

    name, native_resolution, native_channels, num_classes = "tiny", 16, 1, 10

    def locate(self):
        return None

    def load_split(self, split):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        y = torch.arange(200) % 10
        x = (y.view(-1, 1, 1, 1) * 25 + torch.randint(0, 10, (200, 1, 16, 16), generator=g)).to(torch.uint8)
        return x, y


def test_fit_writes_reconstruction_grids_and_logs_the_probe(tmp_path):
    from PIL import Image

    from gan_zoo.callbacks.encoder import LinearProbe

    model = _tiny("bigbigan")
    dm = _Tiny(batch_size=8)
    cbs = model.default_callbacks(dm, tmp_path) + [LinearProbe()]
    tiny_trainer(3, callbacks=cbs).fit(model, datamodule=dm)
    recon = Image.open(tmp_path / "samples" / "recon_final.png")
    assert recon.size == (8 * 18 + 2, 8 * 18 + 2)  # 8 columns; 4 real rows interleaved with 4 reconstructed rows
    probe = cbs[1].history[-1]
    assert set(probe) == {"metrics/probe_acc", "metrics/probe_z_acc", "train/kimg"}
    assert probe["metrics/probe_acc"] > 50.0  # brightness classes are linearly separable even for a barely trained E


def test_the_probe_is_a_metric_that_fit_runs_by_default_and_metrics_none_turns_off(tmp_path):
    from types import SimpleNamespace

    from gan_zoo.callbacks.encoder import LinearProbe
    from gan_zoo.callbacks.metrics import ImageMetrics
    from gan_zoo.cli import UserError
    from gan_zoo.fit import metric_callbacks

    def cbs(spec, model, every=0):
        args = SimpleNamespace(metrics=spec, metrics_every_images=every, seed=0, extractor="auto",
                               inception_weights=str(tmp_path / "absent.pth"),  # no FID for the tiny data here
                               metric_samples=100, metric_split="test", progress_bar=False)
        return metric_callbacks(args, _Tiny(batch_size=8), tmp_path, model)

    bigan, dcgan = _tiny("bigan"), gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8)
    (auto,) = cbs("auto", bigan, every=500)
    assert isinstance(auto, LinearProbe) and auto.every == 500
    assert cbs("none", bigan) == [] and cbs("auto", dcgan) == []
    assert [type(c) for c in cbs("probe", bigan)] == [LinearProbe]
    assert [type(c) for c in cbs("kid,probe", bigan)] == [ImageMetrics, LinearProbe]
    with pytest.raises(UserError, match="needs a model with an encoder"):
        cbs("probe", dcgan)
    with pytest.raises(UserError, match="unknown metric.*fd.*valid: a comma list of fid, is, kid and probe"):
        cbs("fid,fd", bigan)


def test_probe_on_a_model_without_an_encoder_is_a_clear_error(tmp_path, capsys):
    from gan_zoo.evaluate import cli as evaluate_cli
    from gan_zoo.fit import cli as fit_cli

    assert fit_cli(["--model", "dcgan", "--data", "ring8", "--max-images", "64", "--logger", "none", "--metrics",
                    "none", "--no-progress-bar", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert evaluate_cli(["--ckpt", str(tmp_path / "run" / "checkpoints" / "last.ckpt"), "--metrics", "probe"]) == 2
    err = capsys.readouterr().err
    assert "encoder" in err and "bigan" in err and "Traceback" not in err
    assert fit_cli(["--model", "bigbigan", "--loss", "l1", "--max-images", "64", "--out", str(tmp_path / "b")]) == 2
    assert "hinge" in capsys.readouterr().err
