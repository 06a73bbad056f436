"""Can a BiGAN / BigBiGAN discriminator tell which code goes with which image? Train D alone and watch.

    python -m benchmarks.lab.bigan_pairing --ckpt runs/bigan/checkpoints/last.ckpt --steps 300 --negatives shuffled

From a checkpoint, D takes ``--steps`` Adam steps (fresh state, the model's D learning rate and betas) on random
batches of the train split, with E and G frozen (eval mode). The negatives are one of:

- ``generator``: generator pairs (G(z), z) against the encoder pairs (x, E(x)), the model's own D loss: what D sees in
  training, with E and G held still;
- ``shuffled``: the same images with their codes shuffled among them, against the encoder pairs. Only the pairing
  separates the two, so this asks whether D *can* learn it.

Every ``--every`` steps it prints D's loss and ``d_pairing_gap`` (``gan_zoo.callbacks.encoder.inversion_metrics``: D's
joint score on (x, E(x)) minus that with the codes shuffled) on the first ``--n-test`` test images. If D learns the
pairing with ``shuffled`` negatives but not with ``generator`` ones, then D separates the generator pairs by the image
alone, and the E+G step gets no signal to invert G. The checkpoint file is not changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a file (python benchmarks/lab/bigan_pairing.py): gan_zoo from the root
    sys.path.insert(0, str(ROOT))

from gan_zoo.cli import UserError, run_main  # noqa: E402

NEGATIVES = ("generator", "shuffled")


def train_d_only(model, x_train, x_test, steps: int, negatives: str = "generator", batch_size: int = 64,
                 seed: int = 0, every: int = 50) -> list[dict]:
    """Train ``model.discriminator`` alone (in place) for ``steps`` steps; return ``{"step", "loss_d",
    "d_pairing_gap"}`` at step 0 (no loss yet) and every ``every`` steps. ``x_train`` / ``x_test``: uint8 images."""
    import torch

    from gan_zoo.datamodules.base import to_float
    from gan_zoo.callbacks.encoder import pairing_gap

    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {', '.join(NEGATIVES)}, got {negatives!r}")
    d, e, g = model.discriminator, model.encoder, model.generator
    opt = model.adam(d.parameters(), d=True)
    gen = torch.Generator().manual_seed(seed)

    def gap() -> float:
        return pairing_gap(model, x_test, seed=seed)

    rows = [{"step": 0, "loss_d": None, "d_pairing_gap": gap()}]
    e.eval()
    g.eval()
    for step in range(1, steps + 1):
        real = to_float(x_train[torch.randint(0, len(x_train), (batch_size,), generator=gen)]).to(model.device)
        with torch.no_grad():
            codes = e(real, sample=False)
            if negatives == "generator":
                z = model.sample_latent(batch_size, generator=gen, device=model.device)
                neg = (g(z), z)
            else:
                neg = (real, codes[torch.randperm(batch_size, generator=gen).to(codes.device)])
        d.train()
        loss = model.d_loss(d(real, codes), d(*neg))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0 or step == steps:
            rows.append({"step": step, "loss_d": float(loss.detach()), "d_pairing_gap": gap()})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="a bigan or bigbigan checkpoint written by scripts/fit.py")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--negatives", default="generator", choices=NEGATIVES)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--every", type=int, default=50, help="steps between measurements")
    p.add_argument("--n-test", type=int, default=2000, help="test images the pairing gap is measured on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="directory searched first for the data set the model was "
                   "trained on (then $GAN_ZOO_DATA, the default root)")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args(argv)
    if min(args.steps, args.every, args.batch_size, args.n_test) < 1:
        raise UserError("--steps, --every, --batch-size and --n-test must be >= 1")
    import torch

    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.evaluate import load_training_checkpoint

    torch.manual_seed(args.seed)
    model, data, seen = load_training_checkpoint(args.ckpt)
    if model.encode is None:
        raise UserError(f"{args.ckpt} is a {model.model_name!r} checkpoint; this diagnosis is for bigan and bigbigan")
    dm = get_datamodule(data["name"], resolution=data["resolution"], channels=data["channels"],
                        resize_mode=data.get("resize_mode", "resize"), data_dir=args.data_dir)
    dm.prepare_data()
    x_train, _ = dm.split("train")
    x_test = dm.split("test")[0][: args.n_test]
    rows = train_d_only(model, x_train, x_test, args.steps, args.negatives, args.batch_size, args.seed, args.every)
    for r in rows:
        loss = "" if r["loss_d"] is None else f"  loss/d {r['loss_d']:.4f}"
        print(f"step {r['step']:>5}  d_pairing_gap {r['d_pairing_gap']:.3f}{loss}")
    if args.json:
        Path(args.json).write_text(json.dumps({"ckpt": args.ckpt, "model": model.model_name, "images_seen": seen,
                                               "negatives": args.negatives, "batch_size": args.batch_size,
                                               "n_test": len(x_test), "seed": args.seed, "rows": rows}, indent=2)
                                   + "\n")
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)


if __name__ == "__main__":
    sys.exit(cli())
