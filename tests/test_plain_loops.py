"""The plain PyTorch loops of ``benchmarks/plain_loops.py`` (what ``benchmarks/benchmark.py`` times against
Lightning) do the same work as each model's ``training_step`` under a Trainer: from the same seed and the same initial
weights, k batches through either path end with bitwise the same parameters, buffers and training state."""

import pytest
import torch

import gan_zoo
from benchmarks.plain_loops import PLAIN_LOOPS
from tests.helpers import tiny_trainer
from tests.test_all_models import TINY, tiny_loader

K = 3  # batches per path

# Every model at its tiny configuration, plus variants that reach the branches the defaults skip in 3 batches.
CASES = {name: {} for name in TINY}
CASES.update({
    "dcgan-margin-noise-smoothing": ("dcgan", dict(balance="margin", instance_noise=0.1, label_smoothing=0.1,
                                                   lr_d=1e-4)),
    "dcgan-l2": ("dcgan", dict(balance="l2")),
    "lsgan-pearson": ("lsgan", dict(coding="pearson", upsample="nearest", minibatch_kernels=4)),
    "egan-mu2-every-batch": ("egan", dict(mu=2, d_steps=1, mutations="minimax,least_squares")),
    "egan-gamma0": ("egan", dict(mu=2, d_steps=1, gamma=0.0)),  # the fitness without F_d (the grid25 recipe)
    "ensemble_sgan-sync2": ("ensemble_sgan", dict(messenger_sync=2, pair_seed=3)),
    "ensemble_sgan-whole-batch": ("ensemble_sgan", dict(messenger_batch="whole")),
    "selfgan-tpu-probability": ("selfgan", dict(weighting="tpu", weights="probability")),
    "semisupgan-odena-ns": ("semisupgan", dict(form="odena", g_loss="ns")),
    "semisupgan-supervised-only": ("semisupgan", dict(supervised_only=True)),
    "bigan-stochastic-lr-e-mult": ("bigan", dict(stochastic_encoder=True, lr_e_mult=10.0)),
    "pggan-batch-sizes": ("pggan", dict(batch_sizes="4:4,8:8", phase_images=8)),
})
EXPECTED_SEEN = {"pggan-batch-sizes": (4, 4, 8)}  # 4x4 at batch 4 for 8 images, then the 8x8 fade at batch 8
CASES = {k: (v if isinstance(v, tuple) else (k, v)) for k, v in CASES.items()}


def build(name, extra):
    torch.manual_seed(0)
    return gan_zoo.get_model(name, channels=1, resolution=16, **{**TINY[name], **extra})


STATE_ATTRS = ("images_seen", "ema_updates", "d_ema_updates", "iterations", "phase_index", "last_choice")


def test_every_registered_model_has_a_plain_loop():
    assert sorted(PLAIN_LOOPS) == sorted(gan_zoo.list_models())


@pytest.mark.parametrize("case", sorted(CASES))
def test_plain_loop_matches_the_lightning_path_bitwise(case):
    name, extra = CASES[case]
    lit, plain = build(name, extra), build(name, extra)
    for (k, a), b in zip(lit.state_dict().items(), plain.state_dict().values()):
        assert torch.equal(a, b), k  # the same initial weights

    torch.manual_seed(1)
    tiny_trainer(K).fit(lit, tiny_loader())
    rng_lit = torch.get_rng_state()

    torch.manual_seed(1)
    seconds = PLAIN_LOOPS[name](plain, tiny_loader(), warmup=1, steps=K - 1)
    rng_plain = torch.get_rng_state()
    assert seconds > 0

    # the same random numbers were drawn, in the same number
    assert torch.equal(rng_lit, rng_plain)
    for attr in STATE_ATTRS:
        assert getattr(lit, attr, None) == getattr(plain, attr, None), attr
    assert lit.images_seen == (sum(EXPECTED_SEEN[case]) if case in EXPECTED_SEEN else K * 8)
    a, b = lit.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    fresh = build(name, extra).state_dict()
    moved = 0
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=lambda m, k=k: f"{case}: {k}: {m}")
        moved += not torch.equal(a[k], fresh[k])
    assert moved > 0  # both trained
    if name == "selfgan":
        assert torch.equal(lit.last_fake, plain.last_fake)


@pytest.mark.parametrize("name", sorted(TINY))
def test_plain_loop_matches_the_lightning_path_in_bf16_mixed(name):
    # the benchmark's bf16 comparison (benchmarks/benchmark.py --precision bf16-mixed) is only fair if both paths run
    # the same ops in the same dtypes: the plain loop's autocast around the whole step is Lightning's bf16-mixed
    lit, plain = build(name, {}), build(name, {})
    torch.manual_seed(1)
    tiny_trainer(K, precision="bf16-mixed").fit(lit, tiny_loader())
    torch.manual_seed(1)
    PLAIN_LOOPS[name](plain, tiny_loader(), warmup=1, steps=K - 1, precision="bf16-mixed")
    a, b, fresh = lit.state_dict(), plain.state_dict(), build(name, {}).state_dict()
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=0, msg=lambda m, k=k: f"{name}: {k}: {m}")
    assert any(not torch.equal(a[k], fresh[k]) for k in a)
    # and bf16 autocast really ran: the same loop in fp32 ends elsewhere
    fp32 = build(name, {})
    torch.manual_seed(1)
    PLAIN_LOOPS[name](fp32, tiny_loader(), warmup=1, steps=K - 1)
    assert any(not torch.equal(fp32.state_dict()[k], b[k]) for k in b)


def test_plain_loop_rejects_an_unknown_precision():
    with pytest.raises(ValueError, match="unknown precision '16-mixed'; valid: 32-true, bf16-mixed"):
        PLAIN_LOOPS["dcgan"](build("dcgan", {}), tiny_loader(), warmup=1, steps=1, precision="16-mixed")


def test_plain_loop_rejects_a_short_loader():
    model = build("dcgan", {})
    with pytest.raises(ValueError, match="fewer than"):
        PLAIN_LOOPS["dcgan"](model, tiny_loader(n=16), warmup=1, steps=2)


@pytest.mark.parametrize("variant", ["foreach", "fused", "channels_last"])
def test_speed_option_variants_run_the_same_arithmetic(variant):
    # benchmarks/speed_options.py compares how fast variants run the same DCGAN step: they must train the same weights
    # (up to float reassociation: fused / multi-tensor Adam and channels-last convolutions sum in another order)
    from benchmarks.speed_options import run

    base, other = {}, {}
    run("base", "tiny", warmup=1, steps=3, weights=base)
    run(variant, "tiny", warmup=1, steps=3, weights=other)
    assert base.keys() == other.keys() and len(base) > 10
    for k in base:
        torch.testing.assert_close(other[k], base[k], rtol=1e-4, atol=1e-5, msg=k)
