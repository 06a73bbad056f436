"""Bad options to fit are refused with one clear line, exit status 2, and no run directory left behind."""

from pathlib import Path

import numpy as np
import pytest
import torch

from gan_zoo.fit import cli
from tests.test_datamodules import write_mnist
from tests.test_fit import _bad


@pytest.mark.parametrize("extra,needle", [
    (["--max-images", "0"], "--max-images must be a positive number, got 0"),
    (["--batch-size", "-1"], "--batch-size must be a positive number, got -1"),
    (["--max-epochs", "0"], "--max-epochs must be a positive number, got 0"),
    (["--lr", "-1"], "dcgan: lr must be > 0, got -1.0"),
    (["--precision", "bogus"], "Allowed precision values"),
    (["--resolution", "2048"], "more than the"),
])
def test_bad_fit_option_is_refused_and_writes_nothing(capsys, tmp_path, extra, needle):
    write_mnist(tmp_path / "data")
    out = tmp_path / "out"
    _bad(capsys, ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                  *extra], needle)
    assert not out.exists()


def test_out_that_is_a_file_is_refused(capsys, tmp_path):
    write_mnist(tmp_path / "data")
    (tmp_path / "file").write_text("x")
    _bad(capsys, ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--out",
                  str(tmp_path / "file")], "is an existing file, not a directory")
    assert (tmp_path / "file").read_text() == "x"


def test_two_channels_and_labels_not_a_multiple_of_the_classes_are_refused(capsys, tmp_path):
    write_mnist(tmp_path / "data")
    common = ["--data", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out")]
    _bad(capsys, ["--model", "dcgan", *common, "--channels", "2"], "--channels must be 1 (grey) or 3 (RGB), got 2")
    _bad(capsys, ["--model", "semisupgan", *common, "--num-labeled", "3"],
         "num_labeled must be a multiple of the 10 classes", "got 3")
    assert not (tmp_path / "out").exists()


def test_out_in_a_directory_that_cannot_be_written_is_refused(capsys, tmp_path):
    _bad(capsys, ["--model", "dcgan", "--data", "ring8", "--logger", "none", "--out", "/sys/gan_zoo_run"],
         "error: --out /sys/gan_zoo_run: cannot write the run directory: ")
    assert not Path("/sys/gan_zoo_run").exists()


@pytest.mark.parametrize("body,needle", [
    ("max_images: [1, 2]", "max_images takes one value, got a list: [1, 2]"),
    ("lr: [0.1]", "lr takes one value, got a list: [0.1]"),
    ("logger: bogus", "argument --logger: invalid choice: 'bogus'"),
    ('progress_bar: "no"', "progress_bar must be true or false, got 'no'"),
])
def test_a_bad_yaml_value_is_refused_like_the_command_line(capsys, tmp_path, body, needle):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"model: dcgan\ndata: ring8\n{body}\n")
    _bad(capsys, ["--config", str(cfg), "--out", str(tmp_path / "out")], f"config {cfg}: {needle}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case,needle", [
    ("truncated", "image file is truncated"),
    ("text", "cannot identify image file"),
])
def test_an_undecodable_png_in_an_image_folder_is_named(capsys, tmp_path, case, needle):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    bad = folder / "bad.png"
    if case == "truncated":
        data = (folder / "000.png").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_text("not an image")
    _bad(capsys, ["--model", "dcgan", "--data", "image_folder", "--data-dir", str(folder), "--resolution", "16",
                  "--batch-size", "8", "--max-images", "16", "--logger", "none", "--out", str(tmp_path / "out")],
         f"cannot decode image {bad}: {needle}; remove or replace the file")
    assert not (tmp_path / "out").exists()


# --- checkpoints that are not what they claim: refused by every tool that reads one -----------------------------------

