"""Interruption and divergence: SIGKILL mid-fit and resume, a kill during a checkpoint write, a NaN loss."""

import csv
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from gan_zoo.checkpoint_io import load_checkpoint
from gan_zoo.fit import cli
from tests.test_datamodules import write_mnist
from tests.test_fit import SMALL

ROOT = Path(__file__).resolve().parents[1]


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def interrupted_fit(tmp_path_factory):
    """The command of a 4,800-image DCGAN fit on 480 images (30 batches of 16 an epoch) and that fit's last
    checkpoint run to the end without interruption: the run every interrupted and resumed fit must equal."""
    root = tmp_path_factory.mktemp("interrupted_fit")
    write_mnist(root / "data", n_train=480)
    common = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "dcgan", "--data", "mnist", "--data-dir",
              str(root / "data"), "--seed", "3", "--max-images", "4800", *SMALL]
    full = subprocess.run([*common, "--logger", "none", "--ckpt-every-images", "4800", "--out", str(root / "full")],
                          capture_output=True, text=True, env=ENV)
    assert full.returncode == 0, full.stderr[-2000:]
    return common, root / "full" / "checkpoints" / "last.ckpt"


def resume_and_compare(command, run, full_ckpt):
    """Resume ``run`` with ``command`` and check it ends bitwise equal to the uninterrupted run's ``full_ckpt``: at
    most the work since the last checkpoint was redone, and redone exactly (checkpoint cadence and logger aside)."""
    resumed = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(full_ckpt, weights_only=True)
    b = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert b["gan_zoo"]["images_seen"] == 4800
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_from_last_matches_the_uninterrupted_run(tmp_path, interrupted_fit):
    command, full_ckpt = interrupted_fit
    common = [*command, "--logger", "none", "--ckpt-every-images", "400"]
    run = tmp_path / "killed"
    last = run / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([*common, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the fit finished before it could be killed"
    ckpt = load_checkpoint(last)  # intact: written atomically
    seen = ckpt["gan_zoo"]["images_seen"]
    assert 400 <= seen < 4800 and seen % 16 == 0

    resume_and_compare([*common, "--out", str(run), "--ckpt-path", "last"], run, full_ckpt)


KILL_DURING_WRITE = '''
import os, signal, sys, torch
sys.path.insert(0, {root!r})
import gan_zoo.checkpoint_io as cio
path = {path!r}
cio.atomic_torch_save({{"step": 1, "w": torch.ones(1000)}}, path)  # the previous, good checkpoint
real_save = torch.save

def save_then_die(obj, f):
    f.write(b"half a checkpoint")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

torch.save = save_then_die
cio.atomic_torch_save({{"step": 2, "w": torch.zeros(1000)}}, path)
'''


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "last.ckpt"
    script = tmp_path / "kill.py"
    script.write_text(KILL_DURING_WRITE.format(root=str(ROOT), path=str(path)))
    r = subprocess.run([sys.executable, str(script)], capture_output=True)
    assert r.returncode == -signal.SIGKILL
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["step"] == 1 and torch.equal(ckpt["w"], torch.ones(1000))
    # the half-written temporary file is beside it, never under the checkpoint's name
    assert [p.name for p in tmp_path.glob(".last.ckpt.*.tmp")] and path.stat().st_size > 1000


def test_a_nan_loss_stops_the_fit_with_its_name_and_step_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch,
                                                                                               capsys):
    from gan_zoo.models.dcgan import DCGAN

    write_mnist(tmp_path / "data", n_train=160)
    calls = {"n": 0}
    real_g_loss = DCGAN.g_loss

    def g_loss(self, fake_scores):
        calls["n"] += 1
        loss = real_g_loss(self, fake_scores)
        return loss * float("nan") if calls["n"] == 5 else loss

    monkeypatch.setattr(DCGAN, "g_loss", g_loss)
    run = tmp_path / "run"
    code = cli(["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
                "--max-images", "160", "--ckpt-every-images", "32", "--out", str(run), *SMALL])
    err = capsys.readouterr().err
    assert code == 2
    line = [ln for ln in err.splitlines() if ln.startswith("error:")][0]
    assert "loss_g = nan" in line and "batch 4 of epoch 0 (80 images seen)" in line
    assert str(run / "checkpoints" / "last.ckpt") in line
    assert "Traceback" not in err
    ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ckpt["gan_zoo"]["images_seen"] == 64  # the checkpoint of batch 4, before the NaN
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


def test_fp16_gradient_scaler_with_manual_optimization_skips_inf_steps():
    """16-mixed through a CPU GradScaler (Lightning's MixedPrecision plugin): manual_backward scales the losses, a
    step whose gradients hold an Inf is skipped (its network unchanged) and the scale backs off; the others apply."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    import gan_zoo
    from gan_zoo.models.dcgan import DCGAN
    from tests.helpers import StepRecorder, param_names, random_loader, tiny_trainer

    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8)
    calls = {"n": 0}

    def g_loss(self, fake_scores):
        calls["n"] += 1
        loss = DCGAN.g_loss(self, fake_scores)
        return loss * float("inf") if calls["n"] == 2 else loss

    model.g_loss = g_loss.__get__(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    rec = StepRecorder()
    scales = []

    class Snap(__import__("lightning").Callback):
        def on_train_batch_end(self, trainer, pl_module, *a):
            scales.append(scaler.get_scale())
            snaps.append({n: p.detach().clone() for n, p in pl_module.named_parameters()})

    snaps = []
    plugin = MixedPrecision(precision="16-mixed", device="cpu", scaler=scaler)
    tiny_trainer(3, plugins=[plugin], callbacks=[rec, Snap()]).fit(model, random_loader(1, 16))
    g, d = param_names(model.generator, "generator"), param_names(model.discriminator, "discriminator")
    # optimizer 0 = G, 1 = D; per batch: D step then G step. Batch 2's G step had Inf gradients: the scaler skipped
    # it (the fused Adam is handed the scale and the found-Inf flag and leaves every parameter as it was: G unchanged
    # over batch 2) and backed the scale off; every other step applied.
    assert [i for i, _ in rec.steps] == [1, 0, 1, 0, 1, 0]
    assert [changed for _, changed in rec.steps] == [d, g, d, set(), d, g]
    assert all(torch.equal(snaps[0][n], snaps[1][n]) for n in g)
    assert not any(torch.equal(snaps[0][n], snaps[1][n]) for n in d if "weight" in n)
    assert scales[1] < scales[0]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_loader_position_carries_over_between_world_sizes():
    from gan_zoo.datamodules.base import ResumableLoader

    fetch = lambda idx: {"i": idx}  # noqa: E731
    ranks = [ResumableLoader(n=64, batch_size=4, seed=1, fetch=fetch, rank=r, world_size=2) for r in range(2)]
    seen = set()
    for loader in ranks:
        it = iter(loader)
        for _ in range(3):  # 3 batches on each of 2 ranks: 24 images
            seen |= set(next(it)["i"].tolist())
    single = ResumableLoader(n=64, batch_size=4, seed=1, fetch=fetch)
    single.load_state_dict(ranks[0].state_dict())
    rest = [i for b in single for i in b["i"].tolist()]
    assert len(rest) == 64 - 24 and not seen & set(rest) and seen | set(rest) == set(range(64))


DDP_RESUME = ["--accelerator", "cpu", "--devices", "2"]  # the default strategy on several devices: gan_ddp


@pytest.mark.slow
@pytest.mark.parametrize("first,second", [("ddp", "single"), ("single", "ddp")])
def test_a_ddp_checkpoint_resumes_on_one_device_and_the_reverse(tmp_path, first, second):
    write_mnist(tmp_path / "data", n_train=256)
    run = tmp_path / "run"
    common = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "dcgan", "--data", "mnist", "--data-dir",
              str(tmp_path / "data"), "--logger", "none", "--out", str(run), *SMALL]
    for mode, images, extra in ((first, "64", []), (second, "192", ["--ckpt-path", "last"])):
        cmd = [*common, "--max-images", images, *extra, *(DDP_RESUME if mode == "ddp" else [])]
        r = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        ckpt = load_checkpoint(run / "checkpoints" / "last.ckpt")
        assert ckpt["gan_zoo"]["images_seen"] == int(images)
        strategy = yaml.safe_load((run / "config.yaml").read_text())["strategy"]
        assert strategy == ("gan_ddp" if mode == "ddp" else "auto")
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())


@pytest.mark.slow
@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_fit_checkpoints_exits_with_its_status_and_the_resume_matches(tmp_path, sig, status,
                                                                                   interrupted_fit):
    command, full_ckpt = interrupted_fit
    common = [*command, "--logger", "csv", "--log-every-n-steps", "1", "--ckpt-every-images", "4800"]
    run = tmp_path / "stopped"
    proc = subprocess.Popen([*common, "--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=ENV, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list(run.rglob("metrics.csv")):
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    last = run / "checkpoints" / "last.ckpt"
    seen = load_checkpoint(last)["gan_zoo"]["images_seen"]
    assert 0 < seen < 4800, "the signal arrived after the fit ended"
    line = err.strip().splitlines()[-1]
    resume = f"python {ROOT / 'scripts' / 'fit.py'} --config {run / 'config.yaml'} --ckpt-path last"
    assert line == f"interrupted by {sig.name} at {seen} images seen: wrote {last}; resume with: {resume}", err[-2000:]
    # the printed command, run as printed, finishes the fit exactly
    resume_and_compare([sys.executable, *shlex.split(resume)[1:]], run, full_ckpt)


def test_a_resumed_fit_removes_the_temporary_a_killed_write_left(tmp_path):
    from tests.test_fit import main
    write_mnist(tmp_path / "data", n_train=64)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
              "--out", str(tmp_path / "run"), *SMALL]
    assert main([*common, "--max-images", "32"]) == 0
    stale = tmp_path / "run" / "checkpoints" / ".last.ckpt.k1ll3d.tmp"
    stale.write_bytes(b"half a checkpoint")
    assert main([*common, "--max-images", "64", "--ckpt-path", "last"]) == 0
    assert not stale.exists()
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["gan_zoo"]["images_seen"] == 64


def test_a_resumed_fit_applies_and_records_a_new_learning_rate(tmp_path):
    from tests.test_fit import main
    write_mnist(tmp_path / "data", n_train=64)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
              "--out", str(tmp_path / "run"), *SMALL]
    assert main([*common, "--max-images", "32"]) == 0
    assert main([*common, "--max-images", "64", "--ckpt-path", "last", "--lr", "0.000123"]) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    lrs = [g["lr"] for state in ckpt["optimizer_states"] for g in state["param_groups"]]
    assert lrs == [0.000123, 0.000123]
    assert ckpt["hyper_parameters"]["lr"] == 0.000123
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["lr"] == 0.000123


def test_a_diverging_resume_is_refused_with_the_non_finite_names_and_keeps_the_good_checkpoint(tmp_path, capsys):
    from tests.test_fit import main
    write_mnist(tmp_path / "data", n_train=64)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
              "--out", str(tmp_path / "run"), *SMALL]
    assert main([*common, "--max-images", "32"]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    capsys.readouterr()
    assert cli([*common, "--max-images", "64", "--ckpt-path", "last", "--lr", "1e10"]) == 2
    err = capsys.readouterr().err
    assert "training diverged: non-finite values in" in err and "Traceback" not in err, err
    assert f"the last good checkpoint is {last}" in err
    assert last.read_bytes() == good


@pytest.mark.slow
def test_csv_rows_are_on_disk_as_they_are_logged_and_survive_sigkill(tmp_path):
    write_mnist(tmp_path / "data", n_train=480)
    run = tmp_path / "run"
    metrics = run / "logs" / "metrics.csv"
    cmd = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "dcgan", "--data", "mnist", "--data-dir",
           str(tmp_path / "data"), "--logger", "csv", "--max-images", "48000", "--ckpt-every-images", "100000",
           "--out", str(run), *SMALL]  # SMALL logs every step; no checkpoint (which flushes loggers) comes first
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    seen: list[str] = []
    deadline = time.time() + 120
    while len(seen) < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
        seen = metrics.read_text().splitlines() if metrics.exists() else []
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the fit ended before it was killed"
    assert len(seen) >= 6, "fewer than 5 rows reached metrics.csv while the fit ran"
    assert not (run / "checkpoints" / "last.ckpt").exists()
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) >= len(seen) - 1  # every row read while it ran is still there, complete
    steps = [int(r["step"]) for r in rows if r.get("loss/d")]
    assert steps == sorted(steps) and len(steps) >= 5
    assert all(float(r["loss/d"]) > 0 for r in rows if r.get("loss/d"))


def fill_disk_after_first_checkpoint(monkeypatch):
    """Every checkpoint write after the first fails as a full disk does (``OSError`` ENOSPC from ``write``)."""
    import errno

    import gan_zoo.checkpoint_io as cio

    writes = {"n": 0}

    class FullDisk(cio._RecordingWriter):
        def __init__(self, f):
            super().__init__(f)
            writes["n"] += 1

        def write(self, data):
            if writes["n"] > 1 and self.error is None:
                self.error = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                raise self.error
            return super().write(data)

    monkeypatch.setattr(cio, "_RecordingWriter", FullDisk)


@pytest.fixture(params=["simulated", "tmpfs"])
def small_disk(request, tmp_path, monkeypatch):
    """A directory where the first ring8 DCGAN checkpoint (1.2 MB) fits and the second does not: a 2 MB tmpfs where
    mounting is permitted (root), or a simulated full disk."""
    if request.param == "simulated":
        fill_disk_after_first_checkpoint(monkeypatch)
        yield tmp_path
        return
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_full_disk_during_a_checkpoint_says_so_and_keeps_the_previous_one(small_disk, capsys):
    run = small_disk / "run"
    code = cli(["--model", "dcgan", "--data", "ring8", "--batch-size", "32", "--max-images", "256",
                "--ckpt-every-images", "64", "--logger", "none", "--no-progress-bar", "--out", str(run)])
    err = capsys.readouterr().err
    last = run / "checkpoints" / "last.ckpt"
    assert code == 2 and "Traceback" not in err
    assert f"error: cannot write {last}: no space left on device; the previous last.ckpt is intact" in err, err
    assert load_checkpoint(last)["gan_zoo"]["images_seen"] == 64
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]  # no temporary left behind
