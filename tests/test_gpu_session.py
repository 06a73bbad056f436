"""``benchmarks/gpu_session.sh``, part ``zoo``, dry-run on the CPU: a recipe trains with its metrics curve, is exported
and measured, comes back in 15 MiB parts, and joins a zoo through ``export_pretrained.py --import``; the yardstick
trains beside it and both curves come back in one table and figure."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from gan_zoo import pretrained as zoo
from tests.conftest import needs_fmnist

ROOT = Path(__file__).resolve().parents[1]


@needs_fmnist
@pytest.mark.slow
def test_the_zoo_part_trains_exports_and_returns_an_importable_entry(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "ACC": "cpu", "ZOO": "dcgan.fmnist32", "ZOO_IMAGES": "256", "ZOO_EVERY": "128",
           "ZOO_ARGS_dcgan": "--metric-samples 200", "YARDSTICK_ARGS": "--metric-samples 200", "ZOO_EXPORT_N": "200",
           "OUT": str(out)}
    run = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_session.sh"), "zoo"], env=env, capture_output=True,
                         text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-2000:]
    status = (out / "results" / "status.txt").read_text()
    assert "zoo fit dcgan.fmnist32: exit 0" in status and "zoo export dcgan.fmnist32: exit 0" in status
    assert "zoo yardstick: exit 0" in status and "zoo curves: exit 0" in status
    # the curve comes back in results.tgz, without checkpoints or the exported weights
    with tarfile.open(out / "results.tgz") as t:
        names = t.getnames()
        curve = t.extractfile("results/zoo/dcgan.fmnist32/logs/metrics.csv").read().decode()
    assert not any(n.endswith((".ckpt", ".pt")) for n in names)
    header, *rows = curve.strip().splitlines()
    columns = header.split(",")
    fid, kimg = columns.index("metrics/fid200_fmnist-cnn_test"), columns.index("train/kimg")
    assert [float(r.split(",")[kimg]) for r in rows if r.split(",")[fid]] == [0.128, 0.256]
    # beside it the yardstick's curve, and both in one table and figure
    assert "results/zoo/yardstick/logs/metrics.csv" in names and "results/zoo_fid.png" in names
    table = (out / "results" / "zoo_table.md").read_text().splitlines()
    assert [row.split(" | ")[0] for row in table[2:]] == ["| dcgan.fmnist32", "| yardstick (yardstick)"]
    # the export comes back in parts and joins a zoo
    parts = sorted(out.glob("zoo.tgz.*"))
    assert parts and all(p.stat().st_size <= 15 * 2 ** 20 for p in parts)
    export = tmp_path / "export"
    export.mkdir()
    subprocess.run(f"cat {' '.join(map(str, parts))} | tar xz -C {export}", shell=True, check=True)
    target = tmp_path / "zoo"
    target.mkdir()
    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_pretrained.py"), "--import", str(export), "--out",
                    str(target), "--grid-dir", str(tmp_path / "grids")], check=True, capture_output=True)
    entry = json.loads((target / zoo.MANIFEST).read_text())["dcgan.fmnist32"]
    assert entry["images_seen"] == 256 and (target / entry["file"]).is_file()
    assert entry["trained_on"] == "CPU"
