"""``benchmarks/benchmark.py`` runs its comparisons end to end and writes what it measured (smallest possible runs)."""

import json

import pytest
import torch

import benchmarks.benchmark as benchmark
from tests.conftest import needs_fmnist

FAST = ["--models", "dcgan", "--configs", "none", "--batch-size", "8", "--steps", "1", "--warmup", "1", "--repeats",
        "2", "--memory", "none"]


@pytest.mark.parametrize("extra, arms", [
    ([], ["lightning", "plain"]),
    (["--channels-last", "--precision", "bf16-mixed"], ["lightning_cl", "plain_cl"]),
    (["--compare", "formats"], ["lightning_cl", "lightning"]),
])
def test_benchmark_writes_both_arms(tmp_path, extra, arms):
    out = tmp_path / "b.json"
    assert benchmark.main([*FAST, *extra, "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["arms"] == arms and res["precision"] == ("bf16-mixed" if "bf16-mixed" in extra else "32-true")
    assert res["versions"]["torch"] == torch.__version__ and "--steps 1" in res["command"]
    r = res["models"]["dcgan"]
    for arm in arms:
        assert len(r[f"{arm}_runs"]) == 2 and all(v > 0 for v in r[f"{arm}_runs"])
    assert r["ratios"] == [a / b for a, b in zip(r[f"{arms[0]}_runs"], r[f"{arms[1]}_runs"])]


def test_benchmark_memory_probe_reports_the_peak(tmp_path):
    out = tmp_path / "b.json"
    assert benchmark.main([*FAST[:-2], "--memory", "subprocess", "--repeats", "1", "--json", str(out)]) == 0
    mem = json.loads(out.read_text())["models"]["dcgan"]["memory"]
    assert set(mem) == {"lightning", "plain"}
    for m in mem.values():
        assert m["peak_rss_delta_mib"] > 0 and m["peak_rss_mib"] >= m["rss_before_mib"]


def test_benchmark_refuses_bad_input(capsys):
    assert benchmark.main(["--models", "nope", "--configs", "none"]) == 2
    assert "unknown model 'nope'; valid:" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert benchmark.main([*FAST, "--accelerator", "gpu"]) == 2
        assert "torch sees no CUDA device" in capsys.readouterr().err
    assert benchmark.main([*FAST[:-2], "--memory", "cuda"]) == 2
    assert "--memory cuda needs --accelerator gpu" in capsys.readouterr().err


def test_benchmark_times_the_2d_toys_at_the_toy_protocol_settings(tmp_path, capsys):
    out = tmp_path / "b.json"
    toys = {}
    for name, memory in (("dcgan", "subprocess"), ("egan", "none")):
        assert benchmark.main(["--toys", name, "--steps", "1", "--warmup", "1", "--repeats", "1", "--memory", memory,
                               "--json", str(out)]) == 0
        res = json.loads(out.read_text())
        assert res["models"] == {} and res["configs"] == {} and set(res["toys"]) == {name}
        toys.update(res["toys"])
    for name, r in toys.items():
        assert r["batch_size"] == 256 and r["hparams"]["data_dim"] == 2 and r["hparams"]["hidden"] == 128
        assert r["lightning_runs"][0] > 0 and r["plain_runs"][0] > 0
    assert set(toys["dcgan"]["memory"]) == {"lightning", "plain"}  # the probe rebuilds the toy in a subprocess
    assert (toys["egan"]["hparams"]["mu"], toys["egan"]["hparams"]["gamma"]) == (4, 0.0)
    assert benchmark.main(["--toys", "pggan"]) == 2
    assert "'pggan' does not train on the 2D toys; valid: " in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.main(["--toys", "dcgan", "--check", "32-true"])
    assert "--check runs registered models (--models), not --toys" in capsys.readouterr().err


def test_benchmark_keeps_what_it_measured_when_stopped(tmp_path, monkeypatch):
    """The JSON is rewritten after every model, so a run stopped at a time limit keeps the finished ones."""
    out = tmp_path / "b.json"
    real = benchmark.compare

    def compare(spec, args):
        if spec.model == "lsgan":
            raise KeyboardInterrupt  # stands for the time limit
        return real(spec, args)

    monkeypatch.setattr(benchmark, "compare", compare)
    with pytest.raises(KeyboardInterrupt):
        benchmark.main([*FAST, "--models", "dcgan,lsgan", "--json", str(out)])
    res = json.loads(out.read_text())
    assert res["complete"] is False and list(res["models"]) == ["dcgan"]
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.setattr(benchmark, "compare", real)
    assert benchmark.main([*FAST, "--json", str(out)]) == 0
    assert json.loads(out.read_text())["complete"] is True


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_benchmark_cuda_memory_in_process(tmp_path):
    out = tmp_path / "b.json"
    assert benchmark.main([*FAST[:-2], "--memory", "cuda", "--accelerator", "gpu", "--json", str(out)]) == 0
    mem = json.loads(out.read_text())["models"]["dcgan"]["memory"]
    assert set(mem) == {"lightning", "plain"} and all(m["cuda_peak_delta_mib"] > 0 for m in mem.values())


def test_lightning_timer_synchronises_only_at_the_window_ends(monkeypatch):
    """A sync after every batch would stall a GPU's queue (the plain loop syncs only at the two ends)."""
    calls = []
    monkeypatch.setattr(benchmark, "_sync", lambda: calls.append(1))
    img_s = benchmark.run_lightning(benchmark.model_spec("dcgan"), warmup=1, steps=3)
    assert img_s > 0 and len(calls) == 2


@needs_fmnist
def test_benchmark_check_trains_each_model_in_each_precision_on_fashion_mnist(tmp_path):
    out = tmp_path / "c.json"
    assert benchmark.main(["--check", "32-true", "--models", "dcgan", "--steps", "4", "--warmup", "2", "--window", "2",
                           "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["complete"] is True and res["check_precisions"] == ["32-true"] and "--check 32-true" in res["command"]
    [row] = res["check"]
    assert row["model"] == "dcgan" and row["error"] is None and row["finite_losses"] and row["samples_ok"]
    assert row["windows"] == 2 and row["images_per_s"] > 0 and row["images_seen"] == 6 * row["batch_size"]


def test_benchmark_check_refuses_bad_input(capsys):
    for bad in (["--check", "64-true"], ["--check", "32-true", "--configs", "canonical64"]):
        with pytest.raises(SystemExit):
            benchmark.main(bad)
    assert "--check runs registered models" in capsys.readouterr().err
