"""Do ``channels_last``, another Adam implementation or ``torch.compile`` make a GAN training step faster here?

Times one DCGAN training step (D step on real vs G(z), G step through the frozen D reusing G's forward, EMA update:
the step of ``gan_zoo.models.alternating``) written as a plain loop, in several variants that change only *how* the
same arithmetic runs:

    base           the library's defaults: Adam with torch's default implementation, NCHW tensors, eager
    foreach        Adam(foreach=True): one multi-tensor kernel per optimizer state update instead of one per parameter
    fused          Adam(fused=True): the fused kernel (CPU support since torch 2.4)
    channels_last  networks and batches in channels-last memory format
    compile        G and D compiled in place (``nn.Module.compile()``: state-dict keys unchanged); compile time is
                   spent in the warm-up batches and not timed

Runs alternate between variants in rounds (the order rotates each round), each run building fresh networks from the
same seed and timing ``--steps`` batches after ``--warmup``; reported are the median images/s per variant and the
median of the per-round ratios variant / base (above 1: faster than base), with min-max.

    python -m benchmarks.speed_options --config fmnist32 --steps 30 --repeats 5
    python -m benchmarks.speed_options --config canonical64 --variants base,fused,compile --steps 10 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gan_zoo.base import ema_step_  # noqa: E402
from gan_zoo.losses import bce_d_loss, ns_g_loss  # noqa: E402
from gan_zoo.networks.dcgan import DCGANDiscriminator, DCGANGenerator  # noqa: E402

VARIANTS = ("base", "foreach", "fused", "channels_last", "compile")
CONFIGS = {  # channels, resolution, latent, ngf, ndf, batch
    "fmnist32": (1, 32, 100, 64, 64, 64),
    "canonical64": (3, 64, 100, 64, 64, 64),
    "tiny": (1, 16, 16, 8, 8, 8),  # for the tests
}


def run(variant: str, config: str, warmup: int, steps: int, seed: int = 0, weights: dict | None = None) -> float:
    """Images/s of ``steps`` DCGAN training steps (after ``warmup``) in one variant; with ``weights`` (a dict) the
    trained G and D state dicts are stored in it too."""
    c, r, nz, ngf, ndf, bs = CONFIGS[config]
    torch.manual_seed(seed)
    G = DCGANGenerator(latent_dim=nz, channels=c, resolution=r, ngf=ngf)
    D = DCGANDiscriminator(channels=c, resolution=r, ndf=ndf)
    G_ema = DCGANGenerator(latent_dim=nz, channels=c, resolution=r, ngf=ngf).requires_grad_(False).eval()
    G_ema.load_state_dict(G.state_dict())
    fmt = torch.channels_last if variant == "channels_last" else torch.contiguous_format
    if variant == "channels_last":
        G, D, G_ema = (m.to(memory_format=fmt) for m in (G, D, G_ema))
    opt_kw = {"foreach": {"foreach": True}, "fused": {"fused": True}}.get(variant, {})
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), **opt_kw)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), **opt_kw)
    if variant == "compile":
        G.compile()
        D.compile()
    batches = [torch.randint(0, 256, (bs, c, r, r), dtype=torch.uint8) for _ in range(4)]
    G.train()
    D.train()
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            t0 = time.perf_counter()
        real = (batches[i % len(batches)].float() / 127.5 - 1.0).contiguous(memory_format=fmt)
        fake = G(torch.randn(bs, nz))
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
        with torch.no_grad():
            ema_step_(G_ema, G, 0.999, i)
    speed = steps * bs / (time.perf_counter() - t0)
    if weights is not None:
        weights.update({f"G.{k}": v.detach().contiguous() for k, v in G.state_dict().items()})
        weights.update({f"D.{k}": v.detach().contiguous() for k, v in D.state_dict().items()})
    return speed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", choices=sorted(CONFIGS), default="fmnist32")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list from {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or "base" not in variants:
        p.error(f"--variants must include base and name only {', '.join(VARIANTS)} (got {args.variants!r})")
    if args.threads:
        torch.set_num_threads(args.threads)
    runs: dict[str, list[float]] = {v: [] for v in variants}
    for rep in range(args.repeats):
        k = rep % len(variants)
        for v in variants[k:] + variants[:k]:
            runs[v].append(run(v, args.config, args.warmup, args.steps))
            print(f"round {rep + 1}/{args.repeats} {v:14s} {runs[v][-1]:8.1f} img/s", file=sys.stderr, flush=True)
    result = {"config": args.config, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "argv": sys.argv, "variants": {}}
    print(f"\nDCGAN {args.config}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.steps} steps after {args.warmup}, {args.repeats} rounds")
    print(f"| variant | img/s (median) | ratio to base (median, min-max) |\n|---|---|---|")
    for v in variants:
        ratios = [a / b for a, b in zip(runs[v], runs["base"])]
        result["variants"][v] = {"img_per_s": runs[v], "median": statistics.median(runs[v]),
                                 "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                                 "ratio_max": max(ratios)}
        print(f"| {v} | {statistics.median(runs[v]):.1f} | {statistics.median(ratios):.3f} "
              f"({min(ratios):.3f}-{max(ratios):.3f}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
