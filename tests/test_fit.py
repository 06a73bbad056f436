"""scripts/fit.py end to end, in-process: a real fit, exact resume, W&B offline, and every bad input."""

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from gan_zoo import list_models
from gan_zoo.fit import cli, main
from tests.conftest import needs_fmnist
from tests.test_datamodules import write_mnist

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--resolution", "16", "--ngf", "8", "--ndf", "8", "--latent-dim", "16", "--batch-size", "16",
         "--no-progress-bar", "--log-every-n-steps", "1", "--metrics", "none"]


def read_metrics(run: Path) -> list[dict]:
    with open(run / "logs" / "metrics.csv") as f:
        return [row for row in csv.DictReader(f)]


def losses_by_kimg(run: Path) -> dict[str, tuple[str, str]]:
    return {r["train/kimg"]: (r["loss/d"], r["loss/g"]) for r in read_metrics(run) if r.get("loss/d")}


@needs_fmnist
@pytest.mark.slow
def test_fit_dcgan_on_fashion_mnist(tmp_path):
    run = tmp_path / "run"
    assert main(["--model", "dcgan", "--max-images", "160", "--out", str(run), "--logger", "csv",
                 "--sample-every-images", "64", "--ckpt-every-images", "64", *SMALL]) == 0
    assert (run / "checkpoints" / "last.ckpt").is_file()
    samples = sorted(p.name for p in (run / "samples").glob("*.png"))
    assert samples == ["final.png", "samples_000000000.png", "samples_000000064.png", "samples_000000128.png"]
    from PIL import Image

    assert Image.open(run / "samples" / "final.png").size[0] > 16 * 8
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["model"] == "dcgan" and cfg["data"] == "fashion_mnist" and cfg["ngf"] == 8 and cfg["resolution"] == 16
    rows = read_metrics(run)
    assert {"loss/d", "loss/g", "train/kimg", "d/real_score"} <= set(rows[0])
    assert float([r for r in rows if r.get("train/kimg")][-1]["train/kimg"]) == pytest.approx(0.16)
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)  # safe loading works
    assert ckpt["gan_zoo"]["images_seen"] == 160 and ckpt["gan_zoo"]["model"] == "dcgan"
    # the resolved config reproduces the run's options
    assert main(["--config", str(run / "config.yaml"), "--out", str(tmp_path / "again"), "--max-images", "16",
                 "--logger", "none"]) == 0


def test_fit_compile_keeps_checkpoints_loadable(tmp_path, capsys):
    # --compile BACKEND compiles the trained networks in place: the run's checkpoint has the uncompiled keys, so an
    # eager run resumes from it; an unknown backend is a clear error
    from tests.test_datamodules import write_mnist

    write_mnist(tmp_path / "data", n_train=64)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
              "--out", str(tmp_path / "run"), *SMALL]
    assert main([*common, "--max-images", "32", "--compile", "eager"]) == 0
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["compile"] == "eager"
    assert main([*common, "--max-images", "48", "--ckpt-path", "last"]) == 0
    _bad(capsys, ["--model", "dcgan", "--compile", "nope", "--out", str(tmp_path / "x"), *SMALL],
         "--compile: unknown torch.compile backend 'nope'; valid:", "inductor")


@pytest.mark.slow
@pytest.mark.parametrize("model", ["dcgan", "lsgan"])
def test_resume_is_exact(tmp_path, model):
    """Stop after 3 batches, resume, and get the same next-step losses as an uninterrupted run."""
    write_mnist(tmp_path / "data", n_train=96)  # 6 batches of 16 per epoch: the resume lands mid-epoch
    common = ["--model", model, "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "csv",
              "--seed", "5", "--instance-noise", "0.1", *SMALL]
    assert main([*common, "--max-images", "160", "--out", str(tmp_path / "full")]) == 0
    assert main([*common, "--max-images", "48", "--out", str(tmp_path / "part")]) == 0
    assert main([*common, "--max-images", "160", "--out", str(tmp_path / "resumed"),
                 "--ckpt-path", str(tmp_path / "part" / "checkpoints" / "last.ckpt")]) == 0
    full, part, resumed = (losses_by_kimg(tmp_path / r) for r in ("full", "part", "resumed"))
    assert sorted(part) == sorted(full)[:3]
    assert sorted(resumed) == sorted(full)[3:]  # resumed run: steps 4..10, across an epoch boundary
    for kimg, values in resumed.items():
        assert values == full[kimg], kimg
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


