#!/usr/bin/env python
"""Linear-probe accuracy of trained BiGAN / BigBiGAN encoders against a randomly initialised encoder of the same
architecture and against raw pixels.

    python -m benchmarks.probe_benchmark --ckpt runs/bigbigan/checkpoints/last.ckpt [--ckpt ...] --json probe.json

For each checkpoint: logistic regression (gan_zoo.metrics.probe) on the frozen encoder's pooled features and on its
latent E(x), fit on the train split of the data set the model was trained on, accuracy on the test split, and the
1-nearest-neighbour accuracy on the same features (cosine similarity, centred on the train mean); the same for the
architecture at its random initialisation (seed 0); once, for the raw pixels. Then how well E inverts G
(gan_zoo.callbacks.encoder.inversion_metrics: cosine of z and E(G(z)); the % of test images whose reconstruction G(E(x))
the data set's classifier assigns to the image's label; how much D's joint score drops when the codes are shuffled
among the images), for the trained model and for its trained G and D with the encoder at its random initialisation.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file (python benchmarks/probe_benchmark.py): gan_zoo from the root
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    import torch

    from gan_zoo.datamodules import get_datamodule
    from gan_zoo.evaluate import load_model, probe_classifier
    from gan_zoo.callbacks.encoder import inversion_metrics, probe_model
    from gan_zoo.metrics.probe import linear_probe, nearest_neighbour_accuracy

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", action="append", required=True)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--n-train", type=int, default=None, help="probe training images (default: the train split)")
    p.add_argument("--data-dir", default=None, help="directory searched first for the data set the models were "
                   "trained on (then $GAN_ZOO_DATA, the default root)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows, dm = [], None
    for path in args.ckpt:
        ns = argparse.Namespace(ckpt=path, pretrained=None, device=args.device)
        model, data, seen = load_model(ns)
        dm = get_datamodule(data["name"], resolution=data["resolution"], channels=data["channels"],
                            resize_mode=data.get("resize_mode", "resize"), data_dir=args.data_dir)
        dm.prepare_data()
        t0 = time.perf_counter()
        trained = probe_model(model, dm, args.n_train, device=args.device, nearest_neighbour=True)
        torch.manual_seed(0)
        fresh = type(model)(**dict(model.hparams)).to(args.device).eval()
        random_init = probe_model(fresh, dm, args.n_train, device=args.device, nearest_neighbour=True)
        # inversion: the trained model, and its trained G with the encoder at its random initialisation
        classifier, ext_name = probe_classifier(data["name"], device=args.device)
        x_te, y_te = dm.split("test")
        random_e = copy.deepcopy(model)
        random_e.encoder.load_state_dict(fresh.encoder.state_dict())
        row = {"ckpt": path, "model": model.model_name, "images_seen": seen,
               "trained": {k: v["test_acc"] for k, v in trained.items()},
               "random_init": {k: v["test_acc"] for k, v in random_init.items()},
               "trained_1nn": {k: v["nn1_acc"] for k, v in trained.items()},
               "random_init_1nn": {k: v["nn1_acc"] for k, v in random_init.items()},
               "inversion": inversion_metrics(model, x_te, y_te, classifier),
               "inversion_random_encoder": inversion_metrics(random_e, x_te, y_te, classifier),
               "classifier": ext_name,
               "dims": {k: v["dim"] for k, v in trained.items()}, "seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    from gan_zoo.datamodules.base import subset_indices

    x_tr, y_tr = dm.split("train")
    idx = subset_indices(len(x_tr), args.n_train)
    x_te, y_te = dm.split("test")
    flat = lambda x: x.flatten(1).float() / 127.5 - 1.0  # noqa: E731
    p_tr, p_te = flat(x_tr[idx]), flat(x_te)
    pixels = linear_probe(p_tr, y_tr[idx], p_te, y_te, device=args.device)
    pixels["nn1_acc"] = nearest_neighbour_accuracy(p_tr, y_tr[idx], p_te, y_te)
    out = {"rows": rows, "pixels": pixels, "data": dm.name, "resolution": dm.resolution,
           "n_train": args.n_train or len(x_tr), "protocol": "logistic regression, L-BFGS 200 iterations, L2 1e-4, "
           "standardised features; train split -> test split accuracy (%); 1-NN: cosine similarity of features "
           "centred on the train mean"}
    print(json.dumps({"pixels": pixels}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
