#!/usr/bin/env bash
# Train zoo entries from their recipes, one after another: scripts/train_zoo.sh pggan.fmnist32 lsgan.fmnist32 ...
# Each run goes to runs/zoo/<name>; export it afterwards with scripts/export_pretrained.py (see the recipe's header).
set -uo pipefail
cd "$(dirname "$0")/.."
for name in "$@"; do
    echo "[$(date -u +%H:%M:%S)] training $name"
    python scripts/fit.py --config "configs/zoo/$name.yaml" --out "runs/zoo/$name" --no-progress-bar \
        > "runs/zoo/$name.log" 2>&1 || echo "[$(date -u +%H:%M:%S)] $name FAILED (runs/zoo/$name.log)"
done
echo "[$(date -u +%H:%M:%S)] done"
