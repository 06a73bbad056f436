"""What a fit shows and logs: a progress bar in kimg against the image budget, every value on one x-axis (images seen)
in every logger, final.png without a duplicate log entry, and no notices a normal run does not need."""

import csv
import re

import pytest

from gan_zoo.fit import main
from tests.test_datamodules import write_mnist
from tests.test_fit import SMALL

TOY = ["--model", "dcgan", "--data", "ring8", "--batch-size", "32"]


def test_the_progress_bar_counts_kimg_against_the_budget(tmp_path, capsys):
    assert main([*TOY, "--max-images", "640", "--logger", "none", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    frames = [f for f in re.split(r"[\r\n]", err) if "kimg [" in f]
    assert frames, err[-2000:]
    assert all("/0.640 kimg" in f for f in frames), frames[:3]  # total = --max-images, not batches of an epoch
    assert "0.640/0.640 kimg" in frames[-1] and "img/s=" in frames[-1] and "d=" in frames[-1], frames[-1]
    assert "3125" not in err  # the ring8 epoch's batch count appears nowhere


def test_the_progress_bar_total_follows_epochs_when_no_image_budget(tmp_path, capsys):
    assert main([*TOY, "--max-epochs", "1", "--limit-train-batches", "10", "--logger", "none",
                 "--out", str(tmp_path / "run")]) == 0
    frames = [f for f in re.split(r"[\r\n]", capsys.readouterr().err) if "kimg [" in f]
    assert frames and "0.320/0.320 kimg" in frames[-1], frames[-3:]  # 10 batches x 32 images


def test_csv_and_tensorboard_place_every_value_at_images_seen(tmp_path):
    write_mnist(tmp_path / "data", n_train=128)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--max-images", "128",
              "--sample-every-images", "64", *SMALL]
    assert main([*common, "--logger", "csv", "--out", str(tmp_path / "csv")]) == 0
    with open(tmp_path / "csv" / "logs" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # one row of losses per batch of 16, at its images, and the training clock's row at the end
    assert [int(r["step"]) for r in rows if r["loss/d"]] == [16 * (i + 1) for i in range(8)]
    assert [int(r["step"]) for r in rows if r["time/train_seconds"]] == [128] and len(rows) == 9
    for r in rows:
        assert float(r["train/kimg"]) == pytest.approx(int(r["step"]) / 1000)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert main([*common, "--logger", "tensorboard", "--out", str(tmp_path / "tb")]) == 0
    events = EventAccumulator(str(tmp_path / "tb" / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("loss/d")] == [16 * (i + 1) for i in range(8)]
    # grids at 0, 64 and 128 images; final.png is the 128 grid, not logged a second time
    assert [e.step for e in events.Images("samples/grid")] == [0, 64, 128]
    samples = tmp_path / "tb" / "samples"
    assert (samples / "final.png").read_bytes() == (samples / "samples_000000128.png").read_bytes()


def test_wandb_plots_every_value_against_kimg(tmp_path, monkeypatch):
    from gan_zoo.loggers import ImagesWandbLogger

    calls = {"define": [], "log": []}

    class Run:
        id = "x"

        def define_metric(self, name, **kw):
            calls["define"].append((name, kw))

        def log(self, metrics):
            calls["log"].append(metrics)

    logger = ImagesWandbLogger(project="p", save_dir=str(tmp_path), mode="disabled")
    monkeypatch.setattr(logger, "_experiment", None)
    monkeypatch.setattr("lightning.pytorch.loggers.wandb.WandbLogger.experiment", property(lambda self: Run()))
    logger.images_seen = lambda: 2500
    logger.log_metrics({"loss/d": 0.5}, step=7)  # Lightning passes its optimizer-step count
    assert calls["define"] == [("train/kimg", {}), ("*", {"step_metric": "train/kimg", "step_sync": True})]
    assert calls["log"] == [{"loss/d": 0.5, "train/kimg": 2.5}]


def test_a_normal_fit_prints_no_advertisement_or_deprecation_notice(tmp_path, capsys, caplog):
    assert main([*TOY, "--max-images", "64", "--logger", "csv", "--no-progress-bar", "--out", str(tmp_path / "r")]) == 0
    printed = capsys.readouterr().err + caplog.text
    for notice in ("litlogger", "anonymous setting", "logging interval"):
        assert notice not in printed, notice


def test_the_end_of_fit_metrics_show_progress(tmp_path, capsys):
    write_mnist(tmp_path / "data", n_train=64, n_test=64)
    assert main(["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--max-images", "32",
                 "--logger", "none", "--out", str(tmp_path / "run"), "--metrics", "fid", "--metric-samples", "200",
                 "--extractor", "fmnist-cnn", *[a for a in SMALL if a not in ("--metrics", "none",
                                                                           "--no-progress-bar")]]) == 0
    err = capsys.readouterr().err
    assert re.search(r"metrics \(fid of 200 samples\): +[0-9]+%.*/200 ", err), err[-2000:]


def test_values_logged_every_n_steps_are_the_means_of_the_steps_between(tmp_path):
    """Logging every 4 steps writes, for each key, the mean of the per-step values since the last write: the same fit
    logged at every step gives those values one by one (logging does not change training)."""
    write_mnist(tmp_path / "data", n_train=128)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--max-images", "256",
              "--logger", "csv", *SMALL]

    def rows(name, every):
        assert main([*common, "--log-every-n-steps", str(every), "--out", str(tmp_path / name)]) == 0
        with open(tmp_path / name / "logs" / "metrics.csv", newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("loss/d")]

    each, sparse = rows("each", 1), rows("sparse", 4)
    assert len(each) == 16 and 2 <= len(sparse) < 16
    by_step = {int(r["step"]): r for r in each}
    previous = 0
    for r in sparse:
        step = int(r["step"])
        window = [by_step[s] for s in sorted(by_step) if previous < s <= step]
        assert len(window) > 1
        for key in ("loss/d", "loss/g", "d/real_score", "d/fake_score"):
            mean = sum(float(w[key]) for w in window) / len(window)
            assert float(r[key]) == pytest.approx(mean, rel=1e-5), (key, step)
        previous = step
