#!/usr/bin/env python
"""Train a GAN: ``python scripts/fit.py --model dcgan`` (``--help`` lists models, data sets and options)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from gan_zoo.fit import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