@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory):
    """A real ring8 DCGAN checkpoint and five broken variants of it."""
    root = tmp_path_factory.mktemp("ckpts")
    run = root / "run"
    assert cli(["--model", "dcgan", "--data", "ring8", "--max-images", "32", "--batch-size", "32", "--logger", "none",
                "--out", str(run)]) == 0
    good = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    files = {"good": run / "checkpoints" / "last.ckpt"}

    def save(name, obj):
        files[name] = root / f"{name}.ckpt"
        torch.save(obj, files[name])

    files["empty"] = root / "empty.ckpt"
    files["empty"].write_bytes(b"")
    save("wrong_type", {**good, "gan_zoo": ["dcgan"]})
    save("not_a_checkpoint", {"gan_zoo": good["gan_zoo"]})
    save("no_training_state", {k: good[k] for k in ("state_dict", "gan_zoo", "hyper_parameters")})
    save("other_shapes", {**good, "state_dict": {k: v[..., :1] if v.ndim else v for k, v in good["state_dict"].items()}})
    return files


CKPT_CASES = {
    "empty": "the file is empty (0 bytes)",
    "wrong_type": "has a malformed 'gan_zoo' entry (expected a mapping with the model's name and its images seen, "
                  "found list)",
    "not_a_checkpoint": "is not a gan_zoo training checkpoint (no 'state_dict' / 'gan_zoo' entry)",
    "other_shapes": "does not match model dcgan: ",
}


@pytest.mark.parametrize("case", sorted(CKPT_CASES))
def test_a_broken_checkpoint_is_refused_by_fit_evaluate_sample_and_load_pretrained(capsys, tmp_path, bad_checkpoints,
                                                                                  case):
    from gan_zoo.evaluate import cli as evaluate_cli
    from gan_zoo.pretrained import PretrainedError, load_pretrained
    from gan_zoo.sample import cli as sample_cli

    file, needle = str(bad_checkpoints[case]), CKPT_CASES[case]
    out = tmp_path / "out"
    _bad(capsys, ["--model", "dcgan", "--data", "ring8", "--max-images", "64", "--logger", "none", "--out", str(out),
                  "--ckpt-path", file], file, needle)
    assert not out.exists()
    for tool, argv in ((evaluate_cli, ["--ckpt", file, "--metrics", "toy", "--out", str(tmp_path / "r.json")]),
                       (sample_cli, ["--ckpt", file, "--out", str(tmp_path / "grid.png")])):
        assert tool(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and file in err and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "grid.png").exists()
    with pytest.raises(PretrainedError) as e:
        load_pretrained(file)
    assert needle in str(e.value) and file in str(e.value)


def test_a_checkpoint_without_training_state_samples_but_does_not_resume(capsys, tmp_path, bad_checkpoints):
    from gan_zoo.pretrained import load_pretrained

    file = str(bad_checkpoints["no_training_state"])
    _bad(capsys, ["--model", "dcgan", "--data", "ring8", "--max-images", "64", "--logger", "none",
                  "--out", str(tmp_path / "out"), "--ckpt-path", file],
         f"{file} lacks Lightning's training state (optimizer_states, ",
         "it can be sampled or evaluated but not resumed")
    assert not (tmp_path / "out").exists()
    a = load_pretrained(file).sample(8, seed=1)
    b = load_pretrained(str(bad_checkpoints["good"])).sample(8, seed=1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_resuming_with_other_shapes_names_the_differing_hparams(capsys, tmp_path, bad_checkpoints):
    file = str(bad_checkpoints["good"])
    _bad(capsys, ["--model", "dcgan", "--data", "ring8", "--max-images", "64", "--logger", "none",
                  "--out", str(tmp_path / "out"), "--latent-dim", "64", "--ckpt-path", file],
         f"{file} does not match model dcgan; the checkpoint was trained with latent_dim=100 (now 64): ", "size mismatch")
    assert not (tmp_path / "out").exists()


def test_load_pretrained_names_a_missing_path(tmp_path):
    from gan_zoo.pretrained import PretrainedError, load_pretrained

    for suffix in (".ckpt", ".pt"):
        with pytest.raises(PretrainedError, match=r"no such file, and not a zoo entry \(available: .*dcgan\.fmnist32"):
            load_pretrained(str(tmp_path / f"nope{suffix}"))
