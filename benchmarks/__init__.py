"""Measurements of the zoo, kept out of the wheel (which ships ``gan_zoo`` only).

Run each from the repository root as ``python -m benchmarks.NAME --help``:

- ``benchmark``: training throughput, the Lightning path against the plain PyTorch loops of ``plain_loops`` (and
  ``--check``: every model in each precision, finite losses and images/s); ``speed_options``: channels-last, Adam
  implementations and ``torch.compile`` on the DCGAN step; ``ddp_benchmark``: ``gan_ddp`` against Lightning's DDP;
  ``example_dcgan``: the canonical 64x64 DCGAN against the PyTorch DCGAN example, side by side;
  ``gpu_syncs``: host synchronisations per training step on CUDA;
- ``toy_benchmark``: mode coverage on the 2D toys over seeds; ``semisup_benchmark``: the semi-supervised GAN against
  its supervised-only baseline; ``probe_benchmark``: linear probes of BiGAN / BigBiGAN encoders;
  ``calibrate_metrics``: the floor and ceiling of FID / IS / KID for a domain extractor; ``yardstick``: the plain
  PyTorch DCGAN at the zoo's protocol, the reference of every entry's FID curve; ``zoo_curves``: every run's FID
  against images seen in one figure, and the zoo's table (FID / IS at fixed budgets, training time, own measures);
- ``gpu_session.sh``: what a device session with a GPU runs, in one call;
- ``lab``: investigations whose results docs/lab/ records (``bigan_pairing``, ``sgan_messengers``).

The results and the commands that produced them are in BENCHMARKS.md and docs/lab/. ``run_fit`` is the one way
``toy_benchmark`` and ``semisup_benchmark`` run a fit: in a subprocess, one thread, resumable; ``read_run`` reads a
run's CSV log whole (the parts a resumed fit leaves) for them and for ``zoo_curves``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import time
from pathlib import Path

from gan_zoo.errors import UserError


def run_fit(cmd: list[str], out: Path, resume: bool) -> tuple[int, dict]:
    """Run the fit command ``cmd`` (its ``--out`` is ``out``) with one thread and W&B off, its output in
    ``out/fit.log``; with ``resume`` and a checkpoint in ``out``, continue it (``--ckpt-path last``).

    Returns the exit status and the run's timing over its attempts: ``wall_s`` sums the attempts that ended,
    ``attempts`` counts those started (``out/attempts.txt``: a benchmark killed with its fit writes no wall time),
    ``wall_complete`` says whether they are the same."""
    out.mkdir(parents=True, exist_ok=True)
    walls = out / "wall_s.txt"  # one line per attempt that ended
    starts = out / "attempts.txt"  # one line per attempt started
    resumed = resume and (out / "checkpoints" / "last.ckpt").is_file()
    if resumed:
        cmd = [*cmd, "--ckpt-path", "last"]
    else:
        walls.unlink(missing_ok=True)
        starts.unlink(missing_ok=True)
    with open(starts, "a") as f:
        f.write(f"{time.time():.0f}\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    t0 = time.time()
    with open(out / "fit.log", "a" if resumed else "w") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, text=True, env=env).returncode
    with open(walls, "a") as f:
        f.write(f"{time.time() - t0:.1f}\n")
    ended = [float(v) for v in walls.read_text().split()]
    started = len(starts.read_text().split())
    return rc, {"wall_s": round(sum(ended), 1), "attempts": started, "wall_complete": len(ended) == started}


def read_run(directory: str | Path) -> dict[int, dict[str, float]]:
    """``{images seen: {key: value}}`` from ``<directory>/logs/metrics.csv`` and the earlier parts of a resumed fit
    (``metrics.1.csv``, ``metrics.2.csv``, ...: ``gan_zoo.loggers.keep_earlier_csv``), in order: rows of the same step
    merged, a later part's value winning, empty cells left out."""
    logs = Path(directory) / "logs"
    if not (logs / "metrics.csv").is_file():
        raise UserError(f"{directory}: no logs/metrics.csv (train with --logger csv, or point at a run directory)")
    parts = []
    while (logs / f"metrics.{len(parts) + 1}.csv").is_file():
        parts.append(logs / f"metrics.{len(parts) + 1}.csv")
    by_step: dict[int, dict[str, float]] = {}
    for path in [*parts, logs / "metrics.csv"]:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("step"):
                    continue
                step = int(float(row["step"]))
                for k, v in row.items():
                    if k != "step" and v not in ("", None):
                        by_step.setdefault(step, {})[k] = float(v)
    return dict(sorted(by_step.items()))


def series(run: dict[int, dict[str, float]], key: str) -> list[tuple[int, float]]:
    """``[(images seen, value)]`` of ``key`` in a ``read_run`` log, in order."""
    return [(step, values[key]) for step, values in run.items() if key in values]
