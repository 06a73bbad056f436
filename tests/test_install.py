"""The product as a user installs it: a wheel (not an editable install) in a fresh virtual environment, used from
outside the source tree."""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", "build", "dist", "runs", "wandb", "data", "*.egg-info", "__pycache__",
                              ".pytest_cache", "lightning_logs")

USE = textwrap.dedent("""
    import importlib.util, sys
    import gan_zoo
    from gan_zoo import weights
    assert gan_zoo.__file__.startswith(sys.prefix), gan_zoo.__file__  # the installed copy, not the checkout
    assert weights.CHECKPOINTS == weights.Path(gan_zoo.__file__).parent / "checkpoints", weights.CHECKPOINTS
    assert importlib.util.find_spec("datamodules") is None  # no generic top-level name claimed
    names = gan_zoo.list_pretrained()
    assert {"dcgan.fmnist32", "pggan.fmnist32", "fmnist-cnn", "mnist-cnn"} <= set(names), names
    for name in ("dcgan.fmnist32", "pggan.fmnist32"):
        images = gan_zoo.load_pretrained(name).sample(4, seed=0)
        assert tuple(images.shape) == (4, 1, 32, 32) and images.min() >= -1 and images.max() <= 1, name
    extractor = gan_zoo.load_pretrained("fmnist-cnn")
    print("ok", len(names), type(extractor).__name__)
""")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment with gan_zoo installed from a wheel built from this tree. The environment sees the
    system's packages (torch, lightning, ...: the test stays offline) but not the source tree."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=SKIP)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "--no-index", "-q", "-w", str(tmp / "wheel")], check=True, env=env, cwd=tmp)
    wheel = next((tmp / "wheel").glob("gan_zoo-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(tmp / "venv")], check=True)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   env=env, cwd=tmp)
    return {"wheel": wheel, "python": python, "bin": tmp / "venv" / "bin", "cwd": tmp, "env": env}


@pytest.mark.slow
def test_the_wheel_ships_one_package_with_the_zoo(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"gan_zoo"}, tops
    shipped = {Path(n).name for n in names if n.startswith("gan_zoo/checkpoints/")}
    expected = {p.name for p in (ROOT / "checkpoints").iterdir() if p.suffix in (".pt", ".json")}
    assert shipped == expected
    assert "gan_zoo/datamodules/mnist.py" in names


@pytest.mark.slow
def test_an_installed_gan_zoo_loads_the_zoo_offline_and_fits_through_its_command(installed):
    env, cwd = {**installed["env"], "GAN_ZOO_OFFLINE": "1", "WANDB_MODE": "disabled"}, installed["cwd"]
    r = subprocess.run([str(installed["python"]), "-c", USE], capture_output=True, text=True, env=env, cwd=cwd)
    assert r.returncode == 0 and r.stdout.startswith("ok 11 DomainExtractor"), r.stderr[-3000:]

    gan_zoo = str(installed["bin"] / "gan-zoo")
    r = subprocess.run([gan_zoo, "sample", "--pretrained", "dcgan.fmnist32", "--n", "16", "--out", "grid.png"],
                       capture_output=True, text=True, env=env, cwd=cwd)
    assert r.returncode == 0 and (cwd / "grid.png").stat().st_size > 0, r.stderr[-3000:]
    run = cwd / "run"
    r = subprocess.run([gan_zoo, "fit", "--model", "dcgan", "--data", "ring8", "--max-images", "64", "--batch-size",
                        "32", "--logger", "none", "--no-progress-bar", "--out", str(run)],
                       capture_output=True, text=True, env=env, cwd=cwd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "config.yaml").is_file()
    r = subprocess.run([gan_zoo, "evaluate", "--ckpt", str(run / "checkpoints" / "last.ckpt"), "--metrics", "toy",
                        "--out", "toy.json"], capture_output=True, text=True, env=env, cwd=cwd)
    assert r.returncode == 0 and (cwd / "toy.json").is_file(), r.stderr[-3000:]
    r = subprocess.run([gan_zoo, "fit", "--model", "nosuchgan"], capture_output=True, text=True, env=env, cwd=cwd)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown model 'nosuchgan'"), r.stderr[-3000:]


def test_no_manifest_found_says_where_it_looked(tmp_path, monkeypatch):
    from gan_zoo import pretrained, weights

    monkeypatch.setattr(weights, "CHECKPOINTS", tmp_path / "checkpoints")
    with pytest.raises(pretrained.PretrainedError) as e:
        pretrained.list_pretrained()
    assert str(e.value).startswith(f"no zoo manifest found: looked for zoo.json and extractors.json in "
                                   f"{tmp_path / 'checkpoints'}")


def test_the_gan_zoo_command_dispatches_to_each_verb(capsys, tmp_path):
    from gan_zoo.__main__ import main

    assert main(["--help"]) == 0
    assert "fit" in capsys.readouterr().out
    assert main([]) == 2 and "usage: gan-zoo" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert capsys.readouterr().err == "error: unknown command 'train'; valid: fit, sample, evaluate, export, list\n"
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "dcgan" in out and "fashion_mnist" in out and "pggan.fmnist32" in out
    assert main(["sample", "--pretrained", "dcgan.fmnist32", "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["evaluate", "--pretrained", "nope.x"]) == 2
    assert "unknown pretrained model 'nope.x'" in capsys.readouterr().err
    r = subprocess.run([sys.executable, "-m", "gan_zoo", "fit", "--model", "nope"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown model 'nope'"), r.stderr


def test_device_auto_and_bad_devices(capsys, tmp_path):
    import torch

    from gan_zoo.cli import UserError, resolve_device

    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(UserError, match="'gpu0' is not a device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="this machine has 0 CUDA device"):
            resolve_device("cuda:1")
    from gan_zoo.sample import cli as sample_cli

    assert sample_cli(["--pretrained", "dcgan.fmnist32", "--device", "gpu0", "--out", str(tmp_path / "g.png")]) == 2
    assert "error: --device 'gpu0' is not a device" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
