"""FID / IS / KID against independent computations, toy mode metrics, the statistics cache, extractors."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from gan_zoo.metrics import cache as cache_mod
from gan_zoo import weights as weights_mod
from gan_zoo.metrics import extractors as ext_mod
from gan_zoo.metrics.extractors import Extractor, ExtractorError, load_extractor
from gan_zoo.metrics.image_metrics import MetricSuite, metric_key
from gan_zoo.metrics.toy import mode_metrics, scatter_png
from tests.conftest import needs_fmnist


class VectorExtractor(Extractor):
    """'Images' are (N, d) feature vectors already: features and logits are the input itself."""

    name, sha256, resize_note = "identity", "0" * 64, "none"

    def __init__(self, d: int):
        super().__init__()
        self.num_features = d
        self.dummy = nn.Parameter(torch.zeros(()))

    def compute(self, x):
        return x.double().flatten(1), x.double().flatten(1)


def scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_equals_scipy_sqrtm_on_the_same_features():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(300, 8, generator=g, dtype=torch.float64) * 1.3 + 0.4
    suite = MetricSuite(VectorExtractor(8), ("fid",))
    suite.set_real_features(real)
    for b in fake.split(100):
        suite.update(b)
    ours = suite.compute(len(fake))["fid"]
    ref = scipy_fid(real.numpy(), fake.numpy())
    assert ours == pytest.approx(ref, rel=1e-6)


class CornerPixels(Extractor):
    """Features of (N, 1, 28, 28) images: their four corner pixels."""

    name, sha256, resize_note = "corners", "0" * 64, "none"
    num_features = 4

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def compute(self, x):
        f = x[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]].double()
        return f, f


def test_a_new_batch_where_a_freed_one_was_gets_its_own_features():
    """The extractor remembers its last batch (FID, KID and IS share one forward pass). Batches generated one after
    another are freed and reallocated, and CPython and the allocator reuse the same id and memory for them: each
    batch must still get its own features, and FID must equal that of the features computed directly."""
    gen = torch.Generator().manual_seed(0)
    fake = torch.randn(1024, 1, 28, 28, generator=gen) + 0.5
    real = torch.randn(512, 4, generator=gen).double()
    direct = CornerPixels().compute(fake)[0]
    ext = CornerPixels()
    for i in range(0, 1024, 128):
        batch = fake[i : i + 128].clone()  # a fresh tensor per batch, freed after use, as generation does
        assert_close(ext.features(batch), direct[i : i + 128])
        del batch
    suite = MetricSuite(CornerPixels(), ("fid",))
    suite.set_real_features(real)
    for i in range(0, 1024, 128):
        suite.update(fake[i : i + 128].clone())
    assert_close(suite.compute(1024)["fid"], scipy_fid(real.numpy(), direct.numpy()), rtol=1e-6, atol=1e-6)


def test_fid_of_a_set_against_itself_is_zero_and_reset_keeps_real_stats():
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    suite = MetricSuite(VectorExtractor(6), ("fid",))
    suite.set_real_features(x)
    suite.update(x)
    assert abs(suite.compute(500)["fid"]) < 1e-6
    suite.reset_fake()  # keeps the real statistics
    suite.update(x + 1.0)
    assert suite.compute(500)["fid"] == pytest.approx(6.0, rel=1e-6)  # a shift by 1 in 6 dims


def test_inception_score_of_one_repeated_image_is_one():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0]]).repeat(100, 1)
    suite = MetricSuite(VectorExtractor(4), ("is",), is_splits=2)
    suite.update(logits)
    assert_close(torch.tensor(suite.compute(100)["is"]), torch.tensor(1.0, dtype=torch.float32))
    # K equally likely, perfectly confident classes: IS = K
    confident = torch.eye(4).repeat(25, 1) * 50
    suite = MetricSuite(VectorExtractor(4), ("is",), is_splits=1)
    suite.update(confident)
    assert suite.compute(100)["is"] == pytest.approx(4.0, rel=1e-4)


def test_kid_of_two_samples_of_one_distribution_is_near_zero_and_positive_for_different():
    # torchmetrics draws KID's subsets from the global RNG: seeded, or about 1 run in 13 lands above the 0.01 bound
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 600, 8, generator=g)
    suite = MetricSuite(VectorExtractor(8), ("kid",), kid_subset_size=300, kid_subsets=20)
    suite.set_real_features(a)
    suite.update(b)
    same = suite.compute(600)["kid"]
    suite.reset_fake()
    suite.update(b + 1.0)
    shifted = suite.compute(600)["kid"]
    assert abs(same) < 0.01 and shifted > 20 * max(abs(same), 1e-3)


def test_metric_names_state_the_protocol():
    assert metric_key("fid", 10_000, "fmnist-cnn", "test") == "metrics/fid10k_fmnist-cnn_test"
    assert metric_key("kid", 2500, "inception", "train") == "metrics/kid2500_inception_train"


# --- toy metrics -----------------------------------------------------------------------------------------------------

def test_toy_metrics_on_perfect_samples_find_every_mode():
    from gan_zoo.datamodules import get_datamodule

    for name, k in (("ring8", 8), ("grid25", 25)):
        dm = get_datamodule(name, seed=3)
        x, _ = dm.draw(2500, seed=11)
        res = mode_metrics(x, dm.modes(), dm.std)
        assert res["modes"] == k
        assert 0.97 <= res["hq"] <= 1.0  # 2D Gaussian within 3 std: 1 - exp(-4.5) = 98.9 %
        assert res["reverse_kl"] < 0.05


def test_toy_metrics_on_a_single_mode():
    from gan_zoo.datamodules.toy import ring_modes

    modes = ring_modes()
    x = modes[3] + 0.01 * torch.randn(2500, 2, generator=torch.Generator().manual_seed(0))
    res = mode_metrics(x, modes, 0.01)
    assert res["modes"] == 1 and res["reverse_kl"] == pytest.approx(math.log(8))
    n_hq = int((x - modes[3]).norm(dim=1).le(0.03).sum())
    assert res["counts"] == [0, 0, 0, n_hq, 0, 0, 0, 0] and res["hq"] == pytest.approx(n_hq / 2500)
    far = torch.full((10, 2), 50.0)
    assert mode_metrics(far, modes, 0.01) == {"modes": 0, "hq": 0.0, "reverse_kl": math.inf, "num_modes": 8,
                                              "counts": [0] * 8}


def test_scatter_png(tmp_path):
    from PIL import Image

    from gan_zoo.datamodules.toy import grid_modes

    scatter_png(torch.randn(100, 2), grid_modes(), tmp_path / "s.png")
    im = Image.open(tmp_path / "s.png")
    assert im.size == (512, 512) and (220, 0, 0) in {c for _, c in im.getcolors(1 << 20)}


# --- cache -----------------------------------------------------------------------------------------------------------

def test_cache_hit_then_rejected_when_corrupt_or_mismatched(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return torch.arange(12.0).view(4, 3)

    key = cache_mod.stats_key(data="d", split="test", n=4, extractor="e", extractor_sha256="abc")
    f1, s1 = cache_mod.cached_features(key, 3, compute, tmp_path)
    f2, s2 = cache_mod.cached_features(key, 3, compute, tmp_path)
    assert (s1, s2) == ("miss", "hit") and len(calls) == 1 and torch.equal(f1, f2)
    (path,) = tmp_path.glob("*.pt")
    path.write_bytes(path.read_bytes()[:50])  # truncated
    _, s3 = cache_mod.cached_features(key, 3, compute, tmp_path)
    assert s3 == "rejected" and len(calls) == 2
    entry = torch.load(path, weights_only=True)
    entry["features"][0, 0] = float("nan")
    torch.save(entry, path)
    assert cache_mod.cached_features(key, 3, compute, tmp_path)[1] == "rejected"
    entry = torch.load(path, weights_only=True)
    entry["key"] = {**key, "n": 5}  # a file whose key does not match its name
    torch.save(entry, path)
    assert cache_mod.cached_features(key, 3, compute, tmp_path)[1] == "rejected"
    other = cache_mod.stats_key(data="d", split="test", n=4, extractor="e", extractor_sha256="abd")
    assert cache_mod.key_hash(other) != cache_mod.key_hash(key)


# --- extractors ------------------------------------------------------------------------------------------------------

def test_shipped_domain_extractors_load_and_are_verified():
    manifest = json.loads((weights_mod.CHECKPOINTS / "extractors.json").read_text())
    for name in ("fmnist-cnn", "mnist-cnn"):
        e = load_extractor(name)
        assert e.sha256 == manifest[name]["sha256"] and manifest[name]["file"].startswith(f"{name}-{e.sha256[:8]}")
        x = torch.rand(3, 1, 32, 32) * 2 - 1
        assert e.features(x).shape == (3, 128) and e.logits(torch.rand(2, 3, 28, 28)).shape == (2, 10)
    assert manifest["fmnist-cnn"]["test_accuracy"] >= 0.92


def test_corrupt_extractor_file_is_refused(tmp_path, monkeypatch):
    src = weights_mod.CHECKPOINTS
    manifest = json.loads((src / "extractors.json").read_text())
    (tmp_path / "extractors.json").write_text(json.dumps(manifest))
    f = manifest["fmnist-cnn"]["file"]
    data = bytearray((src / f).read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / f).write_bytes(bytes(data))
    monkeypatch.setattr(weights_mod, "CHECKPOINTS", tmp_path)
    monkeypatch.setenv("GAN_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GAN_ZOO_WEIGHTS", raising=False)
    with pytest.raises(ExtractorError, match="corrupt"):
        load_extractor("fmnist-cnn")
    with pytest.raises(ExtractorError, match="not found"):
        load_extractor("mnist-cnn")


def test_inception_offline_without_the_file_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ExtractorError) as e:
        load_extractor("inception")
    assert ext_mod.INCEPTION_FILE in str(e.value) and str(tmp_path / "hub" / "checkpoints") in str(e.value)
    bad = tmp_path / "w.pth"
    bad.write_bytes(b"not inception")
    with pytest.raises(ExtractorError, match="6726825d"):
        load_extractor("inception", inception_weights=str(bad))
    from gan_zoo.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="fmnist-cnn"):
        load_extractor("vgg")


@needs_fmnist
@pytest.mark.slow
def test_real_fashion_mnist_calibration():
    """IS of the real test set is high; KID of its two halves is ~0; FID train vs test is small."""
    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.metrics.image_metrics import extract_features

    dm = get_datamodule("fashion_mnist")
    e = load_extractor("fmnist-cnn")
    test = dm.real_images("test")
    suite = MetricSuite(e, ("is",))
    for b in test.split(1000):
        suite.update(b)
    is_test = suite.compute(len(test))["is"]
    assert is_test > 8.0  # 10 balanced classes, a >92 %-accurate classifier
    feats = extract_features(e, test)
    halves = MetricSuite(e, ("kid", "fid"))
    halves.set_real_features(feats[:5000])
    for b in test[5000:].split(1000):
        halves.update(b)
    res = halves.compute(5000)
    halves.reset_fake()
    for b in (torch.rand(5000, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1).split(1000):
        halves.update(b)
    noise = halves.compute(5000)
    # the features are raw post-ReLU activations (norm ~40), so judge the floor against the noise ceiling
    assert abs(res["kid"]) < res["kid_std"] and abs(res["kid"]) < 0.01 * noise["kid"]
    assert res["fid"] < 0.01 * noise["fid"]
