"""A model's old name, kept as an alias: ``sgan`` is ``ensemble_sgan`` (Chavdarova & Fleuret's ensemble SGAN, renamed
so that it is not confused with Odena's semi-supervised "SGAN", ``semisupgan``). The alias is accepted wherever a
model name is read (``get_model``, fit's ``--model`` and configs, checkpoints and exports that record it, zoo entry
names) and listed nowhere."""

import pytest
import torch

import gan_zoo
from gan_zoo.errors import UnknownNameError
from gan_zoo.fit import main as fit_main
from gan_zoo.fit import parse_args
from gan_zoo.models import EnsembleSGAN, get_model_class
from gan_zoo.pretrained import manifest, read_export
from gan_zoo.weights import CHECKPOINTS


def test_the_old_name_builds_the_ensemble_sgan():
    model = gan_zoo.get_model("sgan", data_dim=2, latent_dim=4, hidden=8, n_pairs=2)
    assert type(model) is EnsembleSGAN and model.model_name == "ensemble_sgan"
    assert get_model_class("SGAN") is get_model_class("ensemble_sgan") is EnsembleSGAN


def test_aliases_are_not_listed():
    names = gan_zoo.list_models()
    assert "ensemble_sgan" in names and "sgan" not in names
    with pytest.raises(UnknownNameError) as e:
        gan_zoo.get_model("stylegan9")
    listed = str(e.value).split("valid models: ", 1)[1].split(", ")
    assert listed == names  # canonical names only


def test_fit_parses_the_old_name_and_a_config_that_names_it(tmp_path):
    args, hparams = parse_args(["--model", "sgan", "--data", "ring8", "--n-pairs", "3"])
    assert args.n_pairs == 3 and "messenger_sync" in hparams
    config = tmp_path / "old.yaml"
    config.write_text("model: sgan\ndata: ring8\nn_pairs: 3\ninstance_noise_on: all\n")
    args, _ = parse_args(["--config", str(config)])
    assert args.n_pairs == 3 and args.instance_noise_on == "all"


def test_a_checkpoint_that_records_the_old_name_loads_and_resumes(tmp_path):
    common = ["--data", "ring8", "--n-pairs", "2", "--batch-size", "16", "--latent-dim", "2", "--hidden", "8",
              "--metrics", "none", "--logger", "none", "--no-progress-bar", "--seed", "1"]
    assert fit_main(["--model", "ensemble_sgan", *common, "--max-images", "32", "--out", str(tmp_path / "a")]) == 0
    ckpt = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_zoo"]["model"] == "ensemble_sgan"
    ckpt["gan_zoo"]["model"] = "sgan"  # as a checkpoint written before the rename
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    model = gan_zoo.load_pretrained(str(old))
    assert type(model) is EnsembleSGAN and model.images_seen == 32
    assert fit_main(["--model", "sgan", *common, "--max-images", "64", "--out", str(tmp_path / "b"),
                     "--ckpt-path", str(old)]) == 0
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["gan_zoo"]["images_seen"] == 64 and resumed["gan_zoo"]["model"] == "ensemble_sgan"


def test_the_zoo_entry_loads_by_its_old_name():
    entry = manifest()["ensemble_sgan.fmnist32"]
    assert read_export(CHECKPOINTS / entry["file"])["model"] == "sgan"  # exported before the rename, unchanged
    old, new = gan_zoo.load_pretrained("sgan.fmnist32"), gan_zoo.load_pretrained("ensemble_sgan.fmnist32")
    assert type(old) is EnsembleSGAN and old.pretrained_meta["name"] == "ensemble_sgan.fmnist32"
    assert torch.equal(old.sample(4, seed=0), new.sample(4, seed=0))
