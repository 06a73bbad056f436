"""``scripts/sample.py``: a sample grid (or latent walks) from a pretrained model, with no data set and no logger.

    python scripts/sample.py --pretrained dcgan.fmnist32 --n 64 --seed 0 --out grid.png
    python scripts/sample.py --pretrained pggan.fmnist32 --interpolate --n 64 --steps 8 --out walk.png
    python scripts/sample.py --ckpt runs/x/checkpoints/last.ckpt --n 64 --out grid.png

``--pretrained`` takes a zoo name (``gan_zoo.list_pretrained()``) or the path of an exported ``.pt`` file; ``--ckpt``
a training checkpoint written by fit.py. With ``--interpolate`` each row is a walk of ``--steps`` images along the
great circle (slerp) between two random latents, ``--n // --steps`` rows. ``--save-tensor`` also writes the images
as a ``(N, C, H, W)`` tensor in [-1, 1] (``torch.save``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.utils import save_image

from gan_zoo.callbacks.samples import image_grid
from gan_zoo.checkpoint_io import atomic_torch_save
from gan_zoo.cli import Parser, UserError, check_member, resolve_device, run_main
from gan_zoo.evaluate import load_model


def build_parser() -> Parser:
    p = Parser(prog="sample.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--pretrained", help="zoo entry name, or path of an exported .pt file")
    src.add_argument("--ckpt", help="a training checkpoint (.ckpt) written by fit.py")
    p.add_argument("--n", type=int, default=64, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (same seed, same images on any device)")
    p.add_argument("--out", default="samples.png", help="PNG file to write")
    p.add_argument("--nrow", type=int, default=None, help="images per row (default: square grid)")
    p.add_argument("--interpolate", action="store_true", help="latent walks instead of independent samples")
    p.add_argument("--steps", type=int, default=8, help="images per walk with --interpolate")
    p.add_argument("--member", type=int, default=None,
                   help="sample generator i (1..N) alone: ensemble_sgan: local generator i instead of the global "
                   "one; egan: parent i instead of the whole population")
    p.add_argument("--device", default="auto", help="auto (the GPU where there is one), cpu, cuda, cuda:1, mps ...")
    p.add_argument("--save-tensor", default=None, help="also save the images as a tensor file")
    return p


def slerp(a, b, t):
    """Spherical interpolation between latent batches ``a`` and ``b`` (N, D) at fractions ``t`` (T,) -> (N, T, D);
    falls back to linear interpolation where the two are (anti)parallel."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]  # (N, 1, 1)
    t = t[None, :, None]
    so = torch.sin(omega)
    lin = (1 - t) * a[:, None] + t * b[:, None]
    sl = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / so.clamp_min(1e-7)
    return torch.where(so > 1e-4, sl, lin)


def make_images(model, n: int, seed: int, interpolate: bool = False, steps: int = 8, member: int | None = None):
    """``n`` samples, or ``n // steps`` latent walks of ``steps`` images each, from ``model``."""
    if n < 1:
        raise UserError(f"--n must be >= 1, got {n}")
    if member is not None:
        check_member(model, member)
        if interpolate:
            raise UserError("--member and --interpolate cannot be combined")
        return model.sample(n, seed=seed, member=member)
    if not interpolate:
        return model.sample(n, seed=seed)
    if steps < 2:
        raise UserError(f"--steps must be >= 2, got {steps}")
    rows = max(1, n // steps)
    gen = torch.Generator().manual_seed(seed)
    ends = model.sample_latent(2 * rows, generator=gen)
    z = slerp(ends[:rows], ends[rows:], torch.linspace(0, 1, steps)).reshape(rows * steps, -1)
    return model.generate(z.to(model.device))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.device = resolve_device(args.device)
    model = load_model(args)[0]
    images = make_images(model, args.n, args.seed, args.interpolate, args.steps, args.member).cpu()
    if images.dim() != 4:
        raise UserError(f"{model.model_name} generates vectors {tuple(images.shape[1:])}, not images: use "
                        "scripts/evaluate.py --metrics toy for the 2D toys")
    nrow = args.nrow or (args.steps if args.interpolate else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(image_grid(images, nrow), out)
    print(f"wrote {out} ({len(images)} images, {tuple(images.shape[1:])})", file=sys.stderr)
    if args.save_tensor:
        atomic_torch_save(images.contiguous(), args.save_tensor)
        print(f"wrote {args.save_tensor}", file=sys.stderr)
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)
