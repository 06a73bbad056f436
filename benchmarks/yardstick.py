"""The zoo's yardstick: a plain PyTorch DCGAN (no Lightning, no EMA) trained on the zoo's data with the zoo's metric
protocol, so every entry's FID curve has a reference beside it.

    python -m benchmarks.yardstick --out runs/zoo/yardstick              # 600k images, FID / IS every 50k
    python -m benchmarks.yardstick --out runs/zoo/yardstick --device cuda

The networks are the zoo DCGAN's at the data's resolution (``ngf = ndf = 64``, batch norm in both), trained by the
benchmarks' plain loop (``benchmarks.plain_loops.dcgan_step``: BCE for D, the non-saturating loss for G) with the
PyTorch DCGAN example's settings: batch 64, Adam lr 2e-4, betas (0.5, 0.999), samples from the raw generator. Every
``--every-images`` images and at the end it measures FID / IS of ``--metric-samples`` samples against the test split
with ``--extractor`` (the zoo's protocol, the same metric names as a fit's) and writes:

- ``logs/metrics.csv``: one row per evaluation (``step`` = images seen, ``train/kimg``, ``time/train_seconds`` = the
  seconds spent in training steps, the metrics), the format of a fit's CSV log, which ``benchmarks/zoo_curves.py``
  reads;
- ``samples/samples_<images seen, 9 digits>.png``: a grid of 64 samples of fixed latents;
- ``last.pt``: weights, optimizer states, the data order's position, the RNG state and the rows so far (written
  atomically at every evaluation and when SIGTERM / SIGINT stops the run). Running the same command again resumes from
  it; a ``last.pt`` made with other settings is refused.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import sys
import time
from pathlib import Path

import torch
from torchvision.utils import save_image
from tqdm.auto import tqdm

from benchmarks.plain_loops import dcgan_step
from datamodules import get_datamodule
from gan_zoo import get_model
from gan_zoo.callbacks.metrics import generate_and_update, real_features
from gan_zoo.callbacks.samples import image_grid
from gan_zoo.checkpoint_io import atomic_torch_save, read_weights
from gan_zoo.errors import CheckpointError, DataError, UnknownNameError, UserError
from gan_zoo.metrics.extractors import load_extractor
from gan_zoo.metrics.image_metrics import MetricSuite, named_results

# what a resumed run must share with the run that wrote last.pt
SETTINGS = ("data", "resolution", "batch_size", "every_images", "metric_samples", "extractor", "seed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.yardstick", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="run directory (resumed when it holds last.pt)")
    p.add_argument("--data", default="fashion_mnist")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-images", type=int, default=600_000)
    p.add_argument("--every-images", type=int, default=50_000, help="images between evaluations")
    p.add_argument("--metric-samples", type=int, default=10_000)
    p.add_argument("--extractor", default="fmnist-cnn")
    p.add_argument("--seed", type=int, default=0, help="initial weights, data order and training noise")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when there is one)")
    p.add_argument("--no-progress-bar", dest="progress_bar", action="store_false")
    return p


class _Stop:
    """Remembers a SIGTERM / SIGINT so the loop can checkpoint before it exits."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGINT):
            self._old[s] = signal.signal(s, self._catch)
        return self

    def _catch(self, signum, frame) -> None:
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = sorted({k for r in rows for k in r})
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1 or args.max_images < 1 or args.every_images < 0 or args.metric_samples < 2:
        raise UserError("need --batch-size >= 1, --max-images >= 1, --every-images >= 0 and --metric-samples >= 2")
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    out = Path(args.out)
    settings = {k: getattr(args, k) for k in SETTINGS}

    last = out / "last.pt"
    state = read_weights(last, "the yardstick's last.pt") if last.exists() else None
    if state is not None and state.get("settings") != settings:
        saved = state.get("settings") or {}
        diff = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
        raise CheckpointError(f"{last} was written with other settings (saved, now): {diff}; use another --out")

    dm = get_datamodule(args.data, resolution=args.resolution, batch_size=args.batch_size, seed=args.seed)
    dm.prepare_data()
    dm.setup("fit")
    if not dm.is_image:
        raise UserError(f"the yardstick trains on images; {args.data} is not an image data set")
    torch.manual_seed(args.seed)
    model = get_model("dcgan", resolution=dm.resolution, channels=dm.channels, ngf=64, ndf=64, lr=2e-4, beta1=0.5,
                      beta2=0.999, ema_decay=0.0).to(device)
    loader = dm.train_dataloader()
    step, opts = dcgan_step(model)
    epoch, seconds, rows = 0, 0.0, []
    fixed_z = model.sample_latent(64, generator=torch.Generator().manual_seed(args.seed), device=device)

    # before the resume: building the extractor draws from the global RNG, which the resume restores
    extractor = load_extractor(args.extractor)
    suite = MetricSuite(extractor, ("fid", "is")).to(device)
    feats, status = real_features(dm, "test", None, extractor, device=device)
    suite.set_real_features(feats.to(device), n_total=len(feats))
    print(f"real statistics ({dm.name}/test, {len(feats)} images, {extractor.name}): cache {status}", file=sys.stderr)

    if state is not None:
        model.load_state_dict(state["model"])
        for k, opt in opts.items():
            opt.load_state_dict(state["optimizers"][k])
        model.images_seen, epoch, seconds, rows = state["images_seen"], state["epoch"], state["seconds"], state["rows"]
        loader.load_state_dict(state["loader"])
        if state["loader"]["consumed"] >= len(loader):  # saved after the last batch of its epoch
            epoch += 1
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and "cuda_rng" in state:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        print(f"resumed {last} at {model.images_seen} images", file=sys.stderr)


    def save() -> None:
        state = {"settings": settings, "model": model.state_dict(),
                 "optimizers": {k: o.state_dict() for k, o in opts.items()}, "images_seen": model.images_seen,
                 "epoch": epoch, "seconds": seconds, "rows": rows, "loader": loader.state_dict(),
                 "rng": torch.get_rng_state()}
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        atomic_torch_save(state, last)

    def evaluate() -> None:
        suite.reset_fake()
        generate_and_update(suite, model, args.metric_samples, args.seed, 0, 1)
        row = {"step": model.images_seen, "train/kimg": model.images_seen / 1000, "time/train_seconds": seconds}
        row.update(named_results(suite.compute(args.metric_samples), args.metric_samples, extractor.name, "test"))
        rows.append(row)
        (out / "logs").mkdir(parents=True, exist_ok=True)
        _write_csv(out / "logs" / "metrics.csv", rows)
        (out / "samples").mkdir(parents=True, exist_ok=True)
        save_image(image_grid(model.generate(fixed_z)), out / "samples" / f"samples_{model.images_seen:09d}.png",
                   normalize=True, value_range=(-1, 1))
        print("  ".join(f"{k}={v:.6g}" for k, v in row.items()), file=sys.stderr)
        save()

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(vars(args), indent=1) + "\n")
    done = model.images_seen >= args.max_images
    bar = tqdm(total=args.max_images, initial=min(model.images_seen, args.max_images), unit="img", file=sys.stderr,
               disable=not args.progress_bar or done, dynamic_ncols=True, desc="yardstick")
    with _Stop() as stop, torch.enable_grad():
        model.train()
        while not done and stop.signum is None:
            loader.set_epoch(epoch)
            for i, batch in enumerate(loader):
                batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
                before = model.images_seen
                t0 = time.perf_counter()
                step(i, batch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                seconds += time.perf_counter() - t0
                bar.update(model.images_seen - before)
                done = model.images_seen >= args.max_images
                if args.every_images and model.images_seen // args.every_images > before // args.every_images \
                        and not done:
                    evaluate()
                if done or stop.signum is not None:
                    break
            else:
                epoch += 1
    bar.close()
    if stop.signum is not None and not done:
        save()
        print(f"stopped by signal {stop.signum} at {model.images_seen} images; {last} written, the same command "
              f"resumes", file=sys.stderr)
        return 128 + stop.signum
    if not rows or rows[-1]["step"] != model.images_seen:
        evaluate()
    fid = [v for k, v in rows[-1].items() if k.startswith("metrics/fid")]
    print(f"done: {model.images_seen} images, {seconds / model.images_seen * 1e5:.1f} training s per 100k images"
          + (f", FID {fid[0]:.2f}" if fid else ""), file=sys.stderr)
    return 0


def cli(argv=None) -> int:
    try:
        return main(argv)
    except (UserError, UnknownNameError, DataError, CheckpointError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
