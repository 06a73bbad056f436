"""``benchmarks/toy_benchmark.py``: a real (tiny) run records its result, and ``--summarize`` tabulates recorded
runs."""

import json

import pytest
import yaml

from benchmarks import toy_benchmark


def test_a_tiny_run_records_its_result_with_its_settings(tmp_path, capsys):
    jsonl = tmp_path / "runs.jsonl"
    assert toy_benchmark.main(["--models", "dcgan", "--toys", "ring8", "--seeds", "0", "--iterations", "3",
                               "--batch", "16", "--hidden", "8", "--jobs", "1", "--out", str(tmp_path / "out"),
                               "--jsonl", str(jsonl)]) == 0
    (r,) = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert (r["model"], r["toy"], r["seed"], r["iterations"], r["extra"]) == ("dcgan", "ring8", 0, 3, "")
    assert (r["latent"], r["hidden"], r["batch"], r["points_per_iteration"], r["lr"]) == (2, 8, 16, 16, 1e-3)
    assert 0 <= r["modes"] <= 8 and 0 <= r["hq_percent"] <= 100
    # the model's resolved hyperparameters, defaults included
    assert (r["hparams"]["hidden"], r["hparams"]["latent_dim"], r["hparams"]["data_dim"]) == (8, 2, 2)
    assert "beta1" in r["hparams"] and not any(k.startswith("run/") for k in r["hparams"])
    assert "| ring8 | dcgan |" in capsys.readouterr().out


def test_sgan_runs_with_the_number_of_local_pairs_asked_for(tmp_path):
    jsonl = tmp_path / "runs.jsonl"
    assert toy_benchmark.main(["--models", "sgan", "--toys", "grid25", "--seeds", "1", "--iterations", "2",
                               "--batch", "24", "--hidden", "8", "--n-pairs", "3", "--jobs", "1",
                               "--out", str(tmp_path / "out"), "--jsonl", str(jsonl)]) == 0
    (r,) = [json.loads(line) for line in jsonl.read_text().splitlines()]
    # --batch is the real points per iteration, as for every model: each of the 3 local pairs sees 24 / 3 = 8
    assert (r["model"], r["n_pairs"], r["batch"], r["points_per_iteration"]) == ("sgan", 3, 8, 24)
    assert (r["hparams"]["n_pairs"], r["hparams"]["pair_seed"]) == (3, 1)
    # the loader batch is --batch, the budget 2 iterations of it
    run = yaml.safe_load((tmp_path / "out" / "grid25-sgan-s1" / "logs" / "hparams.yaml").read_text())
    assert (run["run/batch_size"], run["run/max_images"]) == (24, 48)
    # the fit's own output is kept beside the run
    assert (tmp_path / "out" / "grid25-sgan-s1" / "fit.log").read_text().splitlines()[-1].startswith(
        "done: 48 images seen")


def test_resume_skips_recorded_runs_and_continues_an_interrupted_one_to_the_same_result(tmp_path):
    base = ["--models", "sgan", "--toys", "grid25", "--batch", "16", "--hidden", "8", "--jobs", "1",
            "--n-pairs", "2"]
    # seed 0 recorded; seed 1 interrupted after 2 of its 4 iterations (a checkpoint, no record)
    jsonl = tmp_path / "runs.jsonl"
    out = str(tmp_path / "out")
    assert toy_benchmark.main([*base, "--seeds", "0", "--iterations", "4", "--out", out, "--jsonl", str(jsonl)]) == 0
    assert toy_benchmark.main([*base, "--seeds", "1", "--iterations", "2", "--out", out]) == 0
    with open(tmp_path / "out" / "grid25-sgan-s1" / "attempts.txt", "a") as f:
        f.write("0\n")  # an attempt killed together with the benchmark: started, no wall time written
    assert toy_benchmark.main([*base, "--seeds", "0,1", "--iterations", "4", "--out", out, "--jsonl", str(jsonl),
                               "--resume"]) == 0
    recs = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [(r["seed"], r["attempts"], r["wall_complete"]) for r in recs] == [(0, 1, True), (1, 3, False)]
    # seed 0 not run again; seed 1's wall time lacks its killed attempt, and says so
    # the resumed run ends where an uninterrupted one ends
    whole = tmp_path / "whole.jsonl"
    assert toy_benchmark.main([*base, "--seeds", "1", "--iterations", "4", "--out", str(tmp_path / "w"),
                               "--jsonl", str(whole)]) == 0
    (w,) = [json.loads(line) for line in whole.read_text().splitlines()]
    assert [w[k] for k in ("modes", "hq_percent", "reverse_kl")] == [recs[1][k] for k in
                                                                    ("modes", "hq_percent", "reverse_kl")]
    log = (tmp_path / "out" / "grid25-sgan-s1" / "fit.log").read_text()  # both attempts' output, kept
    assert [line.split(";")[0] for line in log.splitlines() if line.startswith("done:")] == [
        "done: 32 images seen", "done: 64 images seen"]
    with pytest.raises(SystemExit):
        toy_benchmark.main([*base, "--seeds", "0", "--resume"])  # --resume needs --jsonl


