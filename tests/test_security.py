"""No input runs code: crafted pickles (CIFAR-10 batches, checkpoints, exports, weights and cache files) are refused
with one clear line and never run, and a checkpoint never chooses where data is read from.

Every crafted file holds a ``Touch``: unpickling it creates a marker file, so "refused" means the marker never appears
(``test_the_payloads_are_live`` shows that a plain unpickling does create it).
"""

import os
import pathlib
import pickle
import shutil
import subprocess
import sys

import pytest
import torch

from gan_zoo.datamodules import DataError, get_datamodule
from tests.test_datamodules import trust_cifar, write_mnist
from tests.test_fit import ROOT

TINY = ["--resolution", "16", "--ngf", "8", "--ndf", "8", "--latent-dim", "8", "--batch-size", "8",
        "--logger", "none", "--metrics", "none", "--no-progress-bar"]
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


class Touch:
    """Unpickling this creates ``path``: the stand-in for any code a crafted pickle could run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def crafted_cifar(root, marker) -> dict[str, str]:
    """A ``cifar-10-batches-py`` folder under ``root`` whose batch files are crafted pickles; returns their md5s."""
    import hashlib

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    md5 = {}
    for name in CIFAR_FILES:
        blob = pickle.dumps({"data": Touch(marker), "labels": [0]})
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    return md5


def crafted_torch_file(path, marker):
    """A ``torch.save``d checkpoint-like dict whose unpickling would create ``marker``."""
    torch.save({"state_dict": {}, "gan_zoo": {"model": "dcgan", "payload": Touch(marker)}, "format": Touch(marker)},
               path)
    return path


def run_script(tmp_path, script, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GAN_ZOO_OFFLINE": "1", "WANDB_MODE": "disabled",
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "GAN_ZOO_CACHE": str(tmp_path / "cache" / "gan_zoo")}
    env.pop("GAN_ZOO_DATA", None)
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=tmp_path)


def error_line(stderr: str) -> str:
    """The one ``error:`` line of a refused command (and no traceback)."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def test_the_payloads_are_live(tmp_path):
    """A plain unpickling of each crafted file does create the marker: the refusals below are real refusals."""
    crafted_cifar(tmp_path / "cifar", tmp_path / "m1")
    with open(tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        pickle.load(f, encoding="latin1")
    assert (tmp_path / "m1").exists()
    torch.load(crafted_torch_file(tmp_path / "x.ckpt", tmp_path / "m2"), weights_only=False)
    assert (tmp_path / "m2").exists()


# --- CIFAR-10 batch files ---------------------------------------------------------------------------------------------

def test_a_crafted_cifar_folder_fails_the_md5_check(tmp_path):
    marker = tmp_path / "MARKER"
    md5 = crafted_cifar(tmp_path, marker)
    with pytest.raises(DataError) as e:
        get_datamodule("cifar10", data_dir=str(tmp_path)).split("train")
    from gan_zoo.datamodules.cifar10 import MD5

    msg = str(e.value)
    assert f"data_batch_1 has md5 {md5['data_batch_1']}, expected {MD5['data_batch_1']}" in msg
    assert "cifar-10-python.tar.gz" in msg and "\n" not in msg
    assert not marker.exists()


def test_a_crafted_cifar_folder_with_matching_md5s_is_refused_by_the_unpickler(tmp_path, monkeypatch, capsys):
    """Defence in depth: even files that pass the md5 check build nothing but numpy arrays, lists and strings."""
    from gan_zoo.fit import cli as fit_cli

    marker = tmp_path / "MARKER"
    trust_cifar(monkeypatch, crafted_cifar(tmp_path / "data", marker))
    for split in ("train", "test"):
        with pytest.raises(DataError) as e:
            get_datamodule("cifar10", data_dir=str(tmp_path / "data")).split(split)
        msg = str(e.value)
        assert CIFAR_FILES[0 if split == "train" else -1] in msg and "pathlib.Path.touch" in msg
        assert "refused" in msg and "\n" not in msg
    assert fit_cli(["--model", "dcgan", "--data", "cifar10", "--data-dir", str(tmp_path / "data"), "--max-images",
                    "16", "--out", str(tmp_path / "run"), *TINY]) == 2
    line = error_line(capsys.readouterr().err)
    assert "data_batch_1 refers to pathlib.Path.touch" in line and "refused" in line
    assert not marker.exists()


@pytest.mark.slow
def test_fit_refuses_a_crafted_cifar_folder(tmp_path):
    marker = tmp_path / "MARKER"
    crafted_cifar(tmp_path / "data", marker)
    r = run_script(tmp_path, "fit.py", "--model", "dcgan", "--data", "cifar10", "--data-dir", tmp_path / "data",
                   "--max-images", "16", "--out", tmp_path / "run", *TINY)
    assert not marker.exists()
    assert r.returncode == 2, r.stderr[-3000:]
    line = error_line(r.stderr)
    assert "data_batch_1 has md5" in line and "cifar-10-python.tar.gz" in line


# --- a checkpoint never chooses a path --------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_checkpoint_cannot_point_evaluation_at_a_planted_folder(tmp_path):
    from gan_zoo.pretrained import load_training_checkpoint
    from gan_zoo.fit import main as fit_main

    write_mnist(tmp_path / "data", n_train=32, n_test=16)
    run = tmp_path / "run"
    assert fit_main(["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--max-images", "16",
                     "--out", str(run), *TINY]) == 0
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["gan_zoo"]["data"] == {"name": "mnist", "resolution": 16, "channels": 1, "resize_mode": "resize"}
    # an older (or edited) checkpoint that names a directory: a folder of crafted CIFAR-10 batches
    planted, marker = tmp_path / "planted", tmp_path / "MARKER"
    crafted_cifar(planted, marker)
    ckpt["gan_zoo"]["data"] = {"name": "cifar10", "data_dir": str(planted), "resolution": 16, "channels": 1,
                               "resize_mode": "resize"}
    edited = tmp_path / "edited.ckpt"
    torch.save(ckpt, edited)
    assert "data_dir" not in load_training_checkpoint(str(edited))[1]
    # a domain extractor (shipped), so that evaluation reaches the data before anything else can fail
    r = run_script(tmp_path, "evaluate.py", "--ckpt", edited, "--metrics", "fid", "--extractor", "mnist-cnn",
                   "--n", "16")
    assert not marker.exists()
    assert r.returncode == 2, r.stderr[-3000:]
    assert error_line(r.stderr).startswith("error: cifar10: torchvision's 'cifar-10-batches-py' folder")
    assert "was not found in:" in r.stderr and str(tmp_path / "cache" / "gan_zoo" / "data") in r.stderr
    assert str(planted) not in r.stderr


def test_an_export_cannot_point_evaluation_at_a_planted_folder(tmp_path, capsys):
    import gan_zoo
    from gan_zoo import pretrained as zoo
    from gan_zoo.evaluate import cli as evaluate_cli

    planted, marker = tmp_path / "planted", tmp_path / "MARKER"
    crafted_cifar(planted, marker)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8)
    data = {"name": "cifar10", "data_dir": str(planted), "resolution": 16, "channels": 1}
    path = zoo.export_pretrained(model, tmp_path / "exports", "dcgan.planted", data)
    assert zoo.load_pretrained(str(path)).pretrained_meta["data"] == {"name": "cifar10", "resolution": 16,
                                                                      "channels": 1}
    assert evaluate_cli(["--pretrained", str(path), "--metrics", "fid", "--n", "16"]) == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    assert err.startswith("error: cifar10: torchvision's 'cifar-10-batches-py' folder") and str(planted) not in err


