"""Small, fast pieces shared by the tests."""

from __future__ import annotations

import lightning as L
import torch

from gan_zoo.datamodules.base import ResumableLoader


def random_loader(channels: int = 1, resolution: int = 16, n: int = 64, batch_size: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, resolution, resolution, generator=g) * 2 - 1
    y = torch.randint(0, 10, (n,), generator=g)
    return ResumableLoader(n=n, batch_size=batch_size, seed=seed, fetch=lambda idx: {"x": x[idx], "y": y[idx]})


def tiny_trainer(max_steps_batches: int = 2, **kwargs) -> L.Trainer:
    kwargs.setdefault("callbacks", [])
    kwargs.setdefault("logger", False)
    return L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=max_steps_batches,
                     enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, num_sanity_val_steps=0, **kwargs)


class StepRecorder(L.Callback):
    """Wraps every optimizer's ``step`` to record which parameters (by name) each step changed, and its rate."""

    def __init__(self):
        self.steps: list[tuple[int, set[str]]] = []  # (optimizer index, names of changed parameters)
        self.lrs: list[float] = []  # the first parameter group's learning rate at each step

    def on_train_start(self, trainer, pl_module):
        named = dict(pl_module.named_parameters())
        for i, opt in enumerate(trainer.optimizers):
            inner = opt.optimizer if hasattr(opt, "optimizer") else opt
            original = inner.step

            def step(*args, _i=i, _orig=original, _opt=inner, **kw):
                before = {n: p.detach().clone() for n, p in named.items()}
                out = _orig(*args, **kw)
                changed = {n for n, p in named.items() if not torch.equal(before[n], p.detach())}
                self.steps.append((_i, changed))
                self.lrs.append(_opt.param_groups[0]["lr"])
                return out

            inner.step = step


def param_names(module: torch.nn.Module, prefix: str) -> set[str]:
    return {f"{prefix}.{n}" for n, p in module.named_parameters() if p.requires_grad}
