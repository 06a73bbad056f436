#!/usr/bin/env python
"""Train a domain feature extractor (``fmnist-cnn`` or ``mnist-cnn``) and export it to ``checkpoints/``.

    python scripts/train_extractor.py --name fmnist-cnn --data fashion_mnist --epochs 12
    python scripts/train_extractor.py --name mnist-cnn --data mnist5k --epochs 15

Recipe: Adam (lr 1e-3, cosine decay to 0), batch 128, batch norm, dropout 0.3, random horizontal flips for Fashion-MNIST only
(digits are not flip-invariant), seed 0. The export is the state dict alone (weights-only), named
``<name>-<first 8 hex of sha256>.pt``, and recorded with its sha256, test accuracy and recipe in
``checkpoints/extractors.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gan_zoo.datamodules import get_datamodule  # noqa: E402
from gan_zoo.datamodules.base import to_float  # noqa: E402
from gan_zoo.networks.classifier import DomainCNN  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@torch.no_grad()
def accuracy(model: DomainCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(to_float(xb)).argmax(1) for xb in x.split(1000)])
    return (pred == y).float().mean().item()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, choices=["fmnist-cnn", "mnist-cnn"])
    p.add_argument("--data", required=True, help="fashion_mnist, mnist or mnist5k")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "checkpoints"))
    args = p.parse_args(argv)

    torch.manual_seed(args.seed)
    dm = get_datamodule(args.data, data_dir=args.data_dir)
    x, y = dm.split("train")
    xt, yt = dm.split("test")
    flip = args.data == "fashion_mnist"
    model = DomainCNN()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * (len(x) // args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for b in range(len(x) // args.batch_size):
            idx = perm[b * args.batch_size : (b + 1) * args.batch_size]
            xb = to_float(x[idx])
            if flip:
                mask = torch.rand(len(idx), generator=g) < 0.5
                xb[mask] = xb[mask].flip(-1)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.3f}, test acc {accuracy(model, xt, yt):.4f}, "
              f"{time.time() - t0:.0f}s", file=sys.stderr)
    acc = accuracy(model, xt, yt)
    buf = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, buf)
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{args.name}-*.pt"):
        old.unlink()
    fname = f"{args.name}-{sha[:8]}.pt"
    (out / fname).write_bytes(data)
    manifest_path = out / "extractors.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    manifest[args.name] = {
        "file": fname, "sha256": sha, "size": len(data), "architecture": "DomainCNN",
        "num_features": DomainCNN.num_features, "test_accuracy": round(acc, 4),
        "trained_on": f"{args.data} train split ({len(x)} images); accuracy on its test split ({len(xt)} images)",
        "recipe": "python scripts/train_extractor.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "train_seconds": round(time.time() - t0), "torch": torch.__version__,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{fname}: test accuracy {acc:.4f}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
