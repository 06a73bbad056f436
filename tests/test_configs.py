"""The recipes in ``configs/``: every one names only options its model has, and the 2D-toy recipes run as written."""

import csv
from pathlib import Path

import pytest
import yaml

from gan_zoo.fit import main, parse_args

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))
TOY_RECIPES = [p for p in RECIPES if yaml.safe_load(p.read_text())["data"] in ("ring8", "grid25")]


def test_the_toy_recipes_are_found():
    assert {p.name for p in TOY_RECIPES} >= {"egan_grid25.yaml", "ensemble_sgan_grid25.yaml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_every_recipe_parses_with_its_values(recipe):
    cfg = yaml.safe_load(recipe.read_text())
    args, _ = parse_args(["--config", str(recipe)])  # an unknown option would raise UserError
    for key, value in cfg.items():
        assert getattr(args, key) == value, key


@pytest.mark.parametrize("recipe", TOY_RECIPES, ids=lambda p: p.name)
def test_toy_recipe_runs_and_records_the_recipe(recipe, tmp_path):
    """Four iterations of the recipe (the budget overridden) train, score the toy and keep the recipe's settings."""
    cfg = yaml.safe_load(recipe.read_text())
    out = tmp_path / "run"
    assert main(["--config", str(recipe), "--max-images", str(4 * cfg["batch_size"]), "--out", str(out),
                 "--logger", "csv", "--no-progress-bar", "--hidden", "16"]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    for key, value in cfg.items():
        if key not in ("max_images", "hidden"):
            assert resolved[key] == value, key
    assert (out / "checkpoints" / "last.ckpt").is_file()
    with open(out / "logs" / "metrics.csv") as f:  # the toy was scored at the end
        scored = [row for row in csv.DictReader(f) if row.get("toy/modes")]
    assert len(scored) == 1 and 0 <= float(scored[0]["toy/modes"]) <= 25
