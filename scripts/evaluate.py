#!/usr/bin/env python
"""Evaluate a generator: ``python scripts/evaluate.py --ckpt PATH --metrics fid,is,kid`` (``--help`` for more)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_zoo.evaluate import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
