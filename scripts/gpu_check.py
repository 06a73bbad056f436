#!/usr/bin/env python
"""Every model for a few hundred training steps on a GPU, in each precision: finite losses and images/s.

    python scripts/gpu_check.py                                   # all models, 32-true and bf16-mixed, 200 steps
    python scripts/gpu_check.py --models dcgan,pggan --precisions 32-true,bf16-mixed,16-mixed --json out.json
    python scripts/gpu_check.py --accelerator cpu --steps 4 --warmup 2   # a dry run of the script itself

Data: Fashion-MNIST at 32x32 (the models' default image setting), from the usual places (``$GAN_ZOO_DATA``, the Debian
package). Each run times windows of ``--window`` batches after ``--warmup`` batches (CUDA synchronised at window edges)
and reports the median images/s over the windows, the peak GPU memory, and whether every returned loss was finite.
PGGAN runs with short phases so that it reaches 32x32 during the warm-up; the timed steps are at 32x32.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lightning as L  # noqa: E402
import torch  # noqa: E402

import gan_zoo  # noqa: E402
from gan_zoo.datamodules import get_datamodule  # noqa: E402
from gan_zoo.registry import get_model_class  # noqa: E402

warnings.filterwarnings("ignore")


class Timer(L.Callback):
    """Median images/s over windows of ``window`` batches after ``warmup`` batches; checks returned losses."""

    def __init__(self, warmup: int, window: int):
        self.warmup, self.window = warmup, window
        self.rates: list[float] = []
        self.finite = True
        self._t0 = self._n0 = None

    def _sync(self, pl_module):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for v in (outputs or {}).values():
            if torch.is_tensor(v) and not torch.isfinite(v).all():
                self.finite = False
        done = batch_idx + 1
        if done >= self.warmup and (done - self.warmup) % self.window == 0:
            self._sync(pl_module)
            now, seen = time.perf_counter(), pl_module.images_seen
            if self._t0 is not None:
                self.rates.append((seen - self._n0) / (now - self._t0))
            self._t0, self._n0 = now, seen


def run_one(name: str, precision: str, args) -> dict:
    cls = get_model_class(name)
    batch_size = cls.default_batch_size if name != "pggan" else 64
    dm = get_datamodule("fashion_mnist", resolution=32, batch_size=batch_size, seed=0,
                        num_labeled=cls.default_num_labeled)
    dm.prepare_data()
    accepted = set(inspect.signature(cls.__init__).parameters)
    linked = {"channels": 1, "resolution": 32, "num_classes": dm.num_classes, "data_dim": 0}
    hp = {k: v for k, v in linked.items() if k in accepted}
    if name == "pggan":
        hp["phase_images"] = batch_size * max(1, args.warmup // 8)  # 6 phases: at 32x32 before the timed steps
    torch.manual_seed(0)
    model = cls(**hp)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    timer = Timer(args.warmup, args.window)
    trainer = L.Trainer(accelerator=args.accelerator, devices=1, precision=precision, max_epochs=-1,
                        limit_train_batches=args.warmup + args.steps, max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[timer], log_every_n_steps=50)
    trainer.fit_loop.max_epochs = 1
    if torch.cuda.is_available() and args.accelerator != "cpu":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    error = None
    try:
        trainer.fit(model, datamodule=dm)
    except Exception as e:  # report and go on with the other models
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() and args.accelerator != "cpu" else None
    samples_ok = None
    if error is None:
        x = model.sample(16, seed=0)
        samples_ok = bool(torch.isfinite(x).all() and x.abs().max() <= 1.0)
    res = {"model": name, "precision": precision, "batch_size": batch_size, "params": n_params,
           "images_per_s": round(statistics.median(timer.rates), 1) if timer.rates else None,
           "windows": len(timer.rates), "finite_losses": timer.finite, "samples_ok": samples_ok,
           "images_seen": model.images_seen, "wall_s": round(wall, 1),
           "peak_mem_mib": None if peak is None else round(peak, 1), "error": error}
    print(json.dumps(res), flush=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="all")
    p.add_argument("--precisions", default="32-true,bf16-mixed")
    p.add_argument("--steps", type=int, default=200, help="timed batches per run")
    p.add_argument("--warmup", type=int, default=50, help="untimed batches first")
    p.add_argument("--window", type=int, default=50, help="batches per timing window")
    p.add_argument("--accelerator", default="gpu")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.window = min(args.window, args.steps)
    names = gan_zoo.list_models() if args.models == "all" else args.models.split(",")
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 runs use TF32 matmuls, as Lightning recommends on Hopper
    torch.backends.cudnn.allow_tf32 = True
    env = {"torch": torch.__version__, "lightning": L.__version__, "python": platform.python_version(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor(),
           "date": time.strftime("%Y-%m-%d"), "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])}
    print(json.dumps(env), flush=True)
    results = [run_one(n, prec, args) for n in names for prec in args.precisions.split(",")]
    print(f"\n{'model':<12} {'precision':<11} {'batch':>5} {'img/s':>9} {'finite':>6} {'peak MiB':>9}  error")
    for r in results:
        rate = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        print(f"{r['model']:<12} {r['precision']:<11} {r['batch_size']:>5} {rate:>9} {str(r['finite_losses']):>6} "
              f"{r['peak_mem_mib'] if r['peak_mem_mib'] is not None else '-':>9}  {r['error'] or ''}")
    if args.json:
        Path(args.json).write_text(json.dumps({"env": env, "results": results}, indent=2) + "\n")
    bad = [r for r in results if r["error"] or not r["finite_losses"] or not r["samples_ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
