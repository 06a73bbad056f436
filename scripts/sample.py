#!/usr/bin/env python
"""Sample a pretrained model: ``python scripts/sample.py --pretrained NAME --n 64 --out grid.png`` (``--help``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_zoo.sample import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
