#!/usr/bin/env python
"""The canonical 64x64 DCGAN in gan_zoo against the PyTorch DCGAN example, side by side in one run.

The reference is ``dcgan/main.py`` of pytorch/examples (https://github.com/pytorch/examples), a file you fetch
yourself and pass as ``--example``; it is run unchanged, in a subprocess, as a user runs it::

    python main.py --dataset fake --batchSize 64 --workers 0 --niter EPOCHS --manualSeed 0 --outf TMP

(``FakeData``: 1,000 random 3x64x64 images, so 15 batches of 64 and one of 40 an epoch; ``--workers 0``: one process,
as ``gan_zoo`` runs here). Its training loop prints a line after every batch; the parent stamps each line as it
arrives. The example's steady state is 64 images over the interval between two batch lines, taken from epoch 1 on
(epoch 0 is its warm-up) and only inside an epoch, for batches 2 to 14: the interval after batch 0 holds the sample
grid it writes at batch 0 of every epoch, and the epoch's last batch has 40 images and is followed by its checkpoint
save. So what is compared is training batches, not the example's once-an-epoch files.

The ``gan_zoo`` arm is ``benchmarks.benchmark``'s Lightning path for the ``canonical64`` configuration (``dcgan``,
3x64x64, latent 100, ``ngf = ndf = 64``, batch 64, Adam 2e-4 / 0.5, the model's defaults otherwise, generator EMA
included; channels-last weights, ``fit.py``'s default) in a fresh subprocess: ``--steps`` batches timed after
``--warmup`` batches, each stamped at its end, on batches of random uint8 images converted to [-1, 1] floats (an
in-memory data set). Both arms use torch's default threads unless
``--threads`` is given.

A run's images/s is 64 over its median batch interval (the mean is printed beside it). Pairs alternate between the
arms (pair r: the example first for even r, gan_zoo first for odd r), or with ``--concurrent`` run both arms at the
same time, each pinned to its own core with one thread, the cores swapped every pair: on a shared or noisy machine
both then run under the same conditions. Reported: each arm's median images/s and the median of the per-pair ratios
gan_zoo / example with their min-max.

    git -C /path/to/examples show HEAD:dcgan/main.py > /tmp/dcgan_main.py
    python -m benchmarks.example_dcgan --example /tmp/dcgan_main.py --repeats 5 --json example_dcgan.json
    python -m benchmarks.example_dcgan --example /tmp/dcgan_main.py --concurrent --repeats 6 --epochs 2 --steps 13
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BATCH = 64
LINE = re.compile(r"^\[(\d+)/(\d+)\]\[(\d+)/(\d+)\]")


def _steady(intervals: list[float], batch: int) -> dict:
    return {"images_per_s": batch / statistics.median(intervals), "batches_timed": len(intervals),
            "mean_images_per_s": batch * len(intervals) / sum(intervals)}


def _popen(cmd: list[str], env: dict | None, core: int | None, **kw) -> subprocess.Popen:
    pin = None if core is None else (lambda: os.sched_setaffinity(0, {core}))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=pin, **kw)


def example_rate(example: Path, epochs: int, env: dict | None, core: int | None = None) -> dict:
    """Run the example for ``epochs`` epochs and return its steady-state images/s (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-u", str(example), "--dataset", "fake", "--batchSize", str(BATCH), "--workers", "0",
               "--niter", str(epochs), "--manualSeed", "0", "--outf", tmp]
        stamps: dict[tuple[int, int], float] = {}
        tail: list[str] = []
        with _popen(cmd, env, core) as proc:
            for line in proc.stdout:
                now = time.perf_counter()
                m = LINE.match(line)
                if m:
                    stamps[(int(m.group(1)), int(m.group(3)))] = now
                tail = (tail + [line])[-5:]
        if proc.returncode != 0:
            raise RuntimeError(f"the example exited with {proc.returncode}:\n{''.join(tail)}")
    intervals = [stamps[(e, i)] - stamps[(e, i - 1)] for (e, i) in sorted(stamps)
                 if e >= 1 and 2 <= i <= 14 and (e, i - 1) in stamps]
    if not intervals:
        raise RuntimeError("no batch lines from the example: is it dcgan/main.py of pytorch/examples?")
    return _steady(intervals, BATCH)


