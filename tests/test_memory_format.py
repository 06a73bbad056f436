"""``--channels-last``: the networks in channels-last memory format do the same arithmetic (up to the order of sums in
the convolutions), sample contiguous images, and their checkpoints resume in either format."""

import pytest
import torch
import yaml

from gan_zoo.fit import main
from tests.helpers import tiny_trainer
from tests.test_all_models import TINY, build, tiny_loader

K = 3  # training batches


def _train(name: str, channels_last: bool):
    model = build(name)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    torch.manual_seed(1)
    tiny_trainer(K).fit(model, tiny_loader())
    return model


def _is_channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and t.shape[1] > 1 and t.shape[2] * t.shape[3] > 1 and t.is_contiguous(
        memory_format=torch.channels_last) and not t.is_contiguous()


@pytest.mark.parametrize("name", sorted(TINY))
def test_channels_last_trains_the_same_weights(name):
    nchw, cl = _train(name, False), _train(name, True)
    a, b = nchw.state_dict(), cl.state_dict()
    assert list(a) == list(b)
    # the conversion happened, and training kept it (a 4D weight whose strides are not the contiguous ones)
    assert any(_is_channels_last(v) for v in b.values()), name
    fresh = build(name).state_dict()
    for k in a:
        assert not _is_channels_last(a[k]), k
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{name}: {k}: {m}")
    assert any(not torch.equal(a[k], fresh[k]) for k in a)  # both trained
    # samples come back in the contiguous format whatever the networks' format (callers may .view them)
    x = cl.sample(4, seed=0)
    assert x.is_contiguous()
    torch.testing.assert_close(x, nchw.sample(4, seed=0), rtol=1e-4, atol=1e-5)


def test_fit_channels_last_is_the_default_and_resumes_in_either_format(tmp_path):
    # a checkpoint written by a channels-last run (channels-last weights and Adam moments) resumes in a contiguous
    # run, and back: loading copies values into the running model's own tensors
    from tests.test_datamodules import write_mnist

    write_mnist(tmp_path / "data", n_train=64)
    common = ["--model", "dcgan", "--data", "mnist", "--data-dir", str(tmp_path / "data"), "--logger", "none",
              "--out", str(tmp_path / "run"), "--resolution", "16", "--batch-size", "16", "--ngf", "8", "--ndf", "8",
              "--metrics", "none", "--no-progress-bar"]
    assert main([*common, "--max-images", "32"]) == 0  # channels-last is the default
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["channels_last"] is True
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert any(_is_channels_last(v) for v in ckpt["state_dict"].values())
    assert main([*common, "--max-images", "48", "--ckpt-path", "last", "--no-channels-last"]) == 0
    assert main([*common, "--max-images", "64", "--ckpt-path", "last", "--channels-last"]) == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["gan_zoo"]["images_seen"] == 64
