"""``benchmarks/gpu_syncs.py``: the per-step count of synchronising CUDA calls (the arithmetic, with a stand-in path
that warns as torch's sync debug mode does; the real count needs a CUDA device)."""

import warnings

import pytest
import torch

from benchmarks import benchmark, gpu_syncs

SYNC = "called a synchronizing CUDA operation"


def _fake_path(spec, warmup, batches, **kw):
    warnings.warn(SYNC)  # set-up: once per run
    for i in range(batches):
        warnings.warn(SYNC)  # every step
        if i % 2 == 0:
            warnings.warn(SYNC)  # every second step
        warnings.warn("some other warning")  # not a synchronisation


def test_per_step_counts_syncs_by_stack_and_drops_setup(monkeypatch):
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: None)
    monkeypatch.setitem(benchmark.PATHS, "lightning", _fake_path)
    res = gpu_syncs.per_step("lightning", benchmark.model_spec("dcgan"), 4, 12, "32-true")
    torch.testing.assert_close(res["per_step"], 1.5)
    torch.testing.assert_close(res["setup"], 1.0)
    assert sorted(res["where"].values()) == [0.5, 1.0]
    assert all("_fake_path" in where for where in res["where"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a CUDA device")
def test_gpu_syncs_needs_cuda(capsys):
    assert gpu_syncs.main(["--models", "dcgan"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
