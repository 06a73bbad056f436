"""Several machines: processes started the way ``torchrun`` starts them on two nodes train exactly what one node with
two devices trains; Lightning's DDP names resolve to strategies that work for GANs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gan_zoo.fit import GAN_SAFE_DDP, resolve_strategy

ROOT = Path(__file__).resolve().parents[1]
FIT = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "dcgan", "--data", "ring8", "--max-images", "256",
       "--batch-size", "32", "--logger", "none", "--no-progress-bar", "--accelerator", "cpu", "--seed", "1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_lightning_ddp_names_resolve_to_gan_safe_strategies():
    assert resolve_strategy("ddp", "cpu", 2) == "gan_ddp"
    assert resolve_strategy("ddp_find_unused_parameters_false", "cpu", 2) == "gan_ddp"
    assert resolve_strategy("ddp_spawn", "cpu", 2) == "ddp_spawn_find_unused_parameters_true"
    assert resolve_strategy("auto", "cpu", 1, num_nodes=2) == "gan_ddp"
    assert resolve_strategy("ddp_find_unused_parameters_true", "cpu", 2) == "ddp_find_unused_parameters_true"
    from lightning.pytorch.strategies import StrategyRegistry

    assert set(GAN_SAFE_DDP.values()) <= set(StrategyRegistry.available_strategies())


@pytest.mark.slow
def test_two_torchrun_style_nodes_train_the_same_weights_as_one_node_with_two_devices(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GAN_ZOO_OFFLINE": "1"}
    one = subprocess.run([*FIT, "--devices", "2", "--strategy", "ddp", "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    assert "--strategy ddp: running gan_ddp" in one.stderr  # what most Lightning users type works, and says so

    port = str(free_port())  # torchrun --nnodes 2 --nproc-per-node 1 sets these, one process per node
    procs = [subprocess.Popen([*FIT, "--devices", "1", "--num-nodes", "2", "--out", str(tmp_path / "two")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                              env={**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "2",
                                   "RANK": str(r), "GROUP_RANK": str(r), "NODE_RANK": str(r), "LOCAL_RANK": "0",
                                   "LOCAL_WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "test"})
             for r in (0, 1)]
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs[0][-2000:] + logs[1][-2000:]
    a = torch.load(tmp_path / "one" / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["gan_zoo"]["images_seen"] == b["gan_zoo"]["images_seen"] == 256
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k
