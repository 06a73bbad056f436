"""Metrics through fit.py and scripts/evaluate.py, including a 2-process CPU DDP fit."""

import json
import os
import re
import subprocess
import sys

import pytest
import torch

from gan_zoo.datamodules import get_datamodule
from gan_zoo.datamodules.base import subset_indices, to_float
from gan_zoo.evaluate import cli as evaluate_cli, probe_classifier
from gan_zoo.fit import main as fit_main
from tests.conftest import needs_fmnist
from tests.test_datamodules import write_mnist
from tests.test_fit import ROOT, read_metrics

TINY = ["--resolution", "16", "--ngf", "8", "--ndf", "8", "--latent-dim", "16", "--batch-size", "16",
        "--no-progress-bar", "--log-every-n-steps", "1"]


@needs_fmnist
@pytest.mark.slow
def test_fit_logs_metrics_and_evaluate_reproduces_them(tmp_path, capsys):
    run = tmp_path / "run"
    assert fit_main(["--model", "dcgan", "--max-images", "64", "--out", str(run), "--logger", "csv",
                     "--metrics", "fid,is,kid", "--metric-samples", "200", "--metrics-every-images", "32",
                     "--metric-split", "test", *TINY]) == 0
    rows = [r for r in read_metrics(run) if r.get("metrics/fid200_fmnist-cnn_test")]
    assert [int(r["step"]) for r in rows] == [32, 64]  # the fit ends at 64: that evaluation is not repeated
    fid_end = float(rows[-1]["metrics/fid200_fmnist-cnn_test"])
    assert fid_end > 0 and float(rows[-1]["metrics/is200_fmnist-cnn_test"]) >= 1.0
    assert "metrics/kid200_fmnist-cnn_test" in rows[-1]
    capsys.readouterr()
    out_json = tmp_path / "eval.json"
    assert evaluate_cli(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--n", "200", "--out",
                         str(out_json)]) == 0
    printed = capsys.readouterr()
    res = json.loads(out_json.read_text())
    assert res["extractor"] == "fmnist-cnn" and res["n_fake"] == 200 and res["n_real"] == 10000
    assert res["real_stats_cache"] == "hit"  # computed once by the fit
    assert res["data"] == "fashion_mnist" and res["model"] == "dcgan" and res["images_seen"] == 64
    assert "antialias" in res["resize"] or "resize" in res["resize"]
    # same generator, same seed, same real statistics: the same FID as the fit's final evaluation
    assert res["metrics"]["metrics/fid200_fmnist-cnn_test"] == pytest.approx(fid_end, rel=1e-4)
    assert "metrics/fid200_fmnist-cnn_test" in printed.out


