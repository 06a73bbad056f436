#!/usr/bin/env python
"""Host synchronisations per training step on CUDA, for the Lightning path and the plain loop of every model.

A synchronisation (``.item()``, a device-to-host copy, ``nonzero``...) stops the host until the GPU has finished the
work queued so far, so the host can no longer queue the next kernels while the GPU runs: on small GPU steps this costs
more than the Python overhead around it. ``torch.cuda.set_sync_debug_mode("warn")`` makes every synchronising CUDA
call warn; this script counts the warnings by their Python stack for a run of ``--short`` batches and one of
``--long`` batches of each path (the models and loaders of ``benchmarks/benchmark.py``, channels-last), and reports
(count(long) - count(short)) / (long - short): the synchronisations per training step, set-up and the timer's two
explicit ``torch.cuda.synchronize`` calls excluded.

    python3 -m benchmarks.gpu_syncs --precision bf16-mixed --json syncs.json        # needs a CUDA device
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file (python benchmarks/gpu_syncs.py): gan_zoo and benchmarks from the root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import gan_zoo  # noqa: E402
from benchmarks import benchmark  # noqa: E402


def _where(frames) -> str:
    """The three innermost frames outside torch, innermost first."""
    mine = [f for f in frames if "/torch/" not in f.filename and not f.filename.endswith("warnings.py")
            and f.filename != __file__]
    return " <- ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in reversed(mine[-3:]))


def count_syncs(path: str, spec, batches: int, precision: str) -> Counter:
    model = benchmark.build(spec, channels_last=True)
    counts: Counter = Counter()

    def show(message, category, filename, lineno, file=None, line=None):
        if "synchroniz" in str(message):
            counts[_where(traceback.extract_stack()[:-1])] += 1

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        torch.cuda.set_sync_debug_mode("warn")
        try:
            benchmark.PATHS[path](spec, 0, batches, model=model, channels_last=True, accelerator="gpu",
                                  precision=precision)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return counts


def per_step(path: str, spec, short: int, long: int, precision: str) -> dict:
    a, b = count_syncs(path, spec, short, precision), count_syncs(path, spec, long, precision)
    rates = {k: (b[k] - a.get(k, 0)) / (long - short) for k in b}
    rates = {k: v for k, v in sorted(rates.items(), key=lambda kv: -kv[1]) if v > 0}
    return {"per_step": sum(rates.values()), "setup": sum(a.values()) - short * sum(rates.values()), "where": rates}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma list (default: every model)")
    p.add_argument("--configs", default="canonical64", help="comma list of benchmark.py configurations, or none")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="bf16-mixed")
    p.add_argument("--short", type=int, default=4)
    p.add_argument("--long", type=int, default=12)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: needs a CUDA device (torch sees none)", file=sys.stderr)
        return 2
    if not 1 <= args.short < args.long:
        p.error("need 1 <= --short < --long")
    models = gan_zoo.list_models() if args.models is None else args.models.split(",")
    specs = [benchmark.model_spec(m) for m in models]
    specs += [benchmark.config_spec(c) for c in args.configs.split(",") if c and c != "none"]
    out = {"precision": args.precision, "short": args.short, "long": args.long, "results": {}}
    for spec in specs:
        res = {path: per_step(path, spec, args.short, args.long, args.precision) for path in ("lightning", "plain")}
        out["results"][spec.label] = res
        print(f"{spec.label}: syncs per step lightning {res['lightning']['per_step']:.2f}, "
              f"plain {res['plain']['per_step']:.2f}", flush=True)
        for path in ("lightning", "plain"):
            for where, rate in list(res[path]["where"].items())[:4]:
                print(f"    {path} {rate:.2f}/step  {where}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
