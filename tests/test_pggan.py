"""PGGAN: layers against their formulas, fade-in identities, the schedule, and the resume-mid-fade round trip."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import gan_zoo
from gan_zoo.losses import drift_penalty, gradient_penalty, wgan_d_loss, wgan_g_loss
from gan_zoo.models.pggan import ProgressiveSchedule, Stage
from gan_zoo.networks.pggan import EqualizedConv2d, EqualizedLinear, MinibatchStd, PixelNorm, PGGenerator, num_levels
from tests.helpers import StepRecorder, param_names, random_loader, tiny_trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(resolution=16, latent_dim=8, fmap_base=64, fmap_max=8, phase_images=32)


def test_equalized_lr_runtime_scale():
    conv = EqualizedConv2d(6, 4, 3, padding=1)
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(6 * 9))
    x = torch.randn(2, 6, 5, 5)
    assert_close(conv(x), F.conv2d(x, conv.weight * math.sqrt(2) / math.sqrt(54), conv.bias, padding=1))
    lin = EqualizedLinear(10, 3, gain=1.0)
    assert lin.scale == pytest.approx(1 / math.sqrt(10))
    assert abs(conv.weight.std().item() - 1.0) < 0.25  # weights are N(0, 1); the scale is applied at run time


def test_pixel_norm_gives_unit_rms_per_pixel():
    y = PixelNorm()(torch.randn(3, 7, 4, 5) * 5 + 2)
    assert_close(y.pow(2).mean(1), torch.ones(3, 4, 5), rtol=1e-5, atol=1e-5)


def test_minibatch_stddev_matches_hand_computation():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 2, 2)
    out = MinibatchStd(group_size=4)(x)
    assert out.shape == (8, 4, 2, 2)
    assert_close(out[:, :3], x)
    # groups: sample i is member i % 2 of group i // 2 ... official layout: view(G=4, M=2, ...): sample i -> m = i % 2
    for m in range(2):
        members = x[m::2]  # the 4 samples sharing statistic m
        std = members.var(0, unbiased=False).add(1e-8).sqrt().mean()
        for i in range(m, 8, 2):
            assert_close(out[i, 3], std.expand(2, 2))


def test_generator_fade_identities():
    torch.manual_seed(0)
    g = PGGenerator(latent_dim=8, channels=3, resolution=16, fmap_base=64, fmap_max=8)
    z = torch.randn(5, 8)
    for level in (1, 2):
        old = g(z, level=level - 1, alpha=1.0)
        assert_close(g(z, level=level, alpha=0.0), F.interpolate(old, scale_factor=2, mode="nearest"))
        new = g(z, level=level, alpha=1.0)
        half = g(z, level=level, alpha=0.25)
        assert_close(half, 0.25 * new + 0.75 * F.interpolate(old, scale_factor=2, mode="nearest"))
    assert g(z, level=2).shape == (5, 3, 16, 16) and g(z, level=0).shape == (5, 3, 4, 4)


def test_discriminator_fade_identities():
    torch.manual_seed(0)
    m = gan_zoo.get_model("pggan", channels=1, **SMALL)
    d = m.discriminator
    x = torch.randn(8, 1, 16, 16)
    # alpha 0 at level 2 = the level-1 network on the 2x average-pooled input
    assert_close(d(x, 2, 0.0), d(F.avg_pool2d(x, 2), 1, 1.0))
    # alpha in between: fromRGB paths blended before the rest of the network
    h_new = d.blocks[2](d.from_rgb[2](x))
    h_old = d.from_rgb[1](F.avg_pool2d(x, 2))
    h = 0.3 * h_new + 0.7 * h_old
    expected = d.blocks[0](d.blocks[1](h)).squeeze(1)
    assert_close(d(x, 2, 0.3), expected)


def test_wgan_gp_losses_match_formulas():
    s_real, s_fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, 0.5])
    assert_close(wgan_d_loss(s_real, s_fake), torch.tensor(-0.25 - 2.0))
    assert_close(wgan_g_loss(s_fake), torch.tensor(0.25))
    assert_close(drift_penalty(s_real, 0.001), torch.tensor(0.001 * (1 + 9) / 2))
    # a linear critic s(x) = sum(w * x): the gradient is w everywhere, so GP = lambda * (||w|| - 1)^2
    w = torch.tensor([[[[3.0, 4.0]]]])
    critic = lambda x: (x * w).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(3, 1, 1, 2), torch.randn(3, 1, 1, 2)
    assert_close(gradient_penalty(critic, real, fake, 10.0), torch.tensor(10.0 * (5.0 - 1.0) ** 2))
    # a quadratic critic s(x) = ||x||^2 / 2: grad = x_hat, so the penalty depends on where x_hat falls
    critic2 = lambda x: 0.5 * x.flatten(1).pow(2).sum(1)  # noqa: E731
    u = torch.tensor([0.0, 1.0, 0.5]).view(3, 1, 1, 1)
    x_hat = torch.lerp(real, fake, u)
    expected = 10.0 * (x_hat.flatten(1).norm(dim=1) - 1).pow(2).mean()
    assert_close(gradient_penalty(critic2, real, fake, 10.0, u=u), expected)


def test_schedule_maps_images_seen_to_stages():
    s = ProgressiveSchedule(levels=3, phase_images=100)
    assert s.total == 500
    assert s.at(0) == Stage(0, 1.0, 0, 4, False)
    assert s.at(99).level == 0
    assert s.at(100) == Stage(1, 0.0, 1, 8, True)
    assert s.at(150).alpha == pytest.approx(0.5) and s.at(150).fading
    assert s.at(200) == Stage(1, 1.0, 2, 8, False)
    assert s.at(325) == Stage(2, 0.25, 3, 16, True)
    assert s.at(499) == Stage(2, 1.0, 4, 16, False)
    assert s.at(10_000) == Stage(2, 1.0, 4, 16, False)  # past the end: stay at the final resolution


def test_the_readmes_first_command_trains_the_default_schedule_it_states():
    # `python scripts/fit.py --model pggan` on Fashion-MNIST: 32x32, widths 64, 64, 32, 16, 18,000 images per phase
    model = gan_zoo.get_model("pggan")
    assert model.generator.widths == [64, 64, 32, 16]
    assert [length for _, _, _, length in model.schedule.phases] == [18_000] * 7
    assert model.default_max_images == 126_000 and model.schedule.at(125_999).resolution == 32
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "126,000 images" in readme and "widths 64, 64, 32, 16" in readme


def test_schedule_with_per_resolution_lengths_and_batch_sizes():
    s = ProgressiveSchedule(levels=3, phase_images=100, per_resolution={8: 40}, batch_sizes={4: 16, 16: 4},
                            default_batch=8)
    assert s.total == 100 + 40 + 40 + 100 + 100
    assert [s.batch_size(k) for k in range(3)] == [16, 8, 4]
    # step through with each level's batch size: every phase is entered, alpha rises monotonically in each fade
    seen, stages = 0, []
    while seen < s.total:
        st = s.at(seen)
        stages.append(st)
        seen += s.batch_size(st.level)
    assert [st.phase for st in stages] == sorted(st.phase for st in stages)
    assert {st.phase for st in stages} == set(range(5))
    assert sum(1 for st in stages if st.level == 0) == 100 // 16 + 1  # 7 steps of 16 cover the first 100 images
    fade1 = [st.alpha for st in stages if st.phase == 1]
    assert fade1 == sorted(fade1) and fade1[0] == pytest.approx((112 - 100) / 40)
    with pytest.raises(ValueError, match="resolution 32"):
        ProgressiveSchedule(levels=3, phase_images=10, batch_sizes={32: 4})


def test_real_images_are_blended_during_a_fade():
    m = gan_zoo.get_model("pggan", channels=1, **SMALL)
    x = torch.randn(4, 1, 16, 16)
    st = Stage(level=1, alpha=0.25, phase=1, resolution=8, fading=True)
    x8 = F.avg_pool2d(x, 2)
    low = F.interpolate(F.avg_pool2d(x8, 2), scale_factor=2, mode="nearest")
    assert_close(m.real_at(x, st), 0.25 * x8 + 0.75 * low)
    assert_close(m.real_at(x, Stage(2, 1.0, 4, 16, False)), x)


def test_bad_resolution_and_schedule_specs():
    assert num_levels(32) == 4 and num_levels(1024) == 9
    for bad in (28, 2, 2048):
        with pytest.raises(ValueError, match="power of two"):
            gan_zoo.get_model("pggan", resolution=bad)
    with pytest.raises(ValueError, match="resolution:value"):
        gan_zoo.get_model("pggan", batch_sizes="4=32")


def test_training_steps_move_exactly_their_network_and_grow():
    torch.manual_seed(0)
    model = gan_zoo.get_model("pggan", channels=1, **SMALL)
    rec = StepRecorder()
    tiny_trainer(3, callbacks=[rec]).fit(model, random_loader(1, 16, n=64, batch_size=16))
    g_names, d_names = param_names(model.generator, "generator"), param_names(model.discriminator, "discriminator")
    assert [i for i, _ in rec.steps] == [1, 0] * 3
    for i, changed in rec.steps:
        assert changed <= (g_names if i == 0 else d_names) and changed
    # 48 images with 32 per phase: the third step is in the 8x8 fade; the 16x16 block has not moved
    assert model.schedule.at(model.images_seen).level == 1
    assert not any("blocks.2" in n for _, changed in rec.steps for n in changed)


def test_optimizer_state_is_reset_at_phase_changes():
    torch.manual_seed(0)
    model = gan_zoo.get_model("pggan", channels=1, **SMALL)
    steps = []
    head = model.discriminator.blocks[0][-1].weight  # trained at every level

    class Probe(__import__("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, *a):
            steps.append(int(trainer.optimizers[1].state[head]["step"]))

    tiny_trainer(3, callbacks=[Probe()]).fit(model, random_loader(1, 16, n=64, batch_size=16))
    # phase 0 (4x4) for 32 images = 2 steps of 16; the third step starts phase 1 with a fresh Adam state
    assert steps == [1, 2, 1]
    assert model.phase_index == 1


@pytest.mark.slow
def test_resume_mid_fade_is_exact(tmp_path):
    from gan_zoo.fit import main
    from tests.test_datamodules import write_mnist
    from tests.test_fit import losses_by_kimg

    write_mnist(tmp_path / "data", n_train=160)
    common = ["--model", "pggan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "csv",
              "--latent-dim", "8", "--fmap-base", "64", "--fmap-max", "8", "--phase-images", "64",
              "--final-resolution", "16", "--batch-size", "16", "--no-progress-bar", "--log-every-n-steps", "1",
              "--metrics", "none", "--seed", "3"]
    assert main([*common, "--max-images", "224", "--out", str(tmp_path / "full")]) == 0
    # 96 images: half-way through the 8x8 fade (phase 1 covers 64..128)
    assert main([*common, "--max-images", "96", "--out", str(tmp_path / "part")]) == 0
    ckpt = torch.load(tmp_path / "part" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_zoo"]["pggan"] == {"phase_index": 1, "level": 1, "alpha": 0.5, "resolution": 8}
    assert main([*common, "--max-images", "224", "--out", str(tmp_path / "resumed"),
                 "--ckpt-path", str(tmp_path / "part" / "checkpoints" / "last.ckpt")]) == 0
    full, resumed = losses_by_kimg(tmp_path / "full"), losses_by_kimg(tmp_path / "resumed")
    assert sorted(resumed) == sorted(full)[6:]
    for kimg, values in resumed.items():
        assert values == full[kimg], kimg
    rows = __import__("tests.test_fit", fromlist=["read_metrics"]).read_metrics(tmp_path / "resumed")
    alphas = [float(r["pggan/alpha"]) for r in rows if r.get("pggan/alpha")]
    assert alphas[0] == pytest.approx(0.5)  # the first resumed step continues the fade where it stopped


DDP_SCRIPT = r'''
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
import lightning as L
import torch
import gan_zoo
from tests.helpers import random_loader

out = Path({out!r})


class Dump(L.Callback):
    def on_train_end(self, trainer, pl_module):
        torch.save({{"state": pl_module.state_dict(), "seen": pl_module.images_seen,
                    "stage": tuple(vars(pl_module.schedule.at(pl_module.images_seen)).values())}}, out / f"rank{{trainer.global_rank}}.pt")


L.seed_everything(0)
model = gan_zoo.get_model("pggan", channels=1, resolution=16, latent_dim=8, fmap_base=64, fmap_max=8, phase_images=32)
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_epochs=1,
                    limit_train_batches=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False, callbacks=[Dump()])
trainer.fit(model, random_loader(1, 16, n=96, batch_size=8))
'''


@pytest.mark.slow
def test_ddp_two_processes_grow_identically_and_keep_parameters_in_sync(tmp_path):
    """2-process CPU DDP (gloo): every rank reaches the same stage with identical parameters, EMA included."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "ddp_pggan.py"
    script.write_text(DDP_SCRIPT.format(root=root, out=str(tmp_path)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=root,
                       env={**os.environ, "PYTHONPATH": root})
    assert r.returncode == 0, r.stderr[-3000:]
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert a["seen"] == b["seen"] == 5 * 8 * 2  # images counted over both ranks
    assert a["stage"] == b["stage"] and a["stage"][:2] == (1, 1.0)  # 80 images: the 8x8 stabilise phase
    for k, v in a["state"].items():
        assert torch.equal(v, b["state"][k]), k


def test_fade_blends_branches_of_different_dtypes():
    # under CUDA autocast one branch of the fade can come out bf16 and the other fp32 (torch.lerp refuses the mix)
    from gan_zoo.networks.pggan import fade

    old = torch.tensor([0.0, 1.0, -2.0])
    new = torch.tensor([1.0, 3.0, 2.0], dtype=torch.bfloat16)
    out = fade(old, new, 0.25)
    assert out.dtype == torch.float32
    assert_close(out, torch.tensor([0.25, 1.5, -1.0]))
    assert fade(new, new, 0.5).dtype == torch.bfloat16
