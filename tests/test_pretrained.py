"""The zoo machinery: export, load by name, verification, resolution order, sample.py, export_pretrained.py."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from torch.testing import assert_close
from torchvision.utils import save_image

import gan_zoo
from gan_zoo import pretrained as zoo
from gan_zoo import weights
from gan_zoo.checkpoint_io import REMOVED_HPARAMS
from gan_zoo.errors import CheckpointError
from gan_zoo.pretrained import PretrainedError
from gan_zoo.registry import UnknownNameError
from gan_zoo.sample import main as sample_main
from gan_zoo.sample import slerp
from tests.conftest import needs_fmnist
from tests.test_all_models import TINY

REAL_CHECKPOINTS = weights.CHECKPOINTS


def tiny(name, resolution=16):
    torch.manual_seed(0)
    return gan_zoo.get_model(name, channels=1, resolution=resolution, **TINY[name]).eval()


@pytest.fixture
def zoo_dir(tmp_path, monkeypatch):
    """An empty zoo in tmp_path (the shipped extractors stay reachable through $GAN_ZOO_WEIGHTS)."""
    d = tmp_path / "checkpoints"
    d.mkdir()
    shutil.copy(REAL_CHECKPOINTS / "extractors.json", d / "extractors.json")
    monkeypatch.setattr(weights, "CHECKPOINTS", d)
    monkeypatch.setenv("GAN_ZOO_WEIGHTS", str(REAL_CHECKPOINTS))
    monkeypatch.setenv("GAN_ZOO_CACHE", str(tmp_path / "cache"))
    return d


def add_entry(d, name, model, **extra):
    path = zoo.export_pretrained(model, d, name, {"name": "fashion_mnist", "resolution": 16, "channels": 1})
    entries = zoo.manifest()
    entries[name] = {"model": model.model_name, "file": path.name, "sha256": weights.sha256_file(path),
                     "size": path.stat().st_size, **extra}
    zoo.write_manifest(entries)
    return path


@pytest.mark.parametrize("name", sorted(TINY))
def test_export_round_trip_gives_the_same_samples(name, tmp_path):
    model = tiny(name)
    model.restore_progress(10**6)  # PGGAN: the final resolution
    with torch.no_grad():  # make the EMA generator differ from the raw one, so the right module must be exported
        for p in model.generator.parameters():
            p.add_(0.5)
    path = zoo.export_pretrained(model, tmp_path, f"{name}.t", {"name": "x"})
    assert path.name == f"{name}.t-{weights.sha256_file(path)[:8]}.pt"
    payload = torch.load(path, weights_only=True)
    assert {k.split(".")[0] for k in payload["state_dict"]} == set(model.export_modules())
    assert "discriminator" not in model.export_modules()
    loaded = zoo.load_pretrained(str(path))
    assert not loaded.training and loaded.images_seen == 10**6
    a, b = model.sample(6, seed=3), loaded.sample(6, seed=3)
    assert a.shape == (6, 1, 16, 16)
    assert torch.equal(a, b)
    assert zoo.num_exported_params(loaded) == zoo.num_exported_params(model)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    if name == "semisupgan":
        assert torch.equal(model.classify(x), loaded.classify(x))
    if name in ("bigan", "bigbigan"):
        assert torch.equal(model.encode(x), loaded.encode(x))


def test_shipped_entries_recording_a_removed_option_still_load():
    # an option removed from a model (REMOVED_HPARAMS) may still be recorded by a shipped file, at its kept value
    for name, entry in zoo.manifest().items():
        recorded = zoo.read_export(REAL_CHECKPOINTS / entry["file"])["hparams"]
        removed = REMOVED_HPARAMS.get(entry["model"], {})
        for option in set(removed) & set(recorded):
            assert recorded[option] == removed[option], (name, option)
        assert gan_zoo.load_pretrained(name).model_name == entry["model"]


@pytest.mark.parametrize("model_name,option", [(m, o) for m, opts in REMOVED_HPARAMS.items() for o in opts])
def test_a_removed_option_loads_at_its_kept_value_and_is_refused_at_another(model_name, option, tmp_path):
    model = tiny(model_name)
    kept = REMOVED_HPARAMS[model_name][option]
    other = not kept if isinstance(kept, bool) else None
    # an export (load_pretrained of a .pt)
    for value in (kept, other):
        payload = zoo.export_payload(model)
        payload["hparams"][option] = value
        torch.save(payload, tmp_path / f"{value}.pt")
    loaded = zoo.load_pretrained(str(tmp_path / f"{kept}.pt"))
    assert option not in loaded.hparams
    assert torch.equal(loaded.sample(3, seed=0), model.sample(3, seed=0))
    with pytest.raises(PretrainedError, match=rf"cannot build {model_name} .*{option}={other!r}"):
        zoo.load_pretrained(str(tmp_path / f"{other}.pt"))
    # a training checkpoint (load_pretrained, sample.py and evaluate.py of a .ckpt; a resumed fit)
    for value in (kept, other):
        ckpt = {"state_dict": model.state_dict(), "gan_zoo": {"model": model_name, "images_seen": 0},
                "hyper_parameters": {**dict(model.hparams), option: value}}
        torch.save(ckpt, tmp_path / f"{value}.ckpt")
    loaded, _, _ = zoo.load_training_checkpoint(str(tmp_path / f"{kept}.ckpt"))
    assert option not in loaded.hparams
    with pytest.raises(CheckpointError, match=rf"{option}={other!r}, an option {model_name} no longer has"):
        zoo.load_training_checkpoint(str(tmp_path / f"{other}.ckpt"))


def test_load_by_name_and_list(zoo_dir):
    add_entry(zoo_dir, "dcgan.tiny", tiny("dcgan"))
    assert zoo.list_pretrained("gan") == ["dcgan.tiny"]
    assert zoo.list_pretrained() == ["dcgan.tiny", "fmnist-cnn", "mnist-cnn"]
    assert gan_zoo.list_pretrained("extractor") == ["fmnist-cnn", "mnist-cnn"]
    m = gan_zoo.load_pretrained("dcgan.tiny")
    assert m.pretrained_meta["name"] == "dcgan.tiny" and m.pretrained_meta["data"]["name"] == "fashion_mnist"
    assert torch.equal(m.sample(3, seed=0), tiny("dcgan").sample(3, seed=0))
    ext = gan_zoo.load_pretrained("fmnist-cnn")
    assert ext.features(torch.zeros(2, 1, 28, 28)).shape == (2, 128)
    with pytest.raises(UnknownNameError) as e:
        gan_zoo.load_pretrained("dcgan.nope")
    assert "dcgan.tiny" in str(e.value) and "fmnist-cnn" in str(e.value)


def test_manifests_absent_list_nothing_and_corrupt_ones_are_refused_by_path(zoo_dir):
    add_entry(zoo_dir, "dcgan.tiny", tiny("dcgan"))
    (zoo_dir / "extractors.json").unlink()
    assert zoo.list_pretrained() == ["dcgan.tiny"]  # an install without metric extractors
    (zoo_dir / "extractors.json").write_text('{"fmnist-cnn": ')
    assert gan_zoo.load_pretrained("dcgan.tiny").model_name == "dcgan"  # a GAN entry does not need it
    for call in (zoo.list_pretrained, lambda: gan_zoo.load_pretrained("fmnist-cnn")):
        with pytest.raises(PretrainedError, match=r"extractor manifest .*extractors\.json is not valid JSON"):
            call()
    shutil.copy(REAL_CHECKPOINTS / "extractors.json", zoo_dir / "extractors.json")
    (zoo_dir / zoo.MANIFEST).write_text("[")
    with pytest.raises(PretrainedError, match=r"zoo manifest .*zoo\.json is not valid JSON"):
        zoo.list_pretrained()


def test_corrupt_truncated_and_mismatched_files_are_refused(zoo_dir):
    path = add_entry(zoo_dir, "dcgan.tiny", tiny("dcgan"))
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(PretrainedError, match="sha256 .*corrupt, truncated"):
        gan_zoo.load_pretrained("dcgan.tiny")
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(PretrainedError, match="corrupt, truncated"):
        gan_zoo.load_pretrained("dcgan.tiny")
    # a file that matches its manifest hash but is not an export
    path.write_bytes(b"not a torch file")
    entries = zoo.manifest()
    entries["dcgan.tiny"]["sha256"] = weights.sha256_file(path)
    zoo.write_manifest(entries)
    with pytest.raises(PretrainedError, match="cannot read"):
        gan_zoo.load_pretrained("dcgan.tiny")
    # an export whose tensors do not fit the recorded architecture
    payload = zoo.export_payload(tiny("dcgan"))
    payload["hparams"]["ngf"] = 16
    torch.save(payload, path)
    entries["dcgan.tiny"]["sha256"] = weights.sha256_file(path)
    zoo.write_manifest(entries)
    with pytest.raises(PretrainedError, match=r"do not match dcgan\.generator_ema: .*size mismatch"):
        gan_zoo.load_pretrained("dcgan.tiny")
    # a file of another model under this name
    payload = zoo.export_payload(tiny("lsgan"))
    torch.save(payload, path)
    entries["dcgan.tiny"]["sha256"] = weights.sha256_file(path)
    zoo.write_manifest(entries)
    with pytest.raises(PretrainedError, match="holds a lsgan model, the manifest says dcgan"):
        gan_zoo.load_pretrained("dcgan.tiny")
    # extra tensors are refused too
    payload = zoo.export_payload(tiny("dcgan"))
    payload["state_dict"]["discriminator.w"] = torch.zeros(1)
    torch.save(payload, path)
    with pytest.raises(PretrainedError, match="unexpected tensors .*discriminator.w"):
        zoo.build_from_export(torch.load(path, weights_only=True))


def test_missing_file_says_where_it_looked_and_weights_dir_and_url_cache_resolve_it(zoo_dir, tmp_path, monkeypatch):
    path = add_entry(zoo_dir, "dcgan.tiny", tiny("dcgan"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.move(path, elsewhere / path.name)
    with pytest.raises(PretrainedError) as e:
        gan_zoo.load_pretrained("dcgan.tiny")
    assert path.name in str(e.value) and str(zoo_dir) in str(e.value) and "GAN_ZOO_WEIGHTS" in str(e.value)
    monkeypatch.setenv("GAN_ZOO_WEIGHTS", str(elsewhere))  # second in the search order
    assert gan_zoo.load_pretrained("dcgan.tiny").pretrained_meta["source"] == str(elsewhere / path.name)
    # third: a URL, downloaded once into the cache (file:// keeps the test offline)
    monkeypatch.delenv("GAN_ZOO_WEIGHTS")
    entries = zoo.manifest()
    entries["dcgan.tiny"]["url"] = (elsewhere / path.name).as_uri()
    zoo.write_manifest(entries)
    cached = tmp_path / "cache" / path.name
    assert gan_zoo.load_pretrained("dcgan.tiny").pretrained_meta["source"] == str(cached)
    (elsewhere / path.name).unlink()  # the cache alone serves it now
    assert torch.equal(gan_zoo.load_pretrained("dcgan.tiny").sample(2, seed=0), tiny("dcgan").sample(2, seed=0))
    # a download with the wrong content is refused and not kept
    cached.unlink()
    (elsewhere / path.name).write_bytes(b"tampered")
    with pytest.raises(PretrainedError, match="download .*refused"):
        gan_zoo.load_pretrained("dcgan.tiny")
    assert list((tmp_path / "cache").iterdir()) == []


def test_slerp_ends_at_its_endpoints_and_keeps_the_norm():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 16, generator=g), torch.randn(3, 16, generator=g)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    z = slerp(a, b, torch.linspace(0, 1, 5))
    assert z.shape == (3, 5, 16)
    assert_close(z[:, 0], a, atol=1e-5, rtol=1e-5)
    assert_close(z[:, -1], b, atol=1e-5, rtol=1e-5)
    assert_close(z.norm(dim=2), a.norm(dim=1, keepdim=True).expand(3, 5), atol=1e-4, rtol=1e-4)
    same = slerp(a, a.clone(), torch.tensor([0.0, 0.5, 1.0]))  # parallel: linear fallback, no NaN
    assert_close(same, a[:, None].expand(3, 3, 16))


def test_sample_script_needs_no_data_set(zoo_dir, tmp_path, monkeypatch, capsys):
    add_entry(zoo_dir, "dcgan.tiny", tiny("dcgan"))
    monkeypatch.setenv("GAN_ZOO_DATA", str(tmp_path / "no-data-here"))
    out = tmp_path / "grid.png"
    assert sample_main(["--pretrained", "dcgan.tiny", "--n", "16", "--seed", "0", "--out", str(out),
                        "--save-tensor", str(tmp_path / "x.pt")]) == 0
    assert Image.open(out).size == (4 * 18 + 2, 4 * 18 + 2)  # 4x4 grid of 16x16 images, 2 px padding
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True), tiny("dcgan").sample(16, seed=0))
    walk = tmp_path / "walk.png"
    assert sample_main(["--pretrained", "dcgan.tiny", "--interpolate", "--n", "12", "--steps", "6",
                        "--out", str(walk)]) == 0
    assert Image.open(walk).size == (6 * 18 + 2, 2 * 18 + 2)
    from gan_zoo.cli import run_main

    assert run_main(sample_main, ["--pretrained", "nope", "--out", str(walk)]) == 2
    assert run_main(sample_main, ["--pretrained", "fmnist-cnn", "--out", str(walk)]) == 2
    assert run_main(sample_main, ["--pretrained", "dcgan.tiny", "--member", "0", "--out", str(walk)]) == 2
    err = capsys.readouterr().err
    assert "available: dcgan.tiny" in err and "feature extractor" in err
    assert ("--member needs a model with several generators (ensemble_sgan: local generators, egan: parents), "
            "not 'dcgan'") in err


@needs_fmnist
@pytest.mark.slow
def test_export_script_measures_and_records_an_entry(zoo_dir, tmp_path):
    from gan_zoo.export import main as export_main
    from gan_zoo.fit import main as fit_main

    run = tmp_path / "run"
    assert fit_main(["--model", "semisupgan", "--max-images", "64", "--out", str(run), "--logger", "none",
                     "--metrics", "none", "--resolution", "16", "--ngf", "8", "--ndf", "8", "--latent-dim", "8",
                     "--batch-size", "16", "--no-progress-bar"]) == 0
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: semisupgan\n")
    assert export_main([str(run), "--name", "semisupgan.t16", "--recipe", str(recipe), "--n", "200",
                        "--ci-n", "100", "--grid-dir", str(tmp_path)]) == 0
    entry = zoo.manifest()["semisupgan.t16"]
    for field in zoo.REQUIRED_FIELDS:
        assert field in entry, field
    assert entry["images_seen"] == 64 and entry["resolution"] == 16 and entry["data"]["name"] == "fashion_mnist"
    assert entry["data"]["num_labeled"] == 100  # the model's default label count, recorded by the fit's checkpoint
    from gan_zoo.export import readme_table

    acc = entry["metrics"]["values"]["metrics/test_acc"]
    assert f"test accuracy {acc:.1f} % (100 labels)" in readme_table({"semisupgan.t16": entry})
    assert entry["modules"] == ["discriminator_ema", "generator_ema"]
    v = entry["metrics"]["values"]
    assert v["metrics/fid200_fmnist-cnn_test"] > 0 and 0 <= v["metrics/test_acc"] <= 100
    assert entry["ci_check"]["metric"] == "metrics/fid100_fmnist-cnn_test" and entry["ci_check"]["n"] == 100
    assert (tmp_path / "semisupgan.t16.png").is_file()
    m = gan_zoo.load_pretrained("semisupgan.t16")
    assert zoo.num_exported_params(m) == entry["num_params"]
    first = entry["file"]
    # re-exporting replaces the previous file of the entry, never leaves two
    assert export_main([str(run), "--name", "semisupgan.t16", "--recipe", str(recipe), "--n", "200",
                        "--ci-n", "100", "--grid-dir", str(tmp_path)]) == 0
    assert sorted(p.name for p in zoo_dir.glob("semisupgan.t16-*.pt")) == [first]  # same weights, same name
    from gan_zoo.cli import run_main

    assert run_main(export_main, [str(run), "--name", "dcgan.t16", "--recipe", str(recipe)]) == 2
    # --remeasure measures the shipped file again and records the values: the same protocol gives the same numbers
    edited = zoo.manifest()
    edited["semisupgan.t16"]["metrics"]["values"]["metrics/fid200_fmnist-cnn_test"] = -1.0
    edited["semisupgan.t16"]["ci_check"]["value"] = -1.0
    zoo.write_manifest(edited)
    assert export_main(["--remeasure", "all", "--n", "200", "--ci-n", "100"]) == 0
    again = zoo.manifest()["semisupgan.t16"]
    for key in ("metrics/fid200_fmnist-cnn_test", "metrics/test_acc"):  # KID draws random subsets: not compared
        assert again["metrics"]["values"][key] == entry["metrics"]["values"][key], key
    assert again["ci_check"] == entry["ci_check"] and again["metrics"]["protocol"] == entry["metrics"]["protocol"]
    assert again["file"] == first and again["sha256"] == entry["sha256"]
    assert run_main(export_main, ["--remeasure", "nope.t16"]) == 2


def _device_export(src, name, model):
    """An export as ``export_pretrained.py --out src`` writes it on another machine: file, grid, full entry."""
    src.mkdir(exist_ok=True)
    path = zoo.export_pretrained(model, src, name, {"name": "fashion_mnist", "resolution": 16, "channels": 1})
    grid = src / f"{name}.png"
    save_image(torch.zeros(3, 8, 8), grid)
    entry = {f: None for f in zoo.REQUIRED_FIELDS}
    entry.update(model=model.model_name, file=path.name, sha256=weights.sha256_file(path), size=path.stat().st_size,
                 images_seen=600_000, sample_grid=f"/elsewhere/results/zoo/{grid.name}")
    zoo.write_manifest({name: entry}, src / zoo.MANIFEST)
    return path


def test_import_takes_an_export_made_elsewhere_into_the_zoo(zoo_dir, tmp_path, capsys):
    from gan_zoo.cli import run_main
    from gan_zoo.export import main as export_main

    src, grids = tmp_path / "device", tmp_path / "grids"
    first = _device_export(src, "dcgan.t16", tiny("dcgan"))
    assert export_main(["--import", str(src), "--grid-dir", str(grids)]) == 0
    entry = zoo.manifest()["dcgan.t16"]
    assert (zoo_dir / first.name).read_bytes() == first.read_bytes() and entry["images_seen"] == 600_000
    assert (grids / "dcgan.t16.png").is_file() and entry["sample_grid"] == str((grids / "dcgan.t16.png").resolve())
    torch.testing.assert_close(gan_zoo.load_pretrained("dcgan.t16").sample(4, seed=0), tiny("dcgan").sample(4, seed=0))

    # new weights for the entry replace its old file
    torch.manual_seed(1)
    other = gan_zoo.get_model("dcgan", channels=1, resolution=16, **TINY["dcgan"])
    shutil.rmtree(src)
    second = _device_export(src, "dcgan.t16", other)
    assert second.name != first.name
    assert export_main(["--import", str(src), "--grid-dir", str(grids)]) == 0
    assert sorted(p.name for p in zoo_dir.glob("dcgan.t16-*.pt")) == [second.name]

    # a file altered in transfer is refused before anything is copied
    before = zoo.manifest()
    shutil.rmtree(src)
    third = _device_export(src, "lsgan.t16", tiny("lsgan"))
    data = bytearray(third.read_bytes())
    data[-10] ^= 0xFF
    third.write_bytes(bytes(data))
    assert run_main(export_main, ["--import", str(src), "--grid-dir", str(grids)]) == 2
    assert "does not match its recorded size and sha256" in capsys.readouterr().err
    assert zoo.manifest() == before and not list(zoo_dir.glob("lsgan.t16-*.pt"))
    # a file that matches its entry but is no export is refused too
    torch.save({"weights": torch.zeros(2)}, third)
    entry = json.loads((src / zoo.MANIFEST).read_text())
    entry["lsgan.t16"].update(sha256=weights.sha256_file(third), size=third.stat().st_size)
    zoo.write_manifest(entry, src / zoo.MANIFEST)
    assert run_main(export_main, ["--import", str(src), "--grid-dir", str(grids)]) == 2
    assert "does not load" in capsys.readouterr().err and zoo.manifest() == before
    # and a directory without a manifest names what it expected
    assert run_main(export_main, ["--import", str(tmp_path / "empty")]) == 2
    assert "no zoo.json there" in capsys.readouterr().err
