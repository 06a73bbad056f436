"""What keeps a training step cheap stays correct: logged values are window means, the divergence guard checks
sums on a cadence."""

import math

import pytest
import torch

from gan_zoo.callbacks.divergence import DivergenceGuard
from gan_zoo.errors import DivergenceError
from gan_zoo.loggers import StepMeans


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
