"""``benchmarks/yardstick.py`` (the plain PyTorch DCGAN the zoo is compared with) and ``benchmarks/zoo_curves.py``
(the figure and table that put every run beside the yardstick). A fit's training clock: tests/test_fit.py."""

from __future__ import annotations

import csv
import os
import signal

import pytest
import torch

from benchmarks import yardstick, zoo_curves
from tests.conftest import needs_fmnist

TINY = ["--max-images", "320", "--every-images", "128", "--metric-samples", "100", "--no-progress-bar"]


def _rows(out) -> list[dict]:
    with open(out / "logs" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@needs_fmnist
def test_yardstick_stopped_by_sigterm_resumes_to_the_same_weights_and_curve(tmp_path, monkeypatch):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert yardstick.main(["--out", str(whole), *TINY]) == 0
    rows = _rows(whole)
    assert [int(r["step"]) for r in rows] == [128, 256, 320]  # every 128 images (batches of 64) and the end
    fid = "metrics/fid100_fmnist-cnn_test"
    assert all(float(r[fid]) > 0 and float(r["metrics/is100_fmnist-cnn_test"]) >= 1 for r in rows)
    seconds = [float(r["time/train_seconds"]) for r in rows]
    assert 0 < seconds[0] < seconds[1] < seconds[2]
    assert sorted(p.name for p in (whole / "samples").iterdir()) == [
        "samples_000000128.png", "samples_000000256.png", "samples_000000320.png"]

    # the same run, stopped by SIGTERM during its 3rd step (192 images), then the same command again
    real_step = yardstick.dcgan_step

    def stopping_step(model):
        step, opts = real_step(model)
        calls = []

        def wrapped(i, batch):
            calls.append(i)
            step(i, batch)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGTERM)
        return wrapped, opts

    monkeypatch.setattr(yardstick, "dcgan_step", stopping_step)
    assert yardstick.main(["--out", str(parts), *TINY]) == 128 + signal.SIGTERM
    assert torch.load(parts / "last.pt", weights_only=True)["images_seen"] == 192
    monkeypatch.setattr(yardstick, "dcgan_step", real_step)
    assert yardstick.main(["--out", str(parts), *TINY]) == 0

    a = torch.load(whole / "last.pt", weights_only=True)
    b = torch.load(parts / "last.pt", weights_only=True)
    assert a["images_seen"] == b["images_seen"] == 320
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    assert [(r["step"], r[fid]) for r in _rows(parts)] == [(r["step"], r[fid]) for r in rows]


@needs_fmnist
def test_yardstick_refuses_a_run_directory_of_other_settings(tmp_path, capsys):
    out = tmp_path / "y"
    assert yardstick.cli(["--out", str(out), "--max-images", "64", *TINY[2:]]) == 0  # one evaluation, at the end
    assert yardstick.cli(["--out", str(out), *TINY, "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "'seed': (0, 1)" in err


def _write_run(directory, rows, file="metrics.csv"):
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in rows for k in r})
    with open(directory / "logs" / file, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def test_zoo_table_reads_fid_is_time_and_own_measure_at_the_budgets(tmp_path, capsys):
    fid, is_ = "metrics/fid10k_fmnist-cnn_test", "metrics/is10k_fmnist-cnn_test"
    ys, gan = tmp_path / "yardstick", tmp_path / "semisupgan.fmnist28"
    _write_run(ys, [{"step": s, fid: f, is_: 2.0} for s, f in ((150_016, 40.0), (300_032, 20.0), (600_000, 10.0))]
               + [{"step": 600_000, "time/train_seconds": 300.0}])
    # the metrics and the clock in separate rows of the same step, as a fit's CSV logger writes them, and the first
    # part of a resumed fit in metrics.1.csv
    _write_run(gan, [{"step": 150_000, fid: 60.0, is_: 3.0}, {"step": 150_000, "time/train_seconds": 100.0}],
               "metrics.1.csv")
    _write_run(gan, [{"step": 300_000, fid: 50.0, is_: 3.5}, {"step": 300_000, "time/train_seconds": 200.0},
                     {"step": 300_000, "metrics/test_acc": 71.25}])
    png = tmp_path / "fig" / "zoo.png"
    assert zoo_curves.cli([str(gan), "--yardstick", str(ys), "--png", str(png)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("| run | FID 150k | FID 300k | FID 600k | IS 150k | IS 300k | IS 600k |")
    assert lines[2] == ("| semisupgan.fmnist28 | 60.0 | 50.0 | - | 3.00 | 3.50 | - | 300,000 | 50.0 | 2.50 | 67 "
                        "| test_acc 71.25 |")
    assert lines[3] == "| yardstick (yardstick) | 40.0 | 20.0 | 10.0 | 2.00 | 2.00 | 2.00 | 600,000 | 10.0 | 1.00 | 50 | - |"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_zoo_curves_name_the_fid_keys_when_runs_disagree(tmp_path, capsys):
    _write_run(tmp_path / "a", [{"step": 100, "metrics/fid10k_fmnist-cnn_test": 5.0}])
    _write_run(tmp_path / "b", [{"step": 100, "metrics/fid5k_fmnist-cnn_test": 6.0}])
    assert zoo_curves.cli([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "2 FID keys (metrics/fid10k_fmnist-cnn_test, metrics/fid5k_fmnist-cnn_test)" in err and "--fid" in err
    assert zoo_curves.cli([str(tmp_path / "a"), str(tmp_path / "b"), "--fid", "metrics/fid5k_fmnist-cnn_test"]) == 0
    assert "| a | - |" in capsys.readouterr().out  # a run without that key is listed without a curve
    assert zoo_curves.cli([str(tmp_path / "missing")]) == 2
    assert "no logs/metrics.csv" in capsys.readouterr().err
