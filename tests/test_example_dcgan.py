"""``benchmarks/example_dcgan.py``: the PyTorch example's steady state counts only whole training batches inside an
epoch after the first, and the runs alternate between the arms."""

import json
import textwrap

import pytest

from benchmarks import example_dcgan

# Prints the example's batch lines; the intervals the steady state must leave out (after batch 0, where the example
# writes its sample grid, around the epoch's last batch and its checkpoint, all of epoch 0) are slow.
FAKE_EXAMPLE = textwrap.dedent("""
    import argparse, time
    p = argparse.ArgumentParser()
    for a in ("--dataset", "--batchSize", "--workers", "--niter", "--manualSeed", "--outf"):
        p.add_argument(a)
    opt = p.parse_args()
    assert (opt.dataset, opt.batchSize, opt.workers) == ("fake", "64", "0")
    for epoch in range(int(opt.niter)):
        for i in range(16):
            time.sleep(0.4 if epoch == 0 or i in (1, 15) else 0.02)
            print("[%d/%s][%d/16] Loss_D: 1.0 Loss_G: 1.0 D(x): 0.5 D(G(z)): 0.5 / 0.5" % (epoch, opt.niter, i))
        time.sleep(0.4)
""")


def test_the_example_rate_is_its_steady_training_batches(tmp_path):
    script = tmp_path / "main.py"
    script.write_text(FAKE_EXAMPLE)
    res = example_dcgan.example_rate(script, epochs=2, env=None)
    assert res["batches_timed"] == 13  # batches 2 to 14 of epoch 1
    # 64 images per 0.02 s at most; one slow interval among the 13 would bring it under 700 images/s
    assert 1500 < res["images_per_s"] <= 64 / 0.02


def test_a_failing_example_is_reported_with_its_output(tmp_path):
    script = tmp_path / "main.py"
    script.write_text("raise SystemExit('no such option')\n")
    with pytest.raises(RuntimeError, match="no such option"):
        example_dcgan.example_rate(script, epochs=2, env=None)


def test_runs_alternate_and_the_ratio_is_zoo_over_example(tmp_path, monkeypatch, capsys):
    calls = []
    rates = {"example": iter([100.0, 50.0, 80.0]), "gan_zoo": iter([150.0, 100.0, 80.0])}

    def fake(arm):
        def rate(*args, **kwargs):
            calls.append(arm)
            rate = next(rates[arm])
            return {"images_per_s": rate, "batches_timed": 1, "mean_images_per_s": rate}
        return rate

    monkeypatch.setattr(example_dcgan, "example_rate", fake("example"))
    monkeypatch.setattr(example_dcgan, "zoo_rate", fake("gan_zoo"))
    script = tmp_path / "main.py"
    script.write_text("")
    out = tmp_path / "r.json"
    assert example_dcgan.main(["--example", str(script), "--repeats", "3", "--json", str(out)]) == 0
    assert calls == ["example", "gan_zoo", "gan_zoo", "example", "example", "gan_zoo"]
    rec = json.loads(out.read_text())
    assert rec["ratios"] == [1.5, 2.0, 1.0]
    assert rec["summary"]["ratio_median"] == 1.5
    assert (rec["summary"]["example_images_per_s"], rec["summary"]["gan_zoo_images_per_s"]) == (80.0, 100.0)
    assert len(rec["example_sha256"]) == 64


def test_concurrent_pairs_run_both_arms_at_once_on_swapped_cores(tmp_path, monkeypatch):
    cores = []

    def fake(arm):
        def rate(core):
            cores.append((arm, core))
            return {"images_per_s": 1.0, "batches_timed": 1, "mean_images_per_s": 1.0}
        return rate

    monkeypatch.setattr(example_dcgan, "example_rate", lambda example, epochs, env, core: fake("example")(core))
    monkeypatch.setattr(example_dcgan, "zoo_rate", lambda warmup, steps, env, core: fake("gan_zoo")(core))
    script = tmp_path / "main.py"
    script.write_text("")
    assert example_dcgan.main(["--example", str(script), "--repeats", "2", "--concurrent"]) == 0
    assert sorted(cores[:2]) == [("example", 0), ("gan_zoo", 1)]
    assert sorted(cores[2:]) == [("example", 1), ("gan_zoo", 0)]


def test_the_zoo_arm_times_the_canonical_dcgan_under_a_trainer():
    res = example_dcgan.zoo_rate(warmup=1, steps=2, env=None)
    assert res["batches_timed"] == 2 and res["images_per_s"] > 0


def test_a_missing_example_file_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        example_dcgan.main(["--example", str(tmp_path / "nope.py")])
    assert "fetch dcgan/main.py" in capsys.readouterr().err
