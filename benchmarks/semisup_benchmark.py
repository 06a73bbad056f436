#!/usr/bin/env python
"""Semi-supervised GAN against the supervised-only baseline: test accuracy over seeds and label counts.

    python -m benchmarks.semisup_benchmark --data fashion_mnist --labels 100,1000 --seeds 0,1,2 --max-images 30000

Every configuration runs ``scripts/fit.py --model semisupgan`` (GAN) and the same command with
``--supervised-only`` (baseline: the same classifier on the same labeled images, no GAN), in subprocesses, ``--jobs``
at a time with one thread each. Reports mean and standard deviation of ``metrics/test_acc`` (EMA classifier on the
test split) and the CPU time of each run, as a Markdown table and JSON.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(args, labels: int, seed: int, baseline: bool) -> dict:
    out = Path(args.out) / f"{args.data}-l{labels}-s{seed}-{'base' if baseline else 'gan'}"
    cmd = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "semisupgan", "--data", args.data,
           "--num-labeled", str(labels), "--seed", str(seed), "--max-images", str(args.max_images), "--logger", "csv",
           "--metrics", "none", "--out", str(out), "--no-progress-bar", *args.extra.split()]
    if baseline:
        cmd.append("--supervised-only")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.time() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    with open(out / "logs" / "metrics.csv") as f:
        acc = [float(row["metrics/test_acc"]) for row in csv.DictReader(f) if row.get("metrics/test_acc")][-1]
    return {"labels": labels, "seed": seed, "method": "baseline" if baseline else "gan", "test_acc": acc,
            "wall_s": round(wall, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion_mnist")
    p.add_argument("--labels", default="100,1000")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--max-images", type=int, default=30_000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--extra", default="", help="more fit.py options, e.g. '--form odena'")
    p.add_argument("--out", default="runs/semisup_benchmark")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    grid = list(itertools.product([int(v) for v in args.labels.split(",")], [int(v) for v in args.seeds.split(",")],
                                  [False, True]))
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_one(args, *c), grid))
    print(f"| {args.data} | labels | method | test accuracy % (mean +- std over seeds) | seeds | wall s per run |")
    print("|---|---|---|---|---|---|")
    for labels, method in itertools.product(sorted({r["labels"] for r in results}), ("gan", "baseline")):
        rs = [r for r in results if r["labels"] == labels and r["method"] == method]
        accs = [r["test_acc"] for r in rs]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {args.data} | {labels} | {method} | {statistics.mean(accs):.2f} +- {std:.2f} "
              f"({', '.join(f'{a:.2f}' for a in accs)}) | {len(rs)} | {statistics.mean(r['wall_s'] for r in rs):.0f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
