#!/usr/bin/env python
"""Training throughput: the Lightning path against a plain PyTorch loop, side by side in one process.

Both paths run the same networks, losses, optimizers, EMA update and batches; the plain loop is the DCGAN step
written out by hand. Runs alternate (Lightning, plain, Lightning, ...) so drift in the machine hits both; each
run times ``--steps`` batches after ``--warmup`` batches; we report the median images/s of each path and the median
of the per-pair ratios.

    python scripts/benchmark.py                       # DCGAN on Fashion-MNIST-sized 32x32 batches + canonical 64x64
    python scripts/benchmark.py --configs canonical64 --steps 20 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
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
from datamodules.base import ResumableLoader  # noqa: E402
from gan_zoo.losses import bce_d_loss, ns_g_loss  # noqa: E402

warnings.filterwarnings("ignore")

CONFIGS = {
    # name: (model hparams, batch size)
    "fmnist32": (dict(channels=1, resolution=32), 64),
    # the canonical DCGAN: 64x64 RGB, nz 100, ngf = ndf = 64, batch 64, Adam 2e-4 / 0.5
    "canonical64": (dict(channels=3, resolution=64, latent_dim=100, ngf=64, ndf=64, lr=2e-4, beta1=0.5), 64),
}


def make_loader(channels: int, resolution: int, batch_size: int, n_batches: int) -> ResumableLoader:
    g = torch.Generator().manual_seed(0)
    n = batch_size * n_batches
    x = (torch.rand(n, channels, resolution, resolution, generator=g) * 255).to(torch.uint8)

    def fetch(idx):
        return {"x": x[idx].float().div_(127.5).sub_(1.0), "y": torch.zeros(len(idx), dtype=torch.long)}

    return ResumableLoader(n=n, batch_size=batch_size, seed=0, fetch=fetch)


class _Timer(L.Callback):
    def __init__(self, warmup: int):
        self.warmup, self.t0, self.t1 = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.t1 = time.perf_counter()


def run_lightning(hp: dict, bs: int, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", **hp)
    timer = _Timer(warmup)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=warmup + steps,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(model, make_loader(hp["channels"], hp["resolution"], bs, warmup + steps))
    return steps * bs / (timer.t1 - timer.t0)


def run_plain(hp: dict, bs: int, warmup: int, steps: int) -> float:
    torch.manual_seed(0)
    model = gan_zoo.get_model("dcgan", **hp)
    G, D = model.generator, model.discriminator
    betas = (model.hparams.beta1, model.hparams.beta2)
    opt_g = torch.optim.Adam(G.parameters(), lr=model.hparams.lr, betas=betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=model.hparams.lr, betas=betas)
    model.train()
    t0 = None
    for i, batch in enumerate(make_loader(hp["channels"], hp["resolution"], bs, warmup + steps)):
        if i == warmup:
            t0 = time.perf_counter()
        real = batch["x"]
        fake = G(torch.randn(real.shape[0], model.latent_dim))
        loss_d = bce_d_loss(D(real), D(fake.detach()))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        loss_g = ns_g_loss(D(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        model.update_ema()
        model.images_seen += real.shape[0]
    return steps * bs / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="fmnist32,canonical64", help=f"comma list of {', '.join(CONFIGS)}")
    p.add_argument("--steps", type=int, default=30, help="timed batches per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed batches per run")
    p.add_argument("--repeats", type=int, default=5, help="runs per path")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    results = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
               "torch": torch.__version__, "lightning": L.__version__, "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "warmup": args.warmup,
               "repeats": args.repeats, "configs": {}}
    for name in args.configs.split(","):
        if name not in CONFIGS:
            print(f"error: unknown config {name!r}; valid: {', '.join(CONFIGS)}", file=sys.stderr)
            return 2
        hp, bs = CONFIGS[name]
        lit, plain = [], []
        for r in range(args.repeats):
            lit.append(run_lightning(hp, bs, args.warmup, args.steps))
            plain.append(run_plain(hp, bs, args.warmup, args.steps))
            print(f"{name} run {r + 1}/{args.repeats}: lightning {lit[-1]:.1f} img/s, plain {plain[-1]:.1f} img/s",
                  file=sys.stderr)
        ratios = [a / b for a, b in zip(lit, plain)]
        res = {"batch_size": bs, "hparams": hp, "lightning_img_s": statistics.median(lit),
               "plain_img_s": statistics.median(plain), "ratio_median": statistics.median(ratios),
               "ratio_min": min(ratios), "ratio_max": max(ratios), "lightning_runs": lit, "plain_runs": plain}
        results["configs"][name] = res
        print(f"{name}: lightning {res['lightning_img_s']:.1f} img/s, plain {res['plain_img_s']:.1f} img/s, "
              f"ratio {res['ratio_median']:.3f} (min {res['ratio_min']:.3f}, max {res['ratio_max']:.3f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