@pytest.mark.slow
def test_resume_last_in_same_run_dir(tmp_path):
    write_mnist(tmp_path / "data", n_train=64)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "csv",
              "--out", str(tmp_path / "run"), *SMALL]
    assert main([*common, "--max-images", "32"]) == 0
    first = read_metrics(tmp_path / "run")
    assert main([*common, "--max-images", "64", "--ckpt-path", "last"]) == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_zoo"]["images_seen"] == 64
    # the CSV logger would start metrics.csv afresh: the first part's metrics are kept beside it, not deleted
    with open(tmp_path / "run" / "logs" / "metrics.1.csv") as f:
        assert list(csv.DictReader(f)) == first
    kimg = lambda rows: sorted(round(float(r["train/kimg"]), 3) for r in rows if r.get("loss/d"))  # noqa: E731
    assert kimg(first) == [0.016, 0.032]
    assert kimg(read_metrics(tmp_path / "run")) == [0.048, 0.064]
    # the training clock is logged at the end of each part (no periodic metrics here) and the resumed part goes on
    # from the first part's sum
    clock = [(int(r["step"]), float(r["time/train_seconds"])) for part in (first, read_metrics(tmp_path / "run"))
             for r in part if r.get("time/train_seconds")]
    assert [step for step, _ in clock] == [32, 64]
    assert 0 < clock[0][1] < clock[1][1]


@pytest.mark.slow
def test_wandb_offline_run_writes_metrics_and_images(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    write_mnist(tmp_path / "data", n_train=64)
    run = tmp_path / "run"
    assert main(["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "wandb",
                 "--max-images", "64", "--out", str(run), "--sample-every-images", "32", *SMALL]) == 0
    # run.finish() returns once the run's exit is recorded, but wandb-core closes (flushes) the record log only after
    # that, asynchronously: CI once read the file holding only its 7-byte header. Teardown waits for the service process
    # to exit, which is what the atexit hook does when fit.py ends, so the file is then complete.
    import wandb

    wandb.teardown()
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1
    files = offline[0] / "files"
    assert list((files / "media" / "images").rglob("*.png")), "sample grids were not logged"
    # Offline runs keep their history in the run's .wandb record log (uploaded by `wandb sync`); the metric keys
    # are stored as plain strings in it.
    (record_log,) = offline[0].glob("*.wandb")
    data = record_log.read_bytes()
    for key in (b"loss/d", b"loss/g", b"train/kimg", b"samples/grid"):
        assert key in data, key


def test_default_budget_is_one_epoch(tmp_path):
    write_mnist(tmp_path / "data", n_train=64)
    run = tmp_path / "run"
    assert main(["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
                 "--out", str(run), *SMALL]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_zoo"]["images_seen"] == 64
    assert yaml.safe_load((run / "config.yaml").read_text())["max_epochs"] == 1


# --- bad input: one line, exit status 2, no traceback -----------------------------------------------------------------

def _bad(capsys, argv, *needles):
    code = cli(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


def test_unknown_model(capsys):
    _bad(capsys, ["--model", "nosuchgan"], "unknown model 'nosuchgan'", "dcgan", "lsgan")


def test_unknown_data_set(capsys):
    _bad(capsys, ["--model", "dcgan", "--data", "imagenet"], "unknown data set 'imagenet'", "fashion_mnist")


def test_missing_data_set_offline(capsys, tmp_path):
    _bad(capsys, ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path)], str(tmp_path), "MNIST")


def test_resolution_the_model_cannot_do(capsys, tmp_path):
    write_mnist(tmp_path)
    err = _bad(capsys, ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path), "--resolution", "30"],
               "resolution 30 is not supported")
    assert len(err.strip().splitlines()) == 1


def test_missing_checkpoint(capsys, tmp_path):
    _bad(capsys, ["--model", "dcgan", "--ckpt-path", str(tmp_path / "nope.ckpt")], "checkpoint not found")
    _bad(capsys, ["--model", "dcgan", "--out", str(tmp_path), "--ckpt-path", "last"], "no checkpoint at")


