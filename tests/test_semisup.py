"""The semi-supervised GAN: both D forms against their formulas, no double softmax, no label leakage."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import gan_zoo
from gan_zoo.datamodules.base import ResumableLoader
from gan_zoo import losses
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


@pytest.mark.parametrize("form,outputs", [("odena", 11), ("salimans", 10)])
def test_shapes_for_both_forms(form, outputs):
    m = gan_zoo.get_model("semisupgan", form=form, ngf=8, ndf=8)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert m.discriminator(x).shape == (4, outputs)
    assert m.classify(x).shape == (4, 10)
    assert m.sample(3).shape == (3, 1, 28, 28)


@pytest.mark.parametrize("form", ["odena", "salimans"])
def test_unlabeled_images_never_enter_the_supervised_loss(form):
    torch.manual_seed(0)
    m = gan_zoo.get_model("semisupgan", form=form, ngf=8, ndf=8)
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


@pytest.mark.parametrize("supervised_only", [False, True])
def test_steps_move_exactly_their_network(supervised_only):
    torch.manual_seed(0)
    m = gan_zoo.get_model("semisupgan", ngf=8, ndf=8, supervised_only=supervised_only)
    rec = StepRecorder()
    tiny_trainer(2, callbacks=[rec]).fit(m, _semi_loader())
    g_names, d_names = param_names(m.generator, "generator"), param_names(m.discriminator, "discriminator")
    expected = [1] * 2 if supervised_only else [1, 0, 1, 0]  # 0 = G, 1 = D
    assert [i for i, _ in rec.steps] == expected
    for i, changed in rec.steps:
        assert changed == (g_names if i == 0 else d_names)
    assert m.d_ema_updates == 2


def test_fit_logs_test_accuracy(tmp_path):
    from gan_zoo.fit import main
    from tests.test_datamodules import write_mnist
    from tests.test_fit import read_metrics

    write_mnist(tmp_path / "data", n_train=120, n_test=30)
    run = tmp_path / "run"
    assert main(["--model", "semisupgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--num-labeled",
                 "20", "--batch-size", "16", "--ngf", "8", "--ndf", "8", "--max-images", "64", "--logger", "csv",
                 "--out", str(run), "--metrics", "none", "--no-progress-bar"]) == 0
    rows = [r for r in read_metrics(run) if r.get("metrics/test_acc")]
    assert len(rows) == 1 and 0 <= float(rows[0]["metrics/test_acc"]) <= 100


def test_bad_semisup_options():
    with pytest.raises(ValueError, match="form"):
        gan_zoo.get_model("semisupgan", form="k+2")
    with pytest.raises(ValueError, match="g_loss"):
        gan_zoo.get_model("semisupgan", g_loss="wgan")
