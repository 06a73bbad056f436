"""``benchmarks/lab/bigan_pairing.py``: D trained alone, E and G frozen, and the pairing gap it reaches."""

import copy
import json

import pytest
import torch

from benchmarks.lab import bigan_pairing
from gan_zoo.callbacks.encoder import inversion_metrics
from gan_zoo.fit import main as fit_main
from tests.conftest import needs_fmnist
from tests.test_bigan import _tiny


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("negatives", ["generator", "shuffled"])
def test_only_d_moves_and_the_first_row_is_the_untrained_gap(negatives):
    model = _tiny("bigan")
    x = torch.randint(0, 256, (48, 1, 16, 16), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    x_train, x_test = x[:32], x[32:]
    before = {name: _state(getattr(model, name)) for name in ("encoder", "generator", "discriminator")}
    gap0 = inversion_metrics(copy.deepcopy(model), x_test, None, n_latent=1)["d_pairing_gap"]
    rows = bigan_pairing.train_d_only(model, x_train, x_test, steps=5, negatives=negatives, batch_size=8, every=2)
    assert [r["step"] for r in rows] == [0, 2, 4, 5]
    assert rows[0] == {"step": 0, "loss_d": None, "d_pairing_gap": gap0}
    assert all(r["loss_d"] > 0 for r in rows[1:])
    for name in ("encoder", "generator"):  # weights and batch-norm statistics, bitwise
        after = _state(getattr(model, name))
        assert all(torch.equal(before[name][k], after[k]) for k in after), name
    after = _state(model.discriminator)
    assert any(not torch.equal(before["discriminator"][k], after[k]) for k in after)
    with pytest.raises(ValueError, match="generator, shuffled"):
        bigan_pairing.train_d_only(model, x_train, x_test, steps=1, negatives="real")


@needs_fmnist
def test_cli_writes_the_rows_and_refuses_models_without_an_encoder(tmp_path, capsys):
    tiny = ["--resolution", "16", "--ngf", "8", "--ndf", "8", "--latent-dim", "8", "--batch-size", "16",
            "--max-images", "32", "--metrics", "none", "--logger", "none", "--no-progress-bar"]
    assert fit_main(["--model", "bigan", "--out", str(tmp_path / "b"), *tiny]) == 0
    assert fit_main(["--model", "dcgan", "--out", str(tmp_path / "d"), *tiny]) == 0
    capsys.readouterr()
    out = tmp_path / "pairing.json"
    assert bigan_pairing.cli(["--ckpt", str(tmp_path / "b" / "checkpoints" / "last.ckpt"), "--steps", "3",
                              "--every", "3", "--n-test", "40", "--batch-size", "8", "--negatives", "shuffled",
                              "--json", str(out)]) == 0
    assert "d_pairing_gap" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert [r["step"] for r in res["rows"]] == [0, 3] and res["n_test"] == 40 and res["negatives"] == "shuffled"
    assert bigan_pairing.cli(["--ckpt", str(tmp_path / "d" / "checkpoints" / "last.ckpt")]) == 2
    assert "is a 'dcgan' checkpoint; this diagnosis is for bigan and bigbigan" in capsys.readouterr().err


def test_cli_refuses_non_positive_counts(capsys):
    assert bigan_pairing.cli(["--ckpt", "any.ckpt", "--steps", "0"]) == 2
    assert "--steps, --every, --batch-size and --n-test must be >= 1" in capsys.readouterr().err
