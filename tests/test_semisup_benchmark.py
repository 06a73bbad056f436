"""``benchmarks/semisup_benchmark.py``: the table's statistics, and a real (tiny) GAN / baseline pair recorded with its
accuracy curve."""

import json

from benchmarks import semisup_benchmark
from tests.conftest import needs_fmnist


def _rec(labels, seed, method, acc, **more):
    return {"data": "fashion_mnist", "labels": labels, "seed": seed, "method": method, "max_images": 1000,
            "extra": "", "test_acc": acc, "wall_s": 10.0, **more}


def test_summary_gives_standard_errors_and_the_paired_gain(tmp_path, capsys):
    recs = [_rec(100, 0, "gan", 70.0), _rec(100, 1, "gan", 74.0), _rec(100, 2, "gan", 72.0),
            _rec(100, 0, "baseline", 66.0), _rec(100, 1, "baseline", 69.0), _rec(100, 2, "baseline", 70.0),
            _rec(100, 3, "gan", 99.0, extra="--arch mlp"),  # other settings: not selected
            _rec(100, 4, "gan", 99.0, max_images=5),      # another budget: not selected
            {**_rec(100, 5, "gan", 0.0), "error": "boom"}]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert semisup_benchmark.main(["--summarize", str(path), "--labels", "100", "--max-images", "1000"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| fashion_mnist")]
    # GAN 70, 74, 72: mean 72, sd 2, s.e. 2 / sqrt(3) = 1.15; baseline 66, 69, 70: mean 68.33, sd 2.08, s.e. 1.20;
    # per-seed gains 4, 5, 2: mean 3.67, sd 1.53, s.e. 0.88
    assert rows == ["| fashion_mnist | 100 | gan | 72.00 +- 1.15 | 3 | 70.00, 74.00, 72.00 | 3.67 +- 0.88 (3) | 10 |",
                    "| fashion_mnist | 100 | baseline | 68.33 +- 1.20 | 3 | 66.00, 69.00, 70.00 |  | 10 |"]


def test_a_resumed_runs_curve_holds_every_attempts_evaluations(tmp_path, monkeypatch):
    # a fit resumed with --ckpt-path last keeps its earlier log as metrics.1.csv and starts metrics.csv afresh
    def fake_run_fit(cmd, out, resume):
        logs = out / "logs"
        logs.mkdir(parents=True)
        (logs / "metrics.1.csv").write_text("step,loss/d,metrics/test_acc\n16,0.5,\n32,,51.5\n")
        (logs / "metrics.csv").write_text("step,metrics/test_acc\n48,\n64,60.25\n")
        return 0, {"wall_s": 1.0, "attempts": 2, "wall_complete": True}

    monkeypatch.setattr(semisup_benchmark, "run_fit", fake_run_fit)
    args = semisup_benchmark.build_parser().parse_args(["--out", str(tmp_path), "--max-images", "64"])
    rec = semisup_benchmark.run_one(args, 20, 0, "gan")
    assert rec["curve"] == [(32, 51.5), (64, 60.25)] and rec["test_acc"] == 60.25


@needs_fmnist
def test_a_tiny_pair_records_accuracy_curves_and_resume_skips_it(tmp_path, capsys):
    jsonl = tmp_path / "runs.jsonl"
    args = ["--labels", "20", "--seeds", "0", "--max-images", "64", "--every-images", "32", "--jobs", "1",
            "--extra", "--batch-size 16 --ngf 8 --ndf 8", "--out", str(tmp_path / "out"), "--jsonl", str(jsonl)]
    assert semisup_benchmark.main(args) == 0
    recs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(r["method"] for r in recs) == ["baseline", "gan"]
    for r in recs:
        assert [step for step, _ in r["curve"]] == [32, 64]  # every 32 images and at the end
        assert r["test_acc"] == r["curve"][-1][1] and 0 <= r["test_acc"] <= 100
        assert (r["labels"], r["seed"], r["max_images"], r["attempts"]) == (20, 0, 64, 1)
    capsys.readouterr()
    assert semisup_benchmark.main([*args, "--resume"]) == 0
    assert len(jsonl.read_text().splitlines()) == 2  # nothing ran again
    assert "2 runs already in" in capsys.readouterr().err