def test_corrupt_checkpoint(capsys, tmp_path):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"this is not a checkpoint")
    _bad(capsys, ["--model", "dcgan", "--ckpt-path", str(bad)], "cannot read checkpoint")
    torch.save({"state_dict": {}, "gan_zoo": {"model": "lsgan"}}, tmp_path / "other.ckpt")
    _bad(capsys, ["--model", "dcgan", "--ckpt-path", str(tmp_path / "other.ckpt")], "model 'lsgan', not 'dcgan'")


def test_checkpoint_with_pickled_code_is_refused(capsys, tmp_path):
    torch.save({"state_dict": {}, "gan_zoo": {"model": "dcgan"}, "evil": Path("x")}, tmp_path / "code.ckpt")
    _bad(capsys, ["--model", "dcgan", "--ckpt-path", str(tmp_path / "code.ckpt")], "cannot read checkpoint")


def test_unknown_option_and_bad_config(capsys, tmp_path):
    err = _bad(capsys, ["--model", "dcgan", "--learning-rate", "1"], "error: unrecognized arguments: --learning-rate")
    assert len(err.strip().splitlines()) == 1  # one line, no usage block
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: dcgan\nlearning_rate: 1\n")
    _bad(capsys, ["--config", str(cfg)], "unknown option(s)", "learning_rate")
    _bad(capsys, ["--config", str(tmp_path / "missing.yaml")], "config file not found")


def test_help_lists_models_data_sets_and_hparams(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "dcgan" in out and "fashion_mnist" in out and "ring8" in out
    with pytest.raises(SystemExit):
        cli(["--model", "lsgan", "--help"])
    out = capsys.readouterr().out
    assert "--coding" in out and "--label-smoothing" not in out and "--balance" in out and "--lr" in out


# Lengths at 80 columns. The longest help, sgan's, is 160 lines (128 at 100 columns), 57 of them its own section;
# the shared options take about 100 and grow as fit.py gains options, hence the headroom of the total.
HELP_MAX_LINES = 180
MODEL_SECTION_MAX_LINES = 65
HISTORY = re.compile(r"[a-z]+th round|of [0-9]+ runs|round [0-9]|seed 00[0-9]", re.I)


@pytest.mark.parametrize("model", [None, *list_models()])
def test_help_reads_as_documentation(capsys, monkeypatch, model):
    """``--help``, plain and for every model: each default said once, no reStructuredText markup, no tuning history,
    the model's group opening with a paragraph that cites its paper, and a length a person reads."""
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps at the terminal's width: count lines at a fixed one
    with pytest.raises(SystemExit) as e:
        cli((["--model", model] if model else []) + ["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    options = re.split(r"\n  (?=-)", out)  # one chunk per option: its flags and its wrapped help
    assert [o.split()[0] for o in options if o.count("(default") > 1] == []
    assert "``" not in out
    assert HISTORY.findall(out) == []
    assert len(out.splitlines()) < HELP_MAX_LINES
    if model:
        section = out.split(f"{model} hyperparameters:\n", 1)[1].split("\n\nAdd --model NAME", 1)[0]
        assert len(section.splitlines()) < MODEL_SECTION_MAX_LINES
        about = section.split("\n\n", 1)[0]
        assert re.search(r"\b(19|20)[0-9]{2}\b", about), about  # what the model is: its paper, with the year


def test_script_entry_point_reports_errors_cleanly():
    env = {**os.environ, "GAN_ZOO_OFFLINE": "1"}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "nope"], capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith("error: unknown model 'nope'")
    assert "Traceback" not in r.stderr


def test_auto_strategy_is_gan_ddp_on_several_devices_only():
    from gan_zoo.fit import resolve_strategy

    assert resolve_strategy("auto", "cpu", 2) == "gan_ddp"
    assert resolve_strategy("auto", "gpu", [0, 1]) == "gan_ddp"
    assert resolve_strategy("auto", "cpu", 1) == "auto"
    assert resolve_strategy("auto", "cpu", "auto") == "auto"  # one CPU process
    assert resolve_strategy("ddp_find_unused_parameters_true", "cpu", 2) == "ddp_find_unused_parameters_true"
