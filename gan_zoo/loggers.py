"""The loggers ``fit.py`` offers (``--logger wandb|tensorboard|csv|none``), set up so a run's logs survive a kill and
a resume, and so every logged value sits on one x-axis: images seen.

Lightning steps its loggers by ``global_step``, which under manual optimization counts optimizer steps (two or more
per batch, a different number per model). Each logger here places every value at the images seen when it was
logged instead (the CSV's ``step`` column, TensorBoard's step) and adds ``train/kimg`` to it; W&B plots everything
against ``train/kimg`` (``define_metric``)."""

from __future__ import annotations

import csv
import netrc
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_only

LOGGERS = ("wandb", "tensorboard", "csv", "none")


class StepMeans:
    """Means of per-step training values over the steps since they were last read, at little cost per step.

    ``add(values)`` takes one step's values, tensors (0-d, on any device) or numbers: the step's tensors are
    stacked into one and added to a running sum where they live (two small operations, no host synchronisation),
    numbers are summed in Python. ``means()`` returns each key's mean over the steps that gave it (one
    synchronisation) and starts a new window. A step whose tensors have other keys than the last folds the running
    sum into per-key sums first."""

    def __init__(self):
        self._keys: tuple[str, ...] = ()
        self._sum: torch.Tensor | None = None
        self._steps = 0
        self._sums: dict[str, list] = {}  # key -> [sum, steps] of numbers and of folded tensor sums

    def add(self, values: dict) -> None:
        keys = tuple(k for k, v in values.items() if isinstance(v, torch.Tensor))
        if keys:
            stacked = torch.stack([values[k].detach().reshape(()).float() for k in keys])
            if keys == self._keys and self._sum is not None:
                self._sum += stacked
                self._steps += 1
            else:
                self._fold()
                self._keys, self._sum, self._steps = keys, stacked, 1
        for k, v in values.items():
            if not isinstance(v, torch.Tensor):
                acc = self._sums.setdefault(k, [0.0, 0])
                acc[0] += float(v)
                acc[1] += 1

    def _fold(self) -> None:
        if self._sum is not None:
            for k, total in zip(self._keys, self._sum.tolist()):
                acc = self._sums.setdefault(k, [0.0, 0])
                acc[0] += total
                acc[1] += self._steps
        self._keys, self._sum, self._steps = (), None, 0

    def means(self) -> dict[str, float]:
        """Each key's mean over the window; the window starts again."""
        self._fold()
        out = {k: total / n for k, (total, n) in self._sums.items()}
        self._sums = {}
        return out


class _DurableWriter(ExperimentWriter):
    """Lightning's CSV writer, with the file rewritten atomically when a new column appears (Lightning truncates it
    and writes it again: a kill in between loses every row)."""

    def _check_log_dir_exists(self) -> None:
        # Lightning warns that earlier files "will be deleted"; keep_earlier_csv has already moved them aside.
        pass

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        path = Path(self.metrics_file_path)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


class ImagesSeenStep:
    """Logger mixin: ``log_metrics`` places the values at ``images_seen()`` (set by the fit to the model's counter)
    and adds ``train/kimg``, whatever step the caller passed."""

    images_seen: Callable[[], int] | None = None

    def _at_images_seen(self, metrics: dict, step):
        if self.images_seen is None:
            return metrics, step
        seen = int(self.images_seen())
        return {**metrics, "train/kimg": metrics.get("train/kimg", seen / 1000)}, seen

    def log_metrics(self, metrics, step=None) -> None:
        metrics, step = self._at_images_seen(dict(metrics), step)
        super().log_metrics(metrics, step)


class ImagesTensorBoardLogger(ImagesSeenStep, TensorBoardLogger):
    """TensorBoard with every scalar at images seen."""


class ImagesWandbLogger(ImagesSeenStep, WandbLogger):
    """W&B with ``train/kimg`` as the x-axis of every value."""

    @property
    def experiment(self):
        new = self._experiment is None
        experiment = super().experiment
        if new and hasattr(experiment, "define_metric") and getattr(experiment, "id", None) is not None:
            experiment.define_metric("train/kimg")
            experiment.define_metric("*", step_metric="train/kimg", step_sync=True)
        return experiment

    @rank_zero_only
    def log_metrics(self, metrics, step=None) -> None:
        metrics, _ = self._at_images_seen(dict(metrics), step)
        self.experiment.log(metrics)


class DurableCSVLogger(ImagesSeenStep, CSVLogger):
    """A CSV logger that writes each row to ``metrics.csv`` when it is logged (Lightning's buffers 100 steps, which a
    kill loses) and never leaves a truncated file. Rows are logged every ``--log-every-n-steps`` steps, so the cost
    is one small append per logged step."""

    def __init__(self, save_dir: str, name: str = "logs", version: str = ""):
        super().__init__(save_dir, name=name, version=version, flush_logs_every_n_steps=1)

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _DurableWriter(log_dir=self.log_dir)
        return self._experiment


def make_logger(name: str, out: Path, project: str = "gan_zoo"):
    """The logger called ``name`` (one of ``LOGGERS``) writing under the run directory ``out``; W&B goes offline
    (with a hint how to sync) when no credentials exist. Creates nothing on disk until something is logged (a CSV
    log resumed into the same directory: call ``keep_earlier_csv`` first)."""
    if name == "none":
        return False
    if name == "csv":  # call keep_earlier_csv(out / "logs") before the first row
        return DurableCSVLogger(str(out), name="logs", version="")
    if name == "tensorboard":
        return ImagesTensorBoardLogger(str(out), name="tensorboard", version="")
    mode = os.environ.get("WANDB_MODE")
    if mode is None and not _wandb_credentials():
        mode = "offline"
        print(f"W&B: no credentials found, logging offline under {out / 'wandb'}; upload later with "
              f"`wandb sync {out / 'wandb'}/offline-run-*`", file=sys.stderr)
    return ImagesWandbLogger(project=project, name=out.name, save_dir=str(out), mode=mode)


def keep_earlier_csv(logs: Path) -> None:
    """Lightning's CSV logger starts ``metrics.csv`` afresh, deleting what an earlier run into the same ``--out``
    wrote (a resumed run would lose the metrics of its first part). Move that file aside as ``metrics.<k>.csv``, ``k``
    counting the earlier parts in order, so ``metrics.csv`` is always the latest part and nothing is lost."""
    current = logs / "metrics.csv"
    if not current.is_file() or current.stat().st_size == 0:
        return
    k = 1
    while (logs / f"metrics.{k}.csv").exists():
        k += 1
    current.rename(logs / f"metrics.{k}.csv")
    print(f"csv logger: the earlier run's metrics kept as {logs / f'metrics.{k}.csv'}", file=sys.stderr)


def finish_logger(logger) -> None:
    """Close a W&B run so its files (summary, history) are complete, also when several fits share a process."""
    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
