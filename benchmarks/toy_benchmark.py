#!/usr/bin/env python
r"""Mode coverage on the 2D toys (ring8, grid25) for several models, over seeds: the PacGAN / VEEGAN protocol.

    python -m benchmarks.toy_benchmark --models dcgan,lsgan,selfgan,egan,sgan --toys ring8,grid25 --seeds 0,1,2,3,4 \
        --iterations 3000 --jobs 16 --json toys.json

Every model runs ``scripts/fit.py`` with the same MLP networks (3 hidden layers of ``--hidden``, latent ``--latent``),
the same Adam settings, the same number of training iterations and the same real points per iteration (``--batch``:
every model's loader batch; SGAN splits it over its ``--n-pairs`` (default 4) local pairs, each of which sees
``--batch / n_pairs`` points, while its global pair and messengers see all of them); samples come from the EMA
generator. At the end 2,500 samples are scored: modes with at least one high-quality sample (within 3 std of the
mode), the % of high-quality samples, and the reverse KL of the mode histogram against uniform.
Reports mean and standard error over seeds, how many runs meet the target (every mode, >= 90 % high quality, reverse
KL < 0.04, PacGAN4's), and the wall time of each run (one thread each).

Each record stores ``batch`` (the points of one local network's step: ``--batch / n_pairs`` for SGAN) and
``points_per_iteration`` (``--batch``). Until 28 Nov 2026 ``--batch`` was the points per network, so SGAN's loader
batch was ``n_pairs x --batch``; records from then, without ``points_per_iteration``, are read that way (an SGAN record
with ``batch`` 256 and 4 pairs is summarized with ``--batch 1024``).

Runs split over several invocations (or machines) append to one ``--jsonl``; ``--resume`` skips the runs it already
holds and continues an interrupted run from its last checkpoint; ``--summarize`` then prints their table:

    python -m benchmarks.toy_benchmark --summarize toys.jsonl --models egan --toys grid25 --iterations 12000 \
        --extra "--gamma 0 --d-steps 1"
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

from benchmarks import read_run, run_fit

ROOT = Path(__file__).resolve().parents[1]


def run_one(args, model: str, toy: str, seed: int) -> dict:
    out = Path(args.out) / f"{toy}-{model}-s{seed}"
    n_pairs = args.n_pairs
    batch = args.batch  # the loader batch: the real points of one iteration, for every model
    cmd = [sys.executable, str(ROOT / "scripts" / "fit.py"), "--model", model, "--data", toy, "--seed", str(seed),
           "--batch-size", str(batch), "--max-images", str(batch * args.iterations), "--lr", str(args.lr),
           "--latent-dim", str(args.latent), "--hidden", str(args.hidden), "--metrics", "toy", "--logger", "csv",
           "--out", str(out), "--no-progress-bar", "--log-every-n-steps", "500", *args.extra.split()]
    if model == "sgan":
        cmd += ["--n-pairs", str(n_pairs), "--pair-seed", str(seed)]
    log = out / "fit.log"  # the fit's own output (its "toy: ..." line at every evaluation), kept with the run
    rc, timing = run_fit(cmd, out, args.resume)
    if rc != 0:
        return {"model": model, "toy": toy, "seed": seed, "error": log.read_text()[-1500:], **timing,
                **settings(args, model)}
    row = [values for values in read_run(out).values() if "toy/modes" in values][-1]  # every attempt's log
    return {"model": model, "toy": toy, "seed": seed, "modes": row["toy/modes"],
            "hq_percent": row["toy/hq_percent"], "reverse_kl": row["toy/reverse_kl"],
            **timing, **settings(args, model),
            "hparams": model_hparams(out)}


def model_hparams(out: Path) -> dict:
    """The model's hyperparameters as the run resolved them (defaults included): what ran, whatever the defaults
    of a later version are. Records written before this field existed ran the defaults of their day (BENCHMARKS.md
    says which)."""
    import yaml

    saved = yaml.safe_load((out / "logs" / "hparams.yaml").read_text())
    return {k: v for k, v in saved.items() if not k.startswith("run/")}


# What a run's result depends on besides model, toy and seed. Records written before a field was stored carry the
# value that was the only one used then (the defaults below): --summarize reads a missing field as that value.
SETTINGS = {"iterations": None, "extra": "", "latent": 2, "hidden": 128, "lr": 1e-3, "n_pairs": 4}


def network_batch(model: str, points: int, n_pairs: int) -> int:
    """The points one local network's step sees when the loader batch is ``points``: SGAN splits it over its pairs."""
    return points // n_pairs if model == "sgan" else points


def points_per_iteration(r: dict) -> int:
    """A record's real points per iteration; records written before the field was stored held ``batch`` points per
    network (SGAN's loader batch was ``n_pairs x batch``)."""
    if "points_per_iteration" in r:
        return r["points_per_iteration"]
    batch = r.get("batch", 256)
    return batch * r.get("n_pairs", 4) if r["model"] == "sgan" else batch


def settings(args, model: str) -> dict:
    return {**{k: getattr(args, k) for k in SETTINGS}, "batch": network_batch(model, args.batch, args.n_pairs),
            "points_per_iteration": args.batch}