def test_evaluate_bad_input(tmp_path, capsys):
    assert evaluate_cli(["--ckpt", str(tmp_path / "none.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert evaluate_cli(["--pretrained", "dcgan.nope"]) == 2
    assert "unknown pretrained model 'dcgan.nope'; available: " in capsys.readouterr().err
    assert evaluate_cli(["--pretrained", "fmnist-cnn"]) == 2
    assert "feature extractor, not a generator" in capsys.readouterr().err


@pytest.mark.slow
def test_ddp_fit_with_fid_logs_the_same_value_on_every_rank(tmp_path):
    write_mnist(tmp_path / "data", n_train=128, n_test=64)
    env = {**os.environ, "GAN_ZOO_OFFLINE": "1", "WANDB_MODE": "disabled"}
    cmd = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "dcgan", "--data", "mnist", "--data-dir",
           str(tmp_path / "data"), "--max-images", "64", "--accelerator", "cpu", "--devices", "2",  # gan_ddp
           "--logger", "csv", "--out", str(tmp_path / "run"), "--metrics", "fid,kid",
           "--metric-samples", "101", *TINY]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    values = {}
    for rank, fid in re.findall(r"\[rank (\d)\] .*?metrics/fid101_mnist-cnn_test=([0-9.e+-]+)", r.stderr):
        values[int(rank)] = float(fid)
    assert set(values) == {0, 1} and values[0] == values[1], r.stderr[-2000:]
    logged = [r for r in read_metrics(tmp_path / "run") if r.get("metrics/fid101_mnist-cnn_test")]
    assert float(logged[-1]["metrics/fid101_mnist-cnn_test"]) == pytest.approx(values[0], rel=1e-5)


def test_evaluate_toy_coverage_of_the_global_generator_and_of_each_sgan_member(tmp_path, capsys):
    import torch

    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.pretrained import load_training_checkpoint
    from gan_zoo.metrics.toy import mode_metrics

    run = tmp_path / "run"
    assert fit_main(["--model", "ensemble_sgan", "--data", "ring8", "--n-pairs", "2", "--batch-size", "32",
                     "--max-images", "96", "--latent-dim", "2", "--hidden", "8", "--metrics", "toy", "--logger", "csv",
                     "--out", str(run), "--no-progress-bar", "--log-every-n-steps", "1"]) == 0
    ckpt = str(run / "checkpoints" / "last.ckpt")
    fit_end = [r for r in read_metrics(run) if r.get("toy/modes")][-1]
    model, _, _ = load_training_checkpoint(ckpt)
    dm = get_datamodule("ring8")
    for member in (None, 1, 2):
        out_json = tmp_path / f"toy_{member}.json"
        argv = ["--ckpt", ckpt, "--metrics", "toy", "--out", str(out_json)]  # 2,500 samples by default
        assert evaluate_cli(argv + (["--member", str(member)] if member else [])) == 0
        res = json.loads(out_json.read_text())
        assert res.get("member") == member
        expect = mode_metrics(model.sample(2500, seed=0, member=member), dm.modes(), dm.std)
        assert res["metrics"]["toy/hq_percent"] == pytest.approx(100 * expect["hq"])
        assert res["metrics"]["toy/reverse_kl"] == pytest.approx(expect["reverse_kl"])
        assert res["metrics"]["toy/modes"] == expect["modes"]
        assert res["mode_counts"] == expect["counts"]
        if member is None:  # the fit's end-of-training evaluation, reproduced
            assert res["metrics"]["toy/hq_percent"] == pytest.approx(float(fit_end["toy/hq_percent"]))
    # the members are other generators than the global one
    assert not torch.equal(model.sample(50, seed=0, member=1), model.sample(50, seed=0))
    capsys.readouterr()
    assert evaluate_cli(["--ckpt", ckpt, "--metrics", "toy", "--member", "3"]) == 2
    assert "--member must be in 1..2 (this SGAN has 2 local pairs), got 3" in capsys.readouterr().err
    assert evaluate_cli(["--ckpt", ckpt, "--metrics", "probe", "--member", "1"]) == 2
    assert "--member selects a generator; --metrics probe measures an encoder" in capsys.readouterr().err
    run_dcgan = tmp_path / "dcgan"
    assert fit_main(["--model", "dcgan", "--data", "ring8", "--batch-size", "32", "--max-images", "32",
                     "--latent-dim", "2", "--hidden", "8", "--metrics", "none", "--logger", "none",
                     "--out", str(run_dcgan), "--no-progress-bar"]) == 0
    capsys.readouterr()
    assert evaluate_cli(["--ckpt", str(run_dcgan / "checkpoints" / "last.ckpt"), "--metrics", "toy",
                         "--member", "1"]) == 2
    assert ("--member needs a model with several generators (ensemble_sgan: local generators, egan: parents), "
            "not 'dcgan'") in capsys.readouterr().err


def test_evaluate_toy_coverage_of_one_egan_parent(tmp_path, capsys):
    """Known answer: parent 1 of the (EMA) population edited to put every sample on mode (-4, 4), parent 2 on (2, 2);
    ``--member i`` measures that parent alone, no ``--member`` the whole population (half the latents each)."""
    import math

    import torch

    run = tmp_path / "egan"
    assert fit_main(["--model", "egan", "--data", "grid25", "--mu", "2", "--batch-size", "32", "--max-images", "64",
                     "--latent-dim", "2", "--hidden", "8", "--metrics", "none", "--logger", "none",
                     "--out", str(run), "--no-progress-bar"]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    for i, mode in enumerate([(-4.0, 4.0), (2.0, 2.0)]):  # grid25's modes in row-major order: indices 4 and 18
        ckpt["state_dict"][f"generator_ema.members.{i}.net.6.weight"].zero_()
        ckpt["state_dict"][f"generator_ema.members.{i}.net.6.bias"].copy_(torch.tensor(mode))
    edited = tmp_path / "edited.ckpt"
    torch.save(ckpt, edited)
    expect = {None: ({4: 1250, 18: 1250}, math.log(25 / 2)), 1: ({4: 2500}, math.log(25)),
              2: ({18: 2500}, math.log(25))}
    for member, (counts, reverse_kl) in expect.items():
        out_json = tmp_path / f"toy_{member}.json"
        argv = ["--ckpt", str(edited), "--metrics", "toy", "--seed", "3", "--out", str(out_json)]
        assert evaluate_cli(argv + (["--member", str(member)] if member else [])) == 0
        res = json.loads(out_json.read_text())
        assert res.get("member") == member
        assert res["mode_counts"] == [counts.get(k, 0) for k in range(25)]
        assert res["metrics"]["toy/hq_percent"] == 100.0 and res["metrics"]["toy/modes"] == len(counts)
        assert res["metrics"]["toy/reverse_kl"] == pytest.approx(reverse_kl, rel=1e-6)
    capsys.readouterr()
    assert evaluate_cli(["--ckpt", str(edited), "--metrics", "toy", "--member", "3"]) == 2
    assert "--member must be in 1..2 (this EGAN has 2 parents), got 3" in capsys.readouterr().err


def test_evaluate_fid_of_an_sgan_member(tmp_path):
    write_mnist(tmp_path / "data", n_train=64, n_test=64)
    run = tmp_path / "run"
    assert fit_main(["--model", "ensemble_sgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"),
                     "--n-pairs", "2", "--max-images", "32", "--out", str(run), "--logger", "none", "--metrics", "none",
                     *TINY]) == 0
    fids = {}
    for member in (None, 1, 2):
        out_json = tmp_path / f"fid_{member}.json"
        argv = ["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--metrics", "fid", "--n", "64", "--out",
                str(out_json), "--data-dir", str(tmp_path / "data")]
        assert evaluate_cli(argv + (["--member", str(member)] if member else [])) == 0
        res = json.loads(out_json.read_text())
        assert res.get("member") == member and res["n_fake"] == 64 and res["extractor"] == "mnist-cnn"
        fids[member] = res["metrics"]["metrics/fid64_mnist-cnn_test"]
    assert len(set(fids.values())) == 3, fids  # three different generators measured


@needs_fmnist
def test_evaluate_probe_reports_how_well_the_encoder_inverts_the_generator(tmp_path, capsys):
    run = tmp_path / "bigan"
    assert fit_main(["--model", "bigan", "--arch", "mlp", "--max-images", "64", "--out", str(run), "--logger", "none",
                     "--metrics", "none", *TINY, "--resolution", "28"]) == 0
    out_json = tmp_path / "probe.json"
    # the inversion part on 500 prior draws and 1,000 test images: the classifier's passes over the whole test split
    # cost most of a minute each on one thread
    small = ["--n", "500", "--n-real", "1000"]
    assert evaluate_cli(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--metrics", "probe", "--probe-train",
                         "300", *small, "--out", str(out_json)]) == 0
    res = json.loads(out_json.read_text())
    m = res["metrics"]
    assert res["classifier"] == "fmnist-cnn"
    assert "500 prior draws" in res["protocol"] and "% of 1000 test images" in res["protocol"]
    # real_class_acc is the classifier's accuracy on the same 1,000 test images, computed here directly
    classifier, _ = probe_classifier("fashion_mnist")
    dm = get_datamodule("fashion_mnist", resolution=28)
    dm.prepare_data()
    x_te, y_te = dm.split("test")
    idx = subset_indices(len(x_te), 1000)
    with torch.no_grad():
        right = (classifier.logits(to_float(x_te[idx])).argmax(1) == y_te[idx]).sum()
    assert m["metrics/real_class_acc"] == pytest.approx(100 * int(right) / 1000, abs=1e-9)
    assert 0.0 <= m["metrics/recon_class_acc"] <= 100.0 and -1.0 <= m["metrics/latent_cos"] <= 1.0
    assert "metrics/d_pairing_gap" in m
    assert {"metrics/probe_acc", "metrics/probe_z_acc", "metrics/probe_1nn_acc", "metrics/probe_z_1nn_acc"} <= set(m)
    assert "metrics/latent_cos" in capsys.readouterr().out
    # --metrics inversion is the same inversion part alone
    assert evaluate_cli(["--ckpt", str(run / "checkpoints" / "last.ckpt"), "--metrics", "inversion", *small, "--out",
                         str(tmp_path / "inv.json")]) == 0
    inv = json.loads((tmp_path / "inv.json").read_text())["metrics"]
    assert inv == {k: v for k, v in m.items() if k.split("/")[1] in
                   ("latent_cos", "recon_class_acc", "real_class_acc", "d_pairing_gap")}


@needs_fmnist
def test_inversion_of_a_zoo_entry_has_no_pairing_gap_and_takes_n_and_n_real(tmp_path):
    out = tmp_path / "inv.json"
    assert evaluate_cli(["--pretrained", "bigan.fmnist32", "--metrics", "inversion", "--n", "40", "--n-real", "64",
                         "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["metrics"]) == {"metrics/latent_cos", "metrics/recon_class_acc", "metrics/real_class_acc"}
    assert "no pairing gap" in res["protocol"] and "40 prior draws" in res["protocol"]
    assert "% of 64 test images" in res["protocol"]
