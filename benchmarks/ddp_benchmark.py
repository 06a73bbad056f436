#!/usr/bin/env python
"""Two-process data parallelism: ``gan_ddp`` against Lightning's DDP with ``find_unused_parameters=True``.

Each run is a 2-process CPU (gloo) fit of one model at its default configuration (1x32x32 random images, batch
``--batch-size`` per rank, one thread per process), timing ``--steps`` batches after ``--warmup`` on rank 0; runs
alternate between the strategies so drift hits both. Reports the median images/s (both ranks' images) per strategy
and the median per-pair ratio.

    python -m benchmarks.ddp_benchmark --models dcgan,bigbigan,sgan --repeats 5 --json ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("gan_ddp", "ddp_find_unused_parameters_true")

WORKER = r'''
import json, os, sys, time, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {root!r})
import lightning as L, torch
import gan_zoo
from gan_zoo.datamodules.base import ResumableLoader

name, strategy, bs, warmup, steps, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
rank = int(os.environ.get("LOCAL_RANK", 0))
torch.set_num_threads(1)
n = bs * (warmup + steps) * 2
g = torch.Generator().manual_seed(0)
x = (torch.rand(n, 1, 32, 32, generator=g) * 2 - 1)
y = torch.randint(0, 10, (n,), generator=g)
loader = ResumableLoader(n=n, batch_size=bs, seed=0, rank=rank, world_size=2,
                         fetch=lambda i: {{"x": x[i], "y": y[i], "x_lab": x[i], "y_lab": y[i]}})
kw = dict(channels=1, resolution=32)
if name == "semisupgan":
    kw["num_classes"] = 10
torch.manual_seed(0)
model = gan_zoo.get_model(name, **kw)
if name == "pggan":
    model.restore_progress(10 ** 7)  # time the final 32x32 stage

class T(L.Callback):
    def on_train_batch_start(self, trainer, m, batch, i):
        if i == warmup:
            self.t0 = time.perf_counter()
    def on_train_batch_end(self, trainer, m, o, batch, i):
        self.t1 = time.perf_counter()
    def on_train_end(self, trainer, m):
        if trainer.global_rank == 0:
            open(out, "w").write(json.dumps({{"seconds": self.t1 - self.t0}}))

trainer = L.Trainer(accelerator="cpu", devices=2, strategy=strategy, max_epochs=1, limit_train_batches=warmup + steps,
                    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    callbacks=[T()])
trainer.fit(model, loader)
'''


def run(name: str, strategy: str, bs: int, warmup: int, steps: int, tmp: Path) -> float:
    script = tmp / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT)))
    out = tmp / f"{name}-{strategy}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(script), name, strategy, str(bs), str(warmup), str(steps), str(out)],
                       capture_output=True, text=True, env=env, cwd=str(ROOT))
    if r.returncode != 0:
        raise RuntimeError(f"{name} {strategy} failed:\n{r.stderr[-2000:]}")
    return 2 * bs * steps / json.loads(out.read_text())["seconds"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="dcgan,bigbigan,egan,sgan,pggan")
    p.add_argument("--batch-size", type=int, default=32, help="per rank")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import lightning as L
    import torch

    res = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; 2 processes x 1 thread, "
                      "gloo", "torch": torch.__version__, "lightning": L.__version__, "date": time.strftime("%Y-%m-%d"),
           "command": "python -m benchmarks.ddp_benchmark " + " ".join(sys.argv[1:] if argv is None else argv),
           "load_before": os.getloadavg(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            rates: dict[str, list[float]] = {s: [] for s in STRATEGIES}
            for r in range(args.repeats):
                order = STRATEGIES if r % 2 == 0 else STRATEGIES[::-1]
                for s in order:
                    rates[s].append(run(name, s, args.batch_size, args.warmup, args.steps, Path(tmp)))
                print(f"{name} {r + 1}/{args.repeats}: " + ", ".join(f"{s} {v[-1]:.1f}" for s, v in rates.items()),
                      file=sys.stderr)
            ratios = [a / b for a, b in zip(*rates.values())]
            res["models"][name] = {**{f"{s}_img_s": statistics.median(v) for s, v in rates.items()},
                                   "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                                   "ratio_max": max(ratios), "runs": rates}
            m = res["models"][name]
            print(f"{name}: gan_ddp {m['gan_ddp_img_s']:.1f} img/s, find_unused {m[STRATEGIES[1] + '_img_s']:.1f} "
                  f"img/s, ratio {m['ratio_median']:.3f} ({m['ratio_min']:.3f}-{m['ratio_max']:.3f})")
    res["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
