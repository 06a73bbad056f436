"""Test settings: never touch the network, keep W&B and data caches inside a temporary directory."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="gan_zoo_tests_"))
os.environ["GAN_ZOO_OFFLINE"] = "1"  # no torchvision downloads
os.environ["WANDB_MODE"] = "disabled"
os.environ["WANDB_SILENT"] = "true"
for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
    os.environ[var] = str(_TMP / var.lower())
os.environ["XDG_CACHE_HOME"] = str(_TMP / "cache")  # the default data root is empty in tests
os.environ["GAN_ZOO_CACHE"] = str(_TMP / "gan_zoo_cache")  # real statistics and downloads: never the user's cache
os.environ.pop("GAN_ZOO_DATA", None)
warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")

FMNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    # Some libraries set these process-wide (WandbLogger(offline=True) sets WANDB_MODE); reset for every test.
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("GAN_ZOO_OFFLINE", "1")
    monkeypatch.delenv("GAN_ZOO_DATA", raising=False)


def fmnist_available() -> bool:
    return (FMNIST_SYSTEM / "train-images-idx3-ubyte.gz").is_file()


needs_fmnist = pytest.mark.skipif(not fmnist_available(),
                                  reason="apt-get install -y dataset-fashion-mnist (.ci/run installs it)")
