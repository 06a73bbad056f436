"""What keeps a training step cheap stays correct: logged values are window means, the divergence guard checks
sums on a cadence."""

import ctypes
import math
import os
import subprocess
import sys

import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch.testing import assert_close

import gan_zoo

from gan_zoo.callbacks.divergence import DivergenceGuard
from gan_zoo.callbacks.periodic import EveryNImages
from gan_zoo.errors import DivergenceError
from gan_zoo.loggers import StepMeans
from tests.helpers import random_loader, tiny_trainer


def test_step_means_are_per_key_means_over_the_window():
    m = StepMeans()
    m.add({"a": torch.tensor(1.0), "b": torch.tensor(2.0), "n": 3})
    m.add({"a": torch.tensor(3.0), "b": torch.tensor(4.0), "n": 5})
    m.add({"a": torch.tensor(8.0)})  # other tensor keys: the running sum is folded first
    means = m.means()
    assert means == {"a": 4.0, "b": 3.0, "n": 4.0}
    assert m.means() == {}  # a new window
    m.add({"a": torch.tensor(2.0, dtype=torch.bfloat16)})
    assert m.means() == {"a": 2.0}


def test_step_means_keep_a_non_finite_step_visible():
    m = StepMeans()
    m.add({"a": torch.tensor(1.0)})
    m.add({"a": torch.tensor(float("nan"))})
    m.add({"a": torch.tensor(1.0)})
    assert math.isnan(m.means()["a"])


class _Trainer:
    current_epoch = 0


class _Module:
    images_seen = 0


def test_the_guard_checks_on_its_cadence_and_names_the_non_finite_loss():
    guard = DivergenceGuard(every_n_steps=4)
    ok = {"loss_d": torch.tensor(0.5), "loss_g": torch.tensor(0.7)}
    bad = {"loss_d": torch.tensor(0.5), "loss_g": torch.tensor(float("inf"))}
    for i in range(4):
        guard.on_train_batch_end(_Trainer(), _Module(), ok, None, i)
    guard.on_train_batch_end(_Trainer(), _Module(), bad, None, 4)  # mid-window: no host read yet
    guard.on_train_batch_end(_Trainer(), _Module(), ok, None, 5)
    guard.on_train_batch_end(_Trainer(), _Module(), ok, None, 6)
    with pytest.raises(DivergenceError, match=r"training diverged: loss_g = inf \(mean\) at batches 4-7 of epoch 0"):
        guard.on_train_batch_end(_Trainer(), _Module(), ok, None, 7)


def test_the_guard_checks_what_is_left_at_the_end_of_the_fit():
    guard = DivergenceGuard(every_n_steps=100)
    guard.on_train_batch_end(_Trainer(), _Module(), {"loss": torch.tensor(float("nan"))}, None, 0)
    with pytest.raises(DivergenceError, match=r"loss = nan \(mean\) at batches 0 to the last of epoch 0"):
        guard.on_train_end(_Trainer(), _Module())
    guard = DivergenceGuard(every_n_steps=100)
    guard.on_train_batch_end(_Trainer(), _Module(), {"loss": torch.tensor(1.0)}, None, 0)
    guard.on_train_end(_Trainer(), _Module())  # finite: nothing raised
    with pytest.raises(ValueError, match="every_n_steps"):
        DivergenceGuard(every_n_steps=0)


def test_importing_gan_zoo_keeps_the_nvml_cuda_check_only_where_nvml_loads():
    # Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1; without NVML every Adam step paid a failed load of it
    code = ("import os, lightning; assert os.environ['PYTORCH_NVML_BASED_CUDA_CHECK'] == '1'; import gan_zoo, torch; "
            "print(os.environ.get('PYTORCH_NVML_BASED_CUDA_CHECK'), torch.cuda.is_available())")
    env = {k: v for k, v in os.environ.items() if k != "PYTORCH_NVML_BASED_CUDA_CHECK"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    flag, available = out.split()
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
        nvml = True
    except OSError:
        nvml = False
    assert flag == ("1" if nvml else "None")
    assert available == str(torch.cuda.is_available())  # the answer does not change


class _Recorder(Logger):
    """A plain Lightning logger: what a third-party logger receives."""

    def __init__(self):
        super().__init__()
        self.rows = []

    name, version = "recorder", 0

    @property
    def experiment(self):
        return None

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.rows.append((step, dict(metrics)))


def test_window_means_reach_loggers_callback_metrics_and_the_bar_as_lightning_would_hand_them():
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8)
    rec = _Recorder()
    trainer = tiny_trainer(6, log_every_n_steps=3, logger=rec)
    trainer.fit(model, random_loader(1, 16))
    # Lightning's own step numbering (the batches that stepped before: 0-based) and its epoch key, at batches 3 and 6
    assert [step for step, _ in rec.rows] == [2, 5]
    assert all(m["epoch"] == 0 for _, m in rec.rows)
    assert [m["train/kimg"] for _, m in rec.rows] == [0.024, 0.048]
    last = rec.rows[-1][1]
    for key in ("loss/d", "loss/g", "d/real_score", "d/fake_score", "train/kimg"):
        assert_close(trainer.callback_metrics[key], torch.tensor(last[key]))  # for callbacks that monitor them
    assert {k: float(v) for k, v in trainer.progress_bar_metrics.items()} == {"d": pytest.approx(last["loss/d"]),
                                                                             "g": pytest.approx(last["loss/g"])}


class _Counting(EveryNImages):
    def __init__(self, every, repeat):
        super().__init__(every)
        self.repeat_at_end, self.calls = repeat, []

    def run(self, trainer, pl_module, final):
        self.calls.append((pl_module.images_seen, final))


@pytest.mark.parametrize("batches, repeat, expect", [
    (4, False, [(16, False), (32, False)]),               # the fit ends on a periodic run: not measured twice
    (4, True, [(16, False), (32, False), (32, True)]),    # a sample grid still writes its final.png
    (3, False, [(16, False), (24, True)]),                # the fit ends between two periodic runs
])
def test_a_periodic_evaluation_is_not_repeated_at_the_end_of_the_fit(batches, repeat, expect):
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", resolution=16, ngf=8, ndf=8, latent_dim=8)
    cb = _Counting(16, repeat)
    tiny_trainer(batches, callbacks=[cb]).fit(model, random_loader(1, 16, batch_size=8))
    assert cb.calls == expect
