#!/usr/bin/env python
"""Export a trained run as a zoo entry: ``python scripts/export_pretrained.py RUN --name NAME --recipe YAML``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gan_zoo.export import cli  # noqa: E402

if __name__ == "__main__":
    sys.exit(cli())