# The gan_zoo arm: benchmarks.benchmark's Lightning path for canonical64, stamping the end of every batch.
ZOO_ARM = """
import json, sys, time
import lightning as L
from benchmarks.benchmark import _trainer, build, config_spec, make_loader
warmup, steps = int(sys.argv[1]), int(sys.argv[2])
spec = config_spec("canonical64")
ends = []
class Stamp(L.Callback):
    def on_train_batch_end(self, *args):
        ends.append(time.perf_counter())
_trainer(warmup, steps, [Stamp()]).fit(build(spec, channels_last=True), make_loader(spec, warmup + steps))
print("RESULT", json.dumps([b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])]))
"""


def zoo_rate(warmup: int, steps: int, env: dict | None, core: int | None = None) -> dict:
    """The gan_zoo arm in a fresh process: ``steps`` batches of ``canonical64`` under a Trainer after ``warmup``."""
    with _popen([sys.executable, "-c", ZOO_ARM, str(warmup), str(steps)], env, core,
                cwd=Path(__file__).resolve().parent.parent) as proc:
        out = proc.stdout.read()
    if proc.returncode != 0:
        raise RuntimeError(f"the gan_zoo arm exited with {proc.returncode}:\n{out[-2000:]}")
    intervals = json.loads([ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1].split(" ", 1)[1])
    return _steady(intervals, BATCH)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--example", type=Path, required=True, help="dcgan/main.py of pytorch/examples")
    p.add_argument("--repeats", type=int, default=5, help="pairs of runs (default 5)")
    p.add_argument("--epochs", type=int, default=3,
                   help="the example's epochs a run (default 3: epoch 0 warms up, 26 batches timed)")
    p.add_argument("--warmup", type=int, default=5, help="gan_zoo batches before the timing (default 5)")
    p.add_argument("--steps", type=int, default=26, help="gan_zoo batches timed (default 26)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both arms (default: torch's)")
    p.add_argument("--concurrent", action="store_true",
                   help="run the two arms of a pair at the same time, each pinned to its own core (0 and 1, swapped "
                        "every pair) with one thread (or --threads): both see the same machine")
    p.add_argument("--json", type=Path, default=None, help="write the runs and the summary here")
    args = p.parse_args(argv)
    if not args.example.is_file():
        p.error(f"--example {args.example}: no such file (fetch dcgan/main.py of pytorch/examples)")

    env = {**os.environ, "WANDB_MODE": "disabled"}
    if args.threads or args.concurrent:
        env["OMP_NUM_THREADS"] = str(args.threads or 1)
    arms = {"example": lambda core: example_rate(args.example, args.epochs, env, core),
            "gan_zoo": lambda core: zoo_rate(args.warmup, args.steps, env, core)}
    runs = {"example": [], "gan_zoo": []}
    for r in range(args.repeats):
        order = ("example", "gan_zoo") if r % 2 == 0 else ("gan_zoo", "example")
        if args.concurrent:  # both at once, the first of the order on core 0
            with ThreadPoolExecutor(2) as pool:
                futures = {arm: pool.submit(arms[arm], core) for core, arm in enumerate(order)}
            results = {arm: f.result() for arm, f in futures.items()}
        else:
            results = {arm: arms[arm](None) for arm in order}
        for arm in order:
            res = results[arm]
            runs[arm].append(res["images_per_s"])
            print(f"pair {r}: {arm:8s} {res['images_per_s']:7.1f} images/s (median of {res['batches_timed']} "
                  f"batches; mean {res['mean_images_per_s']:.1f})", flush=True)
    ratios = [z / e for z, e in zip(runs["gan_zoo"], runs["example"])]
    summary = {"example_images_per_s": statistics.median(runs["example"]),
               "gan_zoo_images_per_s": statistics.median(runs["gan_zoo"]),
               "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    print(f"median images/s: example {summary['example_images_per_s']:.1f}, gan_zoo "
          f"{summary['gan_zoo_images_per_s']:.1f}; gan_zoo / example {summary['ratio_median']:.3f} "
          f"({summary['ratio_min']:.3f}-{summary['ratio_max']:.3f})")
    if args.json:
        from benchmarks.benchmark import environment
        record = {"environment": environment(sys.argv[1:] if argv is None else argv, module="benchmarks.example_dcgan"),
                  "example_sha256": hashlib.sha256(args.example.read_bytes()).hexdigest(),
                  "runs": runs, "ratios": ratios, "summary": summary}
        args.json.write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
