"""``gan_ddp``: data parallelism for manual-optimization GANs without a DistributedDataParallel wrapper.

A GAN step backpropagates through one network at a time (D's loss with G's output detached, then G's loss with D
frozen). Lightning's DDP wraps the whole LightningModule, so every ``manual_backward`` needs
``find_unused_parameters=True`` (a graph traversal per backward) and all-reduces the gradients of every parameter,
including the zeros of the network that did not take part. ``gan_ddp`` does what wrapping each network in its own
DDP would do, without renaming any module (checkpoints stay the same): just before an optimizer steps, the gradients
of that optimizer's parameters are averaged over the ranks in one flattened all-reduce per dtype; at the start of each
training step the module's buffers (batch-norm statistics, PGGAN's stage) are broadcast from rank 0, as DDP's
``broadcast_buffers`` does; initial parameters and buffers are broadcast from rank 0 once.

Everything else (launching, process groups, ``reduce`` / ``all_gather`` / ``barrier`` / ``broadcast``, samplers,
checkpointing) is Lightning's ``DDPStrategy``. A gradient scaler (``16-mixed``) still sees the averaged gradients
before it unscales them, so an inf on any rank makes every rank skip the same step.

    python scripts/fit.py --model dcgan --devices 2 --strategy gan_ddp
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch.overrides.distributed import _sync_module_states
from lightning.pytorch.strategies import DDPStrategy, StrategyRegistry
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

NAME = "gan_ddp"


def _coalesced(tensors: list[torch.Tensor], op) -> None:
    """Apply ``op`` (an in-place collective on one flat tensor) to ``tensors`` grouped by dtype and device."""
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = _flatten_dense_tensors(group)
        op(flat)
        for t, synced in zip(group, _unflatten_dense_tensors(flat, group)):
            t.copy_(synced)


class GANDDPStrategy(DDPStrategy):
    """DDP without a module wrapper: per-optimizer gradient averaging, buffers from rank 0 every step."""

    strategy_name = NAME

    def configure_ddp(self) -> None:
        _sync_module_states(self.model)  # the same initial weights and buffers everywhere, no wrapper

    def _distributed(self) -> bool:
        return dist.is_available() and dist.is_initialized() and self.world_size > 1

    def training_step(self, *args: Any, **kwargs: Any):
        if self._distributed():
            buffers = [b for b in self.lightning_module.buffers() if b.numel()]
            if buffers:
                with torch.no_grad():
                    _coalesced(buffers, lambda flat: dist.broadcast(flat, src=0))
        return super().training_step(*args, **kwargs)

    def optimizer_step(self, optimizer, closure, model=None, **kwargs: Any):
        if self._distributed():
            inner = getattr(optimizer, "optimizer", optimizer)
            grads = [p.grad for g in inner.param_groups for p in g["params"] if p.grad is not None]
            if grads:
                world = self.world_size

                def average(flat):
                    dist.all_reduce(flat)
                    flat.div_(world)

                with torch.no_grad():
                    _coalesced(grads, average)
        return super().optimizer_step(optimizer, closure, model, **kwargs)


if NAME not in StrategyRegistry:
    StrategyRegistry.register(NAME, GANDDPStrategy, description="DDP for manual-optimization GANs (gan_zoo): "
                              "per-optimizer gradient all-reduce, no module wrapper", start_method="popen")
