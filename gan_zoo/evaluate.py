"""``scripts/evaluate.py``: FID / IS / KID (or toy mode coverage) of a trained generator.

    python scripts/evaluate.py --ckpt runs/x/checkpoints/last.ckpt --metrics fid,is,kid --n 10000
    python scripts/evaluate.py --ckpt runs/toy/checkpoints/last.ckpt --metrics toy
    python scripts/evaluate.py --ckpt runs/bigan/checkpoints/last.ckpt --metrics probe   # or inversion

Prints a table and writes JSON (``--out``, default beside the checkpoint) with every protocol detail: number of
generated and real images, extractor and its sha256, real split, resize settings, cache status, seed, versions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import torchmetrics

from gan_zoo.callbacks.encoder import inversion_metrics, probe_model
from gan_zoo.callbacks.metrics import generate_and_update, real_features
from gan_zoo.cli import Parser, UserError, check_member, resolve_device, run_main
from gan_zoo.datamodules import get_datamodule
from gan_zoo.datamodules.base import subset_indices
from gan_zoo.metrics.extractors import default_extractor, load_extractor
from gan_zoo.metrics.image_metrics import MetricSuite, named_results, parse_metrics
from gan_zoo.metrics.toy import mode_metrics
from gan_zoo.pretrained import load_pretrained, load_training_checkpoint


def build_parser() -> Parser:
    p = Parser(prog="evaluate.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", help="a training checkpoint (.ckpt) written by fit.py")
    src.add_argument("--pretrained", help="a pretrained zoo entry (see gan_zoo.list_pretrained())")
    p.add_argument("--metrics", default="fid,is,kid",
                   help="comma list of fid, is, kid; or 'toy' (2D toys); or 'probe' (linear probe and 1-NN accuracy "
                        "of an encoder's features, and how well it inverts G); or 'inversion' (that last part only)")
    p.add_argument("--probe-train", type=int, default=None, help="probe: training images (default: the train split)")
    p.add_argument("--n", type=int, default=None,
                   help="generated images (default 10,000); toy: samples (default 2,500, the protocol's)")
    p.add_argument("--split", default="test", help="real split")
    p.add_argument("--n-real", type=int, default=None, help="real images (default: the whole split)")
    p.add_argument("--extractor", default="auto", help="fmnist-cnn, mnist-cnn, inception, or auto")
    p.add_argument("--inception-weights", default=None, help="path of the Inception weights file")
    p.add_argument("--data", default=None, help="data set (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help="directory searched first for the data set files")
    p.add_argument("--seed", type=int, default=0,
                   help="sampling seed; a fit's own metrics sample with its --seed, so pass that to reproduce them")
    p.add_argument("--member", type=int, default=None,
                   help="measure generator i (1..N) alone (toy, fid, is, kid): ensemble_sgan: local generator i "
                   "instead of the global one; egan: parent i instead of the whole population")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--device", default="auto", help="auto (the GPU where there is one), cpu, cuda, cuda:1, mps ...")
    p.add_argument("--out", default=None, help="JSON file to write the results to (default: beside --ckpt as "
                   "<name>.metrics.json; none for --pretrained)")
    return p


def probe_classifier(data: str, extractor: str = "auto", device="cpu"):
    """``(classifier, name)`` for the probe's reconstruction check: the data set's own domain CNN (``fmnist-cnn``,
    ``mnist-cnn``), whose logits are the data set's classes; ``(None, None)`` where there is none (Inception's
    logits are ImageNet's classes, not the data set's)."""
    name = default_extractor(data, extractor)
    if name == "inception":
        return None, None
    return load_extractor(name).to(device), name


def load_model(args):
    """The model and the data info it was trained with, from ``--ckpt`` or ``--pretrained``."""
    if args.pretrained:
        model = load_pretrained(args.pretrained, device=args.device)
        if not hasattr(model, "sample"):  # a metric extractor's name loads the extractor, not a GANModule
            raise UserError(f"{args.pretrained!r} is a feature extractor, not a generator")
        meta = model.pretrained_meta
        return model, dict(meta.get("data", {})), int(meta.get("images_seen", 0))
    return load_training_checkpoint(args.ckpt, args.device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.device = resolve_device(args.device)
    warnings.filterwarnings("ignore", message=r".*will save all extracted features.*")  # bounded by --n
    model, data, images_seen = load_model(args)
    name = args.data or data.get("name")
    if not name:
        raise UserError("the checkpoint does not say which data set it was trained on: pass --data")
    kw = dict(data_dir=args.data_dir)  # the user's (or $GAN_ZOO_DATA, the default root): a checkpoint names no paths
    if data.get("resolution"):
        kw.update(resolution=data["resolution"], channels=data["channels"], resize_mode=data.get("resize_mode", "resize"))
    dm = get_datamodule(name, **kw)
    dm.prepare_data()
    t0 = time.perf_counter()
    result = {"model": model.model_name, "images_seen": images_seen, "data": name, "split": args.split,
              "seed": args.seed, "source": args.ckpt or args.pretrained, "torch": torch.__version__,
              "torchmetrics": torchmetrics.__version__, "lightning": L.__version__}
    kind = args.metrics.strip().lower()
    if args.n is None:
        args.n = 2500 if kind == "toy" else 10_000
    member = {}
    if args.member is not None:
        if kind in ("probe", "inversion"):
            raise UserError(f"--member selects a generator; --metrics {kind} measures an encoder")
        check_member(model, args.member)
        member = {"member": args.member}
        result["member"] = args.member
    if kind in ("probe", "inversion"):
        if model.encode is None:
            raise UserError(f"--metrics {kind} needs a model with an encoder (bigan, bigbigan), not "
                            f"{model.model_name!r}")
        if kind == "probe" and not dm.num_classes:
            raise UserError(f"--metrics probe needs a labeled data set, not {name!r}")
        protocol, metrics = [], {}
        if kind == "probe":
            res = probe_model(model, dm, args.probe_train, device=args.device, nearest_neighbour=True)
            protocol.append(f"logistic regression (L-BFGS, L2 1e-4, standardised features) on "
                            f"{args.probe_train or 'all'} train images, accuracy on the test split; 1-NN: cosine "
                            f"similarity of features centred on the train mean")
            metrics.update({**{f"metrics/{k}_acc": v["test_acc"] for k, v in res.items()},
                            **{f"metrics/{k}_1nn_acc": v["nn1_acc"] for k, v in res.items()}})
            result["feature_dims"] = {k: v["dim"] for k, v in res.items()}
        classifier, ext_name = probe_classifier(name, args.extractor, args.device) if dm.num_classes else (None, None)
        x_te, y_te = dm.split("test")
        idx = subset_indices(len(x_te), args.n_real)
        # a zoo entry keeps E and G, not D (pretrained.py): its D is untrained, so no pairing gap
        pairing = args.pretrained is None
        inv = inversion_metrics(model, x_te[idx], y_te[idx], classifier, n_latent=args.n, seed=args.seed,
                                pairing=pairing)
        protocol.append(f"inversion: cosine of z and E(G(z)) over {inv['n_latent']} prior draws; % of "
                        f"{inv['n_images']} test images whose G(E(x)) the {ext_name or 'no'} classifier assigns to "
                        f"the image's label; " + ("D's joint score on (x, E(x)) minus that with the codes shuffled"
                                                  if pairing else "no pairing gap (a zoo entry has no trained D)"))
        metrics.update({f"metrics/{k}": v for k, v in inv.items() if not k.startswith("n_")})
        result.update(protocol="; ".join(protocol), metrics=metrics, classifier=ext_name)
    elif kind == "toy":
        if dm.is_image:
            raise UserError(f"--metrics toy needs a 2D toy data set, not {name!r}")
        torch.manual_seed(args.seed)
        res = mode_metrics(model.sample(args.n, seed=args.seed, **member), dm.modes(), dm.std)
        result.update(protocol=f"{args.n} samples, high quality within 3 std of the nearest mode",
                      metrics={"toy/modes": res["modes"], "toy/num_modes": res["num_modes"],
                               "toy/hq_percent": 100 * res["hq"], "toy/reverse_kl": res["reverse_kl"]},
                      mode_counts=res["counts"])
    else:
        metrics = parse_metrics(args.metrics)
        ext_name = default_extractor(name, args.extractor)
        extractor = load_extractor(ext_name, args.inception_weights).to(args.device)
        suite = MetricSuite(extractor, metrics).to(args.device)
        feats, status = real_features(dm, args.split, args.n_real, extractor, device=args.device)
        suite.set_real_features(feats.to(args.device))
        generate_and_update(suite, model, args.n, args.seed, 0, 1, args.batch_size, progress="generating", **member)
        res = suite.compute(args.n)
        result.update(extractor=ext_name, extractor_sha256=extractor.sha256, resize=extractor.resize_note,
                      n_fake=args.n, n_real=len(feats), real_stats_cache=status,
                      metrics=named_results(res, args.n, ext_name, args.split))
    result["seconds"] = round(time.perf_counter() - t0, 2)
    width = max(len(k) for k in result["metrics"])
    for k, v in result["metrics"].items():
        print(f"{k:<{width}}  {v:.4f}")
    print(f"({result['seconds']} s)", file=sys.stderr)
    out = Path(args.out) if args.out else (Path(args.ckpt).with_suffix(".metrics.json") if args.ckpt else None)
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)
