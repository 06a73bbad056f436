"""Every registered model, the same checks: bf16-mixed on the CPU, and 2-process CPU DDP (gloo) with identical
parameters on both ranks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

import gan_zoo
from gan_zoo.datamodules.base import ResumableLoader
from tests.helpers import tiny_trainer

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(ngf=8, ndf=8, latent_dim=8)
TINY = {  # the smallest configuration of each model at 16x16 greyscale
    "dcgan": SMALL,
    "lsgan": SMALL,
    "selfgan": SMALL,
    "egan": SMALL,
    "ensemble_sgan": {**SMALL, "n_pairs": 2},
    "bigan": dict(ngf=8, nef=8, ndf=8, d_hidden=16, latent_dim=6),
    "bigbigan": dict(ngf=8, nef=8, ndf=8, d_hidden=16, latent_dim=6),
    "pggan": dict(latent_dim=8, fmap_base=64, fmap_max=8, phase_images=16),
    "semisupgan": dict(ngf=8, ndf=8, latent_dim=8, num_classes=10),
}


def test_every_registered_model_has_a_tiny_configuration():
    assert sorted(TINY) == sorted(gan_zoo.list_models())


def tiny_loader(n=64, batch_size=8, seed=0, rank=0, world_size=1):
    """16x16 images with the keys every model reads (the semi-supervised GAN's labeled batch included); rank
    ``rank`` of ``world_size`` gets its own share."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 16, 16, generator=g) * 2 - 1
    y = torch.randint(0, 10, (n,), generator=g)
    return ResumableLoader(n=n, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size,
                           fetch=lambda idx: {"x": x[idx], "y": y[idx], "x_lab": x[idx], "y_lab": y[idx]})


def build(name):
    torch.manual_seed(0)
    return gan_zoo.get_model(name, channels=1, resolution=16, **TINY[name])


class Finite(L.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values += [v for v in (outputs or {}).values() if torch.is_tensor(v)]


@pytest.mark.parametrize("name", sorted(TINY))
def test_bf16_mixed_trains_every_model_on_the_cpu(name):
    model = build(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rec = Finite()
    tiny_trainer(4, precision="bf16-mixed", callbacks=[rec]).fit(model, tiny_loader())
    assert rec.values and all(torch.isfinite(v).all() for v in rec.values)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.images_seen == 32
    x = model.sample(4, seed=0)
    side = 8 if name == "pggan" else 16  # PGGAN samples at its current stage: 8x8 after 32 images of 16-image phases
    assert x.shape == (4, 1, side, side) and torch.isfinite(x).all()


DDP_SCRIPT = '''
import json, os, sys
sys.path.insert(0, {root!r})
import lightning as L, torch
from tests.test_all_models import build, tiny_loader

out, runs = sys.argv[1], json.loads(sys.argv[2])
rank = int(os.environ["LOCAL_RANK"])  # started torchrun-style: Lightning launches nothing, the group is reused

class Dump(L.Callback):
    def __init__(self, path):
        self.path = path

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0:
            self.first = float(batch["x"].sum())

    def on_train_end(self, trainer, pl_module):
        # parameters only: batch-norm running statistics are per rank by design (DDP broadcasts them from rank 0
        # at the start of every step, then each rank updates them on its own batch)
        state = {{k: v.detach().cpu().clone() for k, v in pl_module.named_parameters()}}
        extra = {{"seen": pl_module.images_seen, "choice": getattr(pl_module, "last_choice", None)}}
        torch.save({{"state": state, "extra": json.dumps(extra), "first": self.first}}, self.path)

for name, strategy, fmt in runs:
    model = build(name)  # seeded: the same initial weights on both ranks
    if fmt == "channels_last":
        model.to(memory_format=torch.channels_last)
    L.seed_everything(100 + rank, verbose=False)  # then different latents on each rank, as in a real run
    dump = Dump(f"{{out}}/{{name}}-{{strategy}}-{{fmt}}-rank{{rank}}.pt")
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=1,
                        limit_train_batches=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[dump])
    trainer.fit(model, tiny_loader(n=128, rank=rank, world_size=2))
'''
DDP_STRATEGIES = ["gan_ddp", "ddp_find_unused_parameters_true"]
DDP_RUNS = [(name, strategy, "contiguous") for name in sorted(TINY) for strategy in DDP_STRATEGIES] + [
    ("dcgan", strategy, "channels_last") for strategy in DDP_STRATEGIES]


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """Every run of ``DDP_RUNS`` (model, strategy, memory format) in one pair of CPU processes (gloo), started as
    ``torchrun`` starts them; ``load(name, strategy, fmt, rank)`` reads what a rank dumped at the end of its fit."""
    from tests.test_multinode import free_port

    out = tmp_path_factory.mktemp("ddp")
    script = out / "ddp.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(free_port()), "WORLD_SIZE": "2", "NODE_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    procs = [subprocess.Popen([sys.executable, str(script), str(out), json.dumps(DDP_RUNS)], cwd=str(ROOT),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in (0, 1)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs[0][-3000:] + errs[1][-3000:]

    def load(name, strategy, fmt="contiguous", rank=0):
        return torch.load(out / f"{name}-{strategy}-{fmt}-rank{rank}.pt", weights_only=True)

    return load


@pytest.mark.slow
@pytest.mark.parametrize("strategy", DDP_STRATEGIES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_ddp_two_processes_keep_every_model_identical_on_both_ranks(name, strategy, ddp_runs):
    a, b = ddp_runs(name, strategy, rank=0), ddp_runs(name, strategy, rank=1)
    assert a["first"] != b["first"]  # the ranks trained on different images
    ea, eb = json.loads(a["extra"]), json.loads(b["extra"])
    assert ea == eb and ea["seen"] == 4 * 8 * 2  # the same images-seen count (both ranks' batches), same EGAN choice
    fresh = dict(build(name).named_parameters())
    moved = 0
    for k, v in a["state"].items():
        assert torch.isfinite(v.float()).all(), k
        assert torch.equal(v, b["state"][k]), f"{name}: {k} differs between ranks"
        moved += not torch.equal(v, fresh[k])
    assert moved > 0  # it trained


class SaveAndStop(L.Callback):
    """Checkpoint after batch ``n`` (mid-epoch, as ImagesCheckpoint does) and stop."""

    def __init__(self, n, path):
        self.n, self.path = n, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx + 1 == self.n:
            trainer.save_checkpoint(self.path)
            trainer.should_stop = True


@pytest.mark.parametrize("name", sorted(TINY))
def test_resume_mid_epoch_continues_every_model_exactly(name, tmp_path):
    """6 batches straight == 3 batches, checkpoint, a fresh process state, 3 more batches: bitwise."""
    from gan_zoo.checkpoint_io import AtomicCheckpointIO

    def trainer(**kw):
        return tiny_trainer(6, plugins=[AtomicCheckpointIO()], **kw)

    torch.manual_seed(11)
    full = build(name)
    torch.manual_seed(11)
    trainer().fit(full, tiny_loader(n=96))

    part = build(name)
    torch.manual_seed(11)
    trainer(callbacks=[SaveAndStop(3, tmp_path / "mid.ckpt")]).fit(part, tiny_loader(n=96))
    assert part.images_seen == 24

    torch.manual_seed(999)  # whatever the process RNG is now, the checkpoint restores it
    resumed = build(name)
    trainer().fit(resumed, tiny_loader(n=96), ckpt_path=str(tmp_path / "mid.ckpt"))
    assert resumed.images_seen == full.images_seen == 48
    a, b = full.state_dict(), resumed.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{name}: {k}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcgan", "egan"])
def test_gan_ddp_trains_the_same_weights_as_lightning_ddp(name, ddp_runs):
    """gan_ddp (per-optimizer all-reduce, no wrapper) and Lightning's DDP average the same gradients: same weights."""
    a, b = (ddp_runs(name, strategy)["state"] for strategy in DDP_STRATEGIES)
    fresh = dict(build(name).named_parameters())
    assert sum(not torch.equal(v, fresh[k]) for k, v in a.items()) > len(a) // 2  # most parameters trained
    for k in a:  # equal up to the summation order of the two all-reduces
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=f"{name}: {k}")


@pytest.mark.slow
@pytest.mark.parametrize("strategy", DDP_STRATEGIES)
def test_ddp_with_channels_last_weights_trains_the_same_weights(strategy, ddp_runs):
    """fit.py's default format under both DDP strategies: gradients of channels-last weights are averaged element
    for element (gan_ddp flattens them in logical order; Lightning's DDP buckets them), so the same run in the
    contiguous format ends with the same weights up to the convolutions' summation order."""
    a0 = ddp_runs("dcgan", strategy)["state"]
    b0, b1 = (ddp_runs("dcgan", strategy, "channels_last", rank)["state"] for rank in (0, 1))
    assert any(v.dim() == 4 and not v.is_contiguous() for v in b0.values())  # the run really was channels-last
    fresh = dict(build("dcgan").named_parameters())
    assert sum(not torch.equal(v, fresh[k]) for k, v in b0.items()) > len(b0) // 2
    for k in a0:
        assert torch.equal(b0[k], b1[k]), k  # the ranks agree
        torch.testing.assert_close(b0[k], a0[k], rtol=1e-4, atol=1e-5, msg=f"{strategy}: {k}")