# --- checkpoints, exports and weights files ---------------------------------------------------------------------------

CLI_CASES = {
    "fit --ckpt-path": ("fit.py", "--model", "dcgan", "--data", "ring8", "--max-images", "32", "--logger", "none",
                        "--ckpt-path", "{file}"),
    "evaluate --ckpt": ("evaluate.py", "--ckpt", "{file}", "--metrics", "toy"),
    "sample --ckpt": ("sample.py", "--ckpt", "{file}", "--out", "grid.png"),
    "sample --pretrained": ("sample.py", "--pretrained", "{file}", "--out", "grid.png"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_the_command_lines_refuse_a_crafted_checkpoint(tmp_path, case):
    marker = tmp_path / "MARKER"
    file = crafted_torch_file(tmp_path / ("crafted.pt" if "pretrained" in case else "crafted.ckpt"), marker)
    script, *args = CLI_CASES[case]
    r = run_script(tmp_path, script, *[a.format(file=file) for a in args])
    assert not marker.exists() and not (tmp_path / "grid.png").exists()
    assert r.returncode == 2, r.stderr[-3000:]
    line = error_line(r.stderr)
    assert str(file) in line and ("Weights only load failed" in line or "refers to getattr" in line), line


@pytest.fixture
def zoo_elsewhere(tmp_path, monkeypatch):
    """The repository's manifests in a directory without the weight files, so that they are looked for in
    ``$GAN_ZOO_WEIGHTS`` (then the empty cache)."""
    from gan_zoo import weights

    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("zoo.json", "extractors.json"):
        shutil.copy(ROOT / "checkpoints" / name, shipped / name)
    monkeypatch.setattr(weights, "CHECKPOINTS", shipped)
    monkeypatch.setenv("GAN_ZOO_WEIGHTS", str(tmp_path / "weights"))
    monkeypatch.setenv("GAN_ZOO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


def test_load_pretrained_refuses_a_crafted_file_in_gan_zoo_weights(tmp_path, zoo_elsewhere):
    from gan_zoo.metrics.extractors import ExtractorError, extractor_manifest, load_extractor
    from gan_zoo.pretrained import PretrainedError, load_pretrained, pretrained_info

    marker = tmp_path / "MARKER"
    entry = pretrained_info("dcgan.fmnist32")
    crafted_torch_file(zoo_elsewhere / entry["file"], marker)
    with pytest.raises(PretrainedError) as e:
        load_pretrained("dcgan.fmnist32")
    msg = str(e.value)
    assert str(zoo_elsewhere / entry["file"]) in msg and "has sha256" in msg and entry["sha256"][:16] in msg
    assert "\n" not in msg
    crafted_torch_file(zoo_elsewhere / extractor_manifest()["fmnist-cnn"]["file"], marker)
    with pytest.raises(ExtractorError, match="has sha256 .* the manifest says"):
        load_extractor("fmnist-cnn")
    assert not marker.exists()


def test_load_pretrained_refuses_a_crafted_file_given_by_path(tmp_path):
    from gan_zoo.pretrained import PretrainedError, load_pretrained

    marker = tmp_path / "MARKER"
    file = crafted_torch_file(tmp_path / "crafted.pt", marker)
    with pytest.raises(PretrainedError) as e:
        load_pretrained(str(file))
    msg = str(e.value)
    assert msg == (f"cannot read export {file}: it refers to getattr, which a weights file never holds (pickled code): "
                   "refused, nothing in it was run")
    assert not marker.exists()


def test_a_crafted_inception_file_and_stats_cache_are_refused(tmp_path, monkeypatch):
    from gan_zoo.metrics import cache, extractors
    from gan_zoo.weights import sha256_file

    marker = tmp_path / "MARKER"
    file = crafted_torch_file(tmp_path / extractors.INCEPTION_FILE, marker)
    # a file whose sha256 has the expected prefix (32 bits can be searched for): refused before torch-fidelity reads it
    monkeypatch.setattr(extractors, "INCEPTION_SHA256_PREFIX", sha256_file(file)[:8])
    with pytest.raises(extractors.ExtractorError, match=r"is not a plain weights file: it refers to getattr"):
        extractors.load_extractor("inception", str(file))
    key = {"data": "mnist", "split": "test"}
    feats = torch.zeros(3, 4)
    path = tmp_path / f"mnist-test-{cache.key_hash(key)[:16]}.pt"
    crafted_torch_file(path, marker)
    out, status = cache.cached_features(key, 4, lambda: feats, directory=tmp_path)
    assert status == "rejected" and torch.equal(out, feats)
    assert not marker.exists()