def test_summarize_keeps_the_last_record_per_seed_and_counts_runs_meeting_the_target(tmp_path, capsys):
    def rec(seed, modes, hq, rkl, iterations=12000, extra="", model="egan", **more):
        # records without latent / hidden / batch / lr (written before they were stored) count as the defaults
        return json.dumps({"model": model, "toy": "grid25", "seed": seed, "modes": modes, "hq_percent": hq,
                           "reverse_kl": rkl, "wall_s": 10.0, "iterations": iterations, "extra": extra, **more})

    lines = [rec(0, 20.0, 80.0, 0.5),   # superseded by the rerun of seed 0 below
             rec(0, 25.0, 95.0, 0.01),  # meets the target
             rec(1, 25.0, 89.0, 0.01),  # too few high-quality samples
             rec(2, 24.0, 95.0, 0.01),  # a mode missing
             rec(3, 25.0, 95.0, 0.05),  # reverse KL too high
             rec(4, 25.0, 95.0, 0.02, iterations=3000),            # another budget: not selected
             rec(4, 25.0, 95.0, 0.02, extra="--gamma 0"),          # other settings: not selected
             rec(4, 25.0, 95.0, 0.02, model="sgan"),               # another model: not selected
             rec(4, 25.0, 95.0, 0.02, latent=8),                   # another latent size: not selected
             json.dumps({"model": "egan", "toy": "grid25", "seed": 4, "error": "boom", "iterations": 12000,
                         "extra": ""})]
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert toy_benchmark.main(["--summarize", str(path), "--models", "egan", "--toys", "grid25",
                               "--iterations", "12000"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| grid25 | egan")]
    # modes 25, 25, 24, 25: mean 24.75, standard error 0.5 / 2 = 0.25; reverse KL mean (0.01*3 + 0.05) / 4 = 0.02
    assert row == ["| grid25 | egan | 24.75 +- 0.25 | 93.50 +- 1.50 | 0.020 +- 0.010 | 4 | 1 | 10 |"]


def test_summarize_counts_runs_that_found_no_mode_apart(tmp_path, capsys):
    # a run with no high-quality sample has an infinite reverse KL: it is counted, not averaged.
    # high quality 0, 90, 94: mean 61.33, sample std 53.15, standard error 53.15 / sqrt(3) = 30.69
    recs = [{"model": "selfgan", "toy": "ring8", "seed": s, "modes": m, "hq_percent": hq, "reverse_kl": kl,
             "wall_s": 5.0, "iterations": 100, "extra": ""}
            for s, m, hq, kl in ((0, 0.0, 0.0, float("inf")), (1, 8.0, 90.0, 0.02), (2, 8.0, 94.0, 0.04))]
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))  # json writes Infinity, and reads it back
    assert toy_benchmark.main(["--summarize", str(path), "--models", "selfgan", "--toys", "ring8", "--iterations",
                               "100"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ring8 | selfgan")]
    assert row == ["| ring8 | selfgan | 5.33 +- 2.67 | 61.33 +- 30.69 | inf in 1 of 3 runs (the others: 0.030 +- 0.010) "
                   "| 3 | 1 | 5 |"]


def test_a_batch_that_does_not_split_over_sgans_pairs_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        toy_benchmark.main(["--models", "dcgan,sgan", "--batch", "10", "--n-pairs", "4", "--out", str(tmp_path)])
    assert e.value.code == 2
    assert "--batch 10 does not split over SGAN's 4 pairs" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_summarize_selects_runs_by_real_points_per_iteration(tmp_path, capsys):
    # SGAN records from before points_per_iteration was stored held the points per pair in "batch" (loader batch
    # n_pairs x batch); newer records store both. --batch selects by the real points per iteration for every model.
    def rec(model, seed, modes, **more):
        return json.dumps({"model": model, "toy": "grid25", "seed": seed, "modes": modes, "hq_percent": 95.0,
                           "reverse_kl": 0.01, "wall_s": 1.0, "iterations": 10, "extra": "", **more})

    lines = [rec("sgan", 0, 25.0, batch=256),                               # old: 4 x 256 = 1024 points
             rec("sgan", 1, 23.0, batch=64),                                # old: 4 x 64 = 256 points
             rec("sgan", 2, 21.0, batch=128, n_pairs=2),                    # old, 2 pairs: 256 points, other n_pairs
             rec("sgan", 3, 24.0, batch=256, points_per_iteration=1024),    # new: 1024 points
             rec("dcgan", 0, 22.0, batch=256),                              # 256 points
             rec("dcgan", 1, 25.0, batch=1024, points_per_iteration=1024)]  # 1024 points
    path = tmp_path / "runs.jsonl"
    path.write_text("\n".join(lines) + "\n")

    def rows(batch):
        toy_benchmark.main(["--summarize", str(path), "--models", "sgan,dcgan", "--toys", "grid25", "--iterations",
                            "10", "--batch", str(batch)])
        return [line.split(" | ")[1:3] for line in capsys.readouterr().out.splitlines() if line.startswith("| grid")]

    assert rows(1024) == [["sgan", "24.50 +- 0.50"], ["dcgan", "25.00 +- 0.00"]]
    assert rows(256) == [["sgan", "23.00 +- 0.00"], ["dcgan", "22.00 +- 0.00"]]
