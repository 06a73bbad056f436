#!/usr/bin/env python
"""Calibrate a domain extractor: the floor (real train images vs the test split) and the ceiling (uniform noise).

    python -m benchmarks.calibrate_metrics --data fashion_mnist --n 10000
    python -m benchmarks.calibrate_metrics --data mnist5k --n 1000

Each row uses the same protocol as training-time metrics: ``--n`` images (the first ``--n`` of the train split, or
``--n`` uniform-noise images in [-1, 1]) against the whole test split, FID / IS / KID on the data set's default
extractor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file (python benchmarks/calibrate_metrics.py): gan_zoo from the root
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from gan_zoo.datamodules import get_datamodule  # noqa: E402
from gan_zoo.callbacks.metrics import real_features  # noqa: E402
from gan_zoo.metrics.extractors import default_extractor, load_extractor  # noqa: E402
from gan_zoo.metrics.image_metrics import MetricSuite  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="fashion_mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--extractor", default="auto")
    args = p.parse_args(argv)
    dm = get_datamodule(args.data, data_dir=args.data_dir)
    name = default_extractor(args.data, args.extractor)
    extractor = load_extractor(name)
    feats, _ = real_features(dm, "test", None, extractor)
    sources = {
        "train split (floor)": dm.real_images("train", args.n),
        "uniform noise (ceiling)": torch.rand(args.n, dm.channels, dm.resolution, dm.resolution,
                                              generator=torch.Generator().manual_seed(0)) * 2 - 1,
    }
    print(f"| {args.data} / {name} | images | FID | IS | KID |\n|---|---|---|---|---|")
    for label, images in sources.items():
        t0 = time.perf_counter()
        suite = MetricSuite(extractor, ("fid", "is", "kid"))
        suite.set_real_features(feats)
        for b in images.split(500):
            suite.update(b)
        r = suite.compute(len(images))
        print(f"| {label} | {len(images)} vs {len(feats)} test | {r['fid']:.3f} | {r['is']:.3f} +- {r['is_std']:.3f} "
              f"| {r['kid']:.5f} +- {r['kid_std']:.5f} |  ({time.perf_counter() - t0:.1f} s)")
    test_is = MetricSuite(extractor, ("is",))
    for b in dm.real_images("test").split(500):
        test_is.update(b)
    print(f"IS of the test split itself: {test_is.compute(len(feats))['is']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
