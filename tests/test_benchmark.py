"""``scripts/benchmark.py`` runs its comparisons end to end and writes what it measured (smallest possible runs)."""

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import benchmark  # noqa: E402

FAST = ["--models", "dcgan", "--configs", "none", "--steps", "1", "--warmup", "1", "--repeats", "2", "--memory",
        "none"]


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
