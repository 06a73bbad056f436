#!/usr/bin/env python
"""Semi-supervised GAN against the supervised-only baseline: test accuracy over label draws (seeds) and label counts.

    python -m benchmarks.semisup_benchmark --data fashion_mnist --labels 100,1000 --seeds 0,1,2,3,4 \
        --max-images 300000 --extra "--arch mlp" --jsonl semisup.jsonl --resume

Every configuration runs ``scripts/fit.py --model semisupgan`` (GAN) and the same command with
``--supervised-only`` (baseline: the same classifier on the same labeled images through the same code path, no GAN),
in subprocesses, ``--jobs`` at a time with one thread each. The seed draws the labeled subset, so the GAN and the
baseline of one seed see the same labels. Each run's test accuracy (``metrics/test_acc``, the EMA classifier on the
test split) is recorded at the end and every ``--every-images`` images (its curve against images seen).

The table gives, per data set, label count and method, the mean +- standard error over seeds, and the GAN's gain
over the baseline as the mean +- standard error of the per-seed differences (paired: the same labels). With
``--jsonl`` each run's record is appended as soon as it ends; ``--resume`` runs only the configurations the file does
not hold yet and continues an interrupted run from its last checkpoint; ``--summarize JSONL`` prints the table of the
recorded runs that match ``--data``, ``--labels``, ``--seeds``, ``--max-images`` and ``--extra``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks import read_run, run_fit, series

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gan", "baseline")


def run_dir(args, labels: int, seed: int, method: str) -> Path:
    return Path(args.out) / f"{args.data}-l{labels}-s{seed}-{'base' if method == 'baseline' else 'gan'}"


def run_one(args, labels: int, seed: int, method: str) -> dict:
    out = run_dir(args, labels, seed, method)
    cmd = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", "semisupgan", "--data", args.data,
           "--num-labeled", str(labels), "--seed", str(seed), "--max-images", str(args.max_images), "--logger", "csv",
           "--metrics", "none", "--metrics-every-images", str(args.every_images), "--out", str(out),
           "--no-progress-bar", *args.extra.split()]
    if method == "baseline":
        cmd.append("--supervised-only")
    rc, timing = run_fit(cmd, out, args.resume)
    rec = {"data": args.data, "labels": labels, "seed": seed, "method": method, "max_images": args.max_images,
           "extra": args.extra, **timing}
    if rc != 0:
        return {**rec, "error": (out / "fit.log").read_text()[-1500:]}
    curve = series(read_run(out), "metrics/test_acc")  # every attempt's part of the log
    return {**rec, "test_acc": curve[-1][1], "curve": curve}


def _mse(values: list[float]) -> str:
    m = statistics.mean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{m:.2f} +- {se:.2f}"


def table(results: list[dict]) -> str:
    """Mean +- standard error per (data, labels, method), and the GAN's paired gain over the baseline."""
    lines = ["| data | labels | method | test accuracy % (mean +- s.e.) | seeds | per seed | gain over baseline "
             "(paired, mean +- s.e.) | wall s per run |", "|---|---|---|---|---|---|---|---|"]
    for data, labels in sorted({(r["data"], r["labels"]) for r in results}):
        by = {m: {r["seed"]: r for r in results if (r["data"], r["labels"], r["method"]) == (data, labels, m)}
              for m in METHODS}
        paired = sorted(set(by["gan"]) & set(by["baseline"]))
        gain = (_mse([by["gan"][s]["test_acc"] - by["baseline"][s]["test_acc"] for s in paired]) + f" ({len(paired)})"
                if paired else "")
        for m in METHODS:
            rs = [by[m][s] for s in sorted(by[m])]
            if not rs:
                continue
            accs = [r["test_acc"] for r in rs]
            lines.append(f"| {data} | {labels} | {m} | {_mse(accs)} | {len(rs)} | "
                         f"{', '.join(f'{a:.2f}' for a in accs)} | {gain if m == 'gan' else ''} | "
                         f"{statistics.median(r['wall_s'] for r in rs):.0f} |")
    return "\n".join(lines)


def read_results(path: str, args) -> list[dict]:
    """The records of ``path`` matching ``args`` (data, labels, seeds, budget, extra), the last per configuration."""
    labels = {int(v) for v in args.labels.split(",")}
    seeds = {int(v) for v in args.seeds.split(",")}
    latest: dict[tuple, dict] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if ("error" not in r and r["data"] == args.data and r["labels"] in labels and r["seed"] in seeds
                and r["max_images"] == args.max_images and r["extra"] == args.extra):
            latest[(r["labels"], r["seed"], r["method"])] = r
    return list(latest.values())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion_mnist")
    p.add_argument("--labels", default="100,1000")
    p.add_argument("--seeds", default="0,1,2,3,4", help="label draws (and initial weights)")
    p.add_argument("--max-images", type=int, default=30_000)
    p.add_argument("--every-images", type=int, default=0,
                   help="images between test-accuracy evaluations (the curve); 0: at the end only")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--extra", default="", help="more fit.py options, e.g. '--arch mlp' or '--form odena'")
    p.add_argument("--out", default="runs/semisup_benchmark")
    p.add_argument("--json", default=None)
    p.add_argument("--jsonl", default=None, help="append each run's record here as soon as it ends")
    p.add_argument("--resume", action="store_true",
                   help="run only what --jsonl does not hold yet, and continue an interrupted run from its last "
                        "checkpoint; its wall time sums the attempts that ended (wall_complete: false where one "
                        "was killed with the benchmark)")
    p.add_argument("--summarize", default=None, metavar="JSONL",
                   help="run nothing: print the table of the runs recorded in JSONL that match the selection")
    return p


def main(argv=None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.summarize:
        print(table(read_results(args.summarize, args)))
        return 0
    grid = list(itertools.product([int(v) for v in args.labels.split(",")], [int(v) for v in args.seeds.split(",")],
                                  METHODS))
    done = []
    if args.resume:
        if not args.jsonl:
            p.error("--resume needs --jsonl (the record of the runs already done)")
        if Path(args.jsonl).exists():
            done = read_results(args.jsonl, args)
        have = {(r["labels"], r["seed"], r["method"]) for r in done}
        grid = [c for c in grid if c not in have]
        print(f"{len(have)} runs already in {args.jsonl}; {len(grid)} to run", file=sys.stderr, flush=True)

    def job(c):
        r = run_one(args, *c)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(r) + "\n")
        return r

    with ThreadPoolExecutor(args.jobs) as pool:
        results = done + list(pool.map(job, grid))
    errors = [r for r in results if "error" in r]
    print(table([r for r in results if "error" not in r]))
    for r in errors:
        print(f"FAILED {r['data']} {r['labels']} labels seed {r['seed']} {r['method']}: {r['error'][-300:]}",
              file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