def _mse(values: list[float], digits: int = 2) -> str:
    """Mean +- standard error; runs with an infinite value (reverse KL of a run with no mode) are counted apart."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values):
        rest = f" (the others: {_mse(finite, digits)})" if finite else ""
        return f"inf in {len(values) - len(finite)} of {len(values)} runs{rest}"
    m = statistics.mean(values)
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{m:.{digits}f} +- {se:.{digits}f}"


NUM_MODES = {"ring8": 8, "grid25": 25}


def meets_target(r: dict) -> bool:
    """The issue's target for one run: every mode, at least 90 % high quality, reverse KL below PacGAN4's 0.04."""
    return r["modes"] == NUM_MODES[r["toy"]] and r["hq_percent"] >= 90.0 and r["reverse_kl"] < 0.04


def table(results: list[dict], toys: list[str], models: list[str]) -> str:
    lines = ["| toy | model | modes | high quality % | reverse KL | runs | runs meeting the target | wall s per run |",
             "|---|---|---|---|---|---|---|---|"]
    for toy, model in itertools.product(toys, models):
        rs = [r for r in results if r["toy"] == toy and r["model"] == model and "error" not in r]
        if not rs:
            lines.append(f"| {toy} | {model} | failed | | | 0 | | |")
            continue
        lines.append(f"| {toy} | {model} | {_mse([r['modes'] for r in rs])} | {_mse([r['hq_percent'] for r in rs])} | "
                     f"{_mse([r['reverse_kl'] for r in rs], 3)} | {len(rs)} | {sum(map(meets_target, rs))} | "
                     f"{statistics.median(r['wall_s'] for r in rs):.0f} |")
    return "\n".join(lines)


def read_results(path: str, args) -> list[dict]:
    """The records of ``path`` matching the selection of ``args``, the last one per (model, toy, seed)."""
    seeds = {int(s) for s in args.seeds.split(",")}
    latest: dict[tuple, dict] = {}
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if (r["model"] in args.models.split(",") and r["toy"] in args.toys.split(",") and r["seed"] in seeds
                and all(r.get(k, default) == getattr(args, k) for k, default in SETTINGS.items())
                and points_per_iteration(r) == args.batch and "error" not in r):
            latest[(r["model"], r["toy"], r["seed"])] = r
    return list(latest.values())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="dcgan,lsgan,selfgan,egan,sgan")
    p.add_argument("--toys", default="ring8,grid25")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--iterations", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256,
                   help="real points per training iteration, for every model (SGAN splits them over its pairs)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--latent", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--n-pairs", type=int, default=4, help="SGAN's local pairs (the other models ignore it)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--extra", default="")
    p.add_argument("--out", default="runs/toy_benchmark")
    p.add_argument("--json", default=None)
    p.add_argument("--jsonl", default=None, help="append each run's result here as soon as it finishes")
    p.add_argument("--resume", action="store_true",
                   help="run only what --jsonl does not hold yet (same model, toy, seed and settings), and continue "
                        "an interrupted run from its last checkpoint (--ckpt-path last) instead of starting it again; "
                        "its wall time sums the attempts that ended (wall_complete: false where one was killed "
                        "with the benchmark)")
    p.add_argument("--summarize", default=None, metavar="JSONL",
                   help="run nothing: print the table of the runs recorded in JSONL (from --jsonl) that match --models, "
                        "--toys, --seeds and the run settings (--iterations, --extra, --latent, --hidden, --batch, "
                        "--lr); a seed recorded twice counts once (the last record)")
    args = p.parse_args(argv)
    if "sgan" in args.models.split(",") and (args.batch % args.n_pairs or args.batch < args.n_pairs):
        p.error(f"--batch {args.batch} does not split over SGAN's {args.n_pairs} pairs: give a multiple of --n-pairs")
    grid = list(itertools.product(args.models.split(","), args.toys.split(","), [int(s) for s in args.seeds.split(",")]))
    grid.sort(key=lambda c: {"sgan": 0, "egan": 1}.get(c[0], 2))  # the slowest first
    def job(c):
        r = run_one(args, *c)
        if args.jsonl:
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(r) + "\n")
        return r

    if args.summarize:
        results = read_results(args.summarize, args)
        print(table(results, args.toys.split(","), args.models.split(",")))
        return 0
    done = []
    if args.resume:
        if not args.jsonl:
            p.error("--resume needs --jsonl (the record of the runs already done)")
        if Path(args.jsonl).exists():
            done = read_results(args.jsonl, args)
        have = {(r["model"], r["toy"], r["seed"]) for r in done}
        grid = [c for c in grid if c not in have]
        print(f"{len(have)} runs already in {args.jsonl}; {len(grid)} to run", file=sys.stderr, flush=True)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = done + list(pool.map(job, grid))
    print(table(results, args.toys.split(","), args.models.split(",")))
    errors = [r for r in results if "error" in r]
    for r in errors:
        print(f"FAILED {r['model']} {r['toy']} seed {r['seed']}: {r['error'][-300:]}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
