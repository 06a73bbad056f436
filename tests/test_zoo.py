"""The shipped zoo: every manifest entry against the live model, its file, its recipe and its recorded FID."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import gan_zoo
from gan_zoo import pretrained as zoo
from gan_zoo import weights
from gan_zoo.checkpoint_io import current_hparams
from gan_zoo.cli import init_params
from gan_zoo.models import get_model_class
from tests.conftest import needs_fmnist

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = zoo.manifest()
SIZE_LIMIT = 60_000_000  # bytes, every shipped weight file together


def test_the_zoo_ships_entries_and_stays_under_its_size_limit():
    assert ENTRIES, "checkpoints/zoo.json lists no entries"
    files = sorted(p.name for p in weights.CHECKPOINTS.glob("*.pt"))
    listed = sorted([e["file"] for e in ENTRIES.values()]
                    + [e["file"] for e in json.loads((weights.CHECKPOINTS / "extractors.json").read_text()).values()])
    assert files == listed  # no orphan file, no entry without its file
    total = sum((weights.CHECKPOINTS / f).stat().st_size for f in files)
    assert total <= SIZE_LIMIT, f"{total / 1e6:.1f} MB"


def test_every_registered_model_has_a_pretrained_entry():
    missing = sorted(set(gan_zoo.list_models()) - {e["model"] for e in ENTRIES.values()})
    assert not missing, f"no zoo entry for {missing}"


@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_matches_its_file_and_the_live_model(name):
    entry = ENTRIES[name]
    for field in zoo.REQUIRED_FIELDS:
        assert field in entry, field
    assert re.fullmatch(rf"{entry['model']}\.[a-z0-9_-]+", name)
    path = weights.CHECKPOINTS / entry["file"]
    assert entry["file"] == f"{name}-{entry['sha256'][:8]}.pt"
    assert path.stat().st_size == entry["size"] and weights.sha256_file(path) == entry["sha256"]
    # the live model builds from the recorded hyperparameters and the weights load strictly (load_pretrained)
    cls, recorded = get_model_class(entry["model"]), current_hparams(entry["model"], entry["hparams"])
    live = cls(**recorded)
    assert zoo.num_exported_params(live) == entry["num_params"]
    assert sorted(live.export_modules()) == entry["modules"]
    model = gan_zoo.load_pretrained(name)
    assert not model.training and model.images_seen == entry["images_seen"]
    x = model.sample(8, seed=0)
    assert x.shape == (8, entry["channels"], entry["resolution"], entry["resolution"])
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.05
    assert torch.equal(x, model.sample(8, seed=0))
    # the recipe trains this model on this data set at this resolution, and the grid shown in the README exists
    recipe = yaml.safe_load((ROOT / entry["recipe"]["config"]).read_text())
    assert recipe["model"] == entry["model"] and recipe["data"] == entry["data"]["name"]
    assert recipe.get("resolution", entry["resolution"]) == entry["resolution"]
    assert recipe["max_images"] <= entry["images_seen"] < recipe["max_images"] + 1024
    # ... with the entry's hyperparameters: the recipe's options on top of today's defaults rebuild every recorded
    # value (a changed default must be pinned in the recipe, or the recipe no longer trains what it shipped)
    options = {k: v for k, v in recipe.items() if k in init_params(cls)}
    rebuilt = gan_zoo.get_model(entry["model"], **{**options, "channels": entry["channels"],
                                                   "resolution": entry["resolution"]}).hparams
    assert {k: rebuilt[k] for k in recorded} == recorded
    assert (ROOT / entry["sample_grid"]).is_file()
    if "test_acc" in " ".join(entry["metrics"]["values"]):  # a classifier states how many labels it learnt from
        assert model.classify is not None
        assert entry["data"]["num_labeled"] == recipe.get("num_labeled", model.default_num_labeled) > 0
    if entry["model"] in ("bigan", "bigbigan"):
        assert model.encode(x).shape == (8, entry["hparams"]["latent_dim"])


@pytest.fixture(scope="module")
def fresh_cache(tmp_path_factory):
    """A cache of real statistics that starts empty: the first entry's check computes them, the others reuse them."""
    return tmp_path_factory.mktemp("cache")


@needs_fmnist
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_entry_fid_is_still_what_the_manifest_records(name, tmp_path, fresh_cache):
    """Re-measure each entry's small FID: a silent change in a model, the sampler or the metric fails here. It runs
    as a user runs it: ``scripts/evaluate.py`` in a fresh process, with real statistics computed afresh in this run
    (a cache that starts empty, shared by the entries). The tolerance (export.CI_RTOL, 1 %) leaves room for another
    machine's float arithmetic only."""
    check = ENTRIES[name]["ci_check"]
    out = tmp_path / "m.json"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--pretrained", name, "--metrics", "fid",
                        "--n", str(check["n"]), "--seed", str(check["seed"]), "--extractor", check["extractor"],
                        "--split", check["split"], "--device", "cpu", "--out", str(out)], capture_output=True, text=True,
                       env={**os.environ, "GAN_ZOO_CACHE": str(fresh_cache)}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    value = json.loads(out.read_text())["metrics"][check["metric"]]
    assert abs(value - check["value"]) <= check["rtol"] * check["value"], (value, check["value"])


def test_readme_table_is_generated_from_the_manifest():
    from gan_zoo.export import readme_table

    assert readme_table(ENTRIES) in (ROOT / "README.md").read_text(), \
        "README is stale: run python scripts/export_pretrained.py --readme"
