"""``scripts/export_pretrained.py``: turn a trained run into a zoo entry, measured and recorded in the manifest.

    python scripts/export_pretrained.py runs/zoo/dcgan.fmnist32 --name dcgan.fmnist32 \\
        --recipe configs/zoo/dcgan.fmnist32.yaml

1. reads the run's ``checkpoints/last.ckpt`` (or the checkpoint given) and writes the weights-only export
   ``checkpoints/<name>-<sha8>.pt`` (a previous file of the same entry is removed);
2. measures the export with ``scripts/evaluate.py`` (FID / IS / KID of 10,000 samples against the test split with the
   data set's domain extractor; plus test accuracy of the classifier for the semi-supervised GAN and a linear probe
   of the encoder for BiGAN / BigBiGAN) and the small CI re-check (FID of ``--ci-n`` samples, seed 0);
3. writes a 64-sample grid to ``docs/pretrained/<name>.png``;
4. records the entry in ``checkpoints/zoo.json``: model, hyperparameters, data set, resolution, images seen, sha256,
   size, parameter count, metrics with their protocol, recipe, library versions, license.

``--remeasure all --readme`` repeats step 2 on every shipped file and records the new values (after a change to a
metric), then regenerates the README's table.

``--import DIR`` takes entries exported elsewhere with ``--out DIR`` (on a GPU machine: ``benchmarks/gpu_session.sh``,
part ``zoo``) into the zoo: each file is checked against its recorded sha256 and size and loaded before anything is
copied, then copied with its sample grid, and its entry merged into the manifest.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import lightning as L
import torch
import torchmetrics
from torchvision.utils import save_image

import gan_zoo
from gan_zoo import pretrained as zoo
from gan_zoo import weights
from gan_zoo.callbacks.samples import image_grid
from gan_zoo.checkpoint_io import first_line
from gan_zoo.cli import Parser, UserError, run_main
from gan_zoo.datamodules import get_datamodule
from gan_zoo.datamodules.base import to_float
from gan_zoo.evaluate import main as evaluate_main
from gan_zoo.pretrained import load_training_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PAPERS = {"dcgan": "Radford et al. 2015", "lsgan": "Mao et al. 2016", "pggan": "Karras et al. 2017",
          "selfgan": "Wu 2019", "semisupgan": "Salimans et al. 2016", "bigan": "Donahue et al. 2016",
          "bigbigan": "Donahue & Simonyan 2019 (lite)", "egan": "Wang et al. 2018",
          "ensemble_sgan": "Chavdarova & Fleuret 2018"}
CI_N = 2000
# FID of 2,000 samples re-measured in CI must stay within 1 % of the recorded value. Separate processes on one machine
# measure the same value to 1e-7; the margin is for another machine's float arithmetic.
CI_RTOL = 0.01


def build_parser() -> Parser:
    p = Parser(prog="export_pretrained.py", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", help="a run directory (its checkpoints/last.ckpt) or a training checkpoint file")
    p.add_argument("--name", help="entry name <model>.<tag>, e.g. dcgan.fmnist32")
    p.add_argument("--recipe", help="the YAML config the run was trained from (kept in configs/)")
    p.add_argument("--readme", action="store_true",
                   help="only rewrite the README's table of pretrained models from the manifest")
    p.add_argument("--remeasure", nargs="+", metavar="NAME", default=None,
                   help="measure shipped entries again (or 'all') and record the new metrics in the manifest, keeping "
                   "their files (add --readme to regenerate the README's table from it)")
    p.add_argument("--import", dest="import_dir", metavar="DIR", default=None,
                   help="take the entries exported into DIR (with --out DIR, on another machine) into the zoo: each "
                   "file checked against its entry's sha256 and size, copied with its sample grid, its entry merged "
                   "into the manifest")
    p.add_argument("--out", default=None, help="directory the file and manifest go to (default: the zoo's checkpoints/)")
    p.add_argument("--grid-dir", default=str(ROOT / "docs" / "pretrained"), help="where the sample grid goes")
    p.add_argument("--n", type=int, default=10_000, help="generated images for the recorded metrics")
    p.add_argument("--ci-n", type=int, default=CI_N, help="generated images for the CI re-check")
    p.add_argument("--probe-train", type=int, default=10_000, help="encoders: train images of the linear probe")
    p.add_argument("--license", default="MIT", help="license of the weights")
    p.add_argument("--paper", default=None, help="the paper, for the README table (default: the model's)")
    p.add_argument("--trained-on", default="CPU (2 cores)", help="the machine the run trained on, for the record")
    p.add_argument("--notes", default="", help="free text kept in the entry")
    return p


def evaluate_export(path: Path, metrics: str, n: int, extra: list[str] | None = None) -> dict:
    """Run scripts/evaluate.py on an export file; its JSON result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "m.json"
        argv = ["--pretrained", str(path), "--metrics", metrics, "--n", str(n), "--seed", "0", "--out", str(out)]
        rc = evaluate_main(argv + list(extra or []))
        if rc != 0:
            raise UserError(f"evaluate.py {' '.join(argv)} failed ({rc})")
        return json.loads(out.read_text())


def classifier_accuracy(model, data: dict) -> float:
    """Test-split accuracy (%) of the semi-supervised GAN's classifier, as the fit's TestAccuracy callback logs it."""
    dm = get_datamodule(data["name"], resolution=data["resolution"], channels=data["channels"],
                        resize_mode=data.get("resize_mode", "resize"))
    dm.prepare_data()
    x, y = dm.split("test")
    correct = sum(int((model.classify(to_float(x[i:i + 1000])).argmax(1).cpu() == y[i:i + 1000]).sum())
                  for i in range(0, len(x), 1000))
    return 100.0 * correct / len(x)


def measure_export(path: Path, name: str, data: dict, args) -> tuple[dict, dict]:
    """``(metrics, ci_check)`` of an export file, as the manifest records them: FID / IS / KID of ``args.n``
    samples, the classifier's test accuracy or the encoder's linear probe where the model has one, and the FID of
    ``args.ci_n`` samples that CI re-measures."""
    ext = "fmnist-cnn" if data["name"] == "fashion_mnist" else None
    extra = ["--extractor", ext] if ext else []
    full = evaluate_export(path, "fid,is,kid", args.n, extra)
    ci = evaluate_export(path, "fid", args.ci_n, extra)
    ci_key = next(k for k in ci["metrics"] if k.startswith("metrics/fid"))
    metrics = {"values": full["metrics"],
               "protocol": f"scripts/evaluate.py --pretrained {name} --metrics fid,is,kid --n {args.n} --seed 0"
                           f"{' ' + ' '.join(extra) if extra else ''}: {args.n} generated images against the whole "
                           f"{full['split']} split ({full['n_real']} images), extractor {full['extractor']}"}
    loaded = zoo.load_pretrained(str(path))
    if loaded.classify is not None:
        metrics["values"]["metrics/test_acc"] = classifier_accuracy(loaded, data)
        metrics["protocol"] += "; test_acc: classify() (EMA of D) on the whole test split"
    if loaded.encode is not None:
        probe = evaluate_export(path, "probe", 0, ["--probe-train", str(args.probe_train)])
        metrics["values"].update(probe["metrics"])
        metrics["protocol"] += f"; probe: {probe['protocol']} (scripts/evaluate.py --metrics probe)"
    ci_check = {"metric": ci_key, "value": ci["metrics"][ci_key], "n": args.ci_n, "seed": 0,
                "extractor": ci["extractor"], "split": ci["split"], "rtol": CI_RTOL}
    return metrics, ci_check


def versions() -> dict[str, str]:
    return {"gan_zoo": gan_zoo.__version__, "torch": torch.__version__, "lightning": L.__version__,
            "torchmetrics": torchmetrics.__version__, "python": platform.python_version()}


def remeasure(names: list[str], args) -> None:
    """Measure shipped entries again (``--remeasure``) and record the new metrics, CI check and library versions in
    the manifest: after a fix to a metric, or to put every entry on the current protocol."""
    directory = Path(args.out) if args.out else weights.CHECKPOINTS
    manifest_file = directory / zoo.MANIFEST
    entries = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    names = sorted(entries) if names == ["all"] else names
    unknown = [n for n in names if n not in entries]
    if unknown:
        raise UserError(f"not in {manifest_file}: {', '.join(unknown)}; entries: {', '.join(sorted(entries))}")
    for name in names:
        entry = entries[name]
        path = weights.locate(entry["file"], entry["sha256"], name, UserError, entry.get("url"))
        metrics, ci_check = measure_export(path, name, entry["data"], args)
        with _locked(manifest_file):
            current = json.loads(manifest_file.read_text())
            current[name].update(metrics=metrics, ci_check=ci_check, versions=versions())
            zoo.write_manifest(current, manifest_file)
        print(f"{name}: " + ", ".join(f"{k.removeprefix('metrics/')} {v:.4f}" for k, v in metrics["values"].items()
                                      if not k.endswith("_std")) + f"; CI {ci_check['value']:.4f}")


def import_entries(source: Path, args) -> list[str]:
    """``--import DIR``: merge the entries of ``DIR/zoo.json`` (an export made with ``--out DIR``, e.g. on a GPU
    machine) into the zoo. Every entry is checked before anything is copied: its file must be in ``DIR`` with the
    recorded sha256 and size, its fields complete. Each file is copied atomically, with its sample grid (``DIR`` or
    the grid's recorded name in ``DIR``) into ``--grid-dir``; a previous file of the same entry is removed."""
    manifest = source / zoo.MANIFEST
    if not manifest.is_file():
        raise UserError(f"--import {source}: no {zoo.MANIFEST} there (export with --out {source} first)")
    incoming = json.loads(manifest.read_text())
    if not incoming:
        raise UserError(f"--import {source}: {manifest} holds no entries")
    for name, entry in incoming.items():
        missing = [f for f in zoo.REQUIRED_FIELDS if f not in entry]
        if missing:
            raise UserError(f"--import: entry {name} lacks {', '.join(missing)}")
        path = source / entry["file"]
        if not path.is_file():
            raise UserError(f"--import: entry {name}: {path} not found")
        if path.stat().st_size != entry["size"] or weights.sha256_file(path) != entry["sha256"]:
            raise UserError(f"--import: entry {name}: {path} does not match its recorded size and sha256 "
                            "(truncated or altered in transfer?)")
        try:
            zoo.load_pretrained(str(path))
        except Exception as e:  # noqa: BLE001 - any failure to load refuses the import, with its reason
            raise UserError(f"--import: entry {name}: {path} does not load: {first_line(e)}") from e
    directory = Path(args.out) if args.out else weights.CHECKPOINTS
    grid_dir = Path(args.grid_dir)
    grid_dir.mkdir(parents=True, exist_ok=True)
    manifest_file = directory / zoo.MANIFEST
    for name, entry in incoming.items():
        _copy_atomically(source / entry["file"], directory / entry["file"])
        grid = source / Path(entry.get("sample_grid") or f"{name}.png").name
        if grid.is_file():
            _copy_atomically(grid, grid_dir / f"{name}.png")
            target = (grid_dir / f"{name}.png").resolve()
            entry["sample_grid"] = str(target.relative_to(ROOT)) if target.is_relative_to(ROOT) else str(target)
        with _locked(manifest_file):
            entries = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
            old = entries.get(name, {}).get("file")
            entries[name] = entry
            zoo.write_manifest(entries, manifest_file)
        if old and old != entry["file"] and (directory / old).is_file():
            (directory / old).unlink()
        print(f"imported {name}: {entry['file']} ({entry['images_seen']} images seen)", file=sys.stderr)
    return sorted(incoming)


def _copy_atomically(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f, open(src, "rb") as g:
        shutil.copyfileobj(g, f)
    os.chmod(tmp, 0o644)
    os.replace(tmp, dst)


README_BEGIN = "<!-- pretrained-table: generated by scripts/export_pretrained.py --readme -->"
README_END = "<!-- /pretrained-table -->"


def _fmt(values: dict, prefix: str) -> str:
    hits = [v for k, v in values.items() if k.startswith(prefix) and not k.endswith("_std")]
    return f"{hits[0]:.1f}" if hits else "-"


def readme_table(entries: dict[str, dict]) -> str:
    """The README's table of pretrained models, from the manifest."""
    lines = [README_BEGIN, "",
             "| name | paper | resolution | images seen | FID 10k | IS 10k | also | samples (seed 0) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in sorted(entries):
        e = entries[name]
        v = e["metrics"]["values"]
        also = []
        if "metrics/test_acc" in v:
            labels = e["data"].get("num_labeled")
            also.append(f"test accuracy {v['metrics/test_acc']:.1f} %" + (f" ({labels} labels)" if labels else ""))
        for k, label in (("metrics/probe_acc", "probe (pooled features)"), ("metrics/probe_z_acc", "probe (latents)")):
            if k in v:
                also.append(f"linear {label} {v[k]:.1f} %")
        res = f"{e['resolution']}x{e['resolution']}x{e['channels']}"
        lines.append(f"| `{name}` | {e['paper']} | {res} | {e['images_seen'] // 1000}k | {_fmt(v, 'metrics/fid')} "
                     f"| {_fmt(v, 'metrics/is')} | {'; '.join(also) or '-'} | "
                     f"<img src=\"{e['sample_grid']}\" width=\"136\"> |")
    lines += ["", README_END]
    return "\n".join(lines)


def update_readme(entries: dict[str, dict], readme: Path = ROOT / "README.md") -> None:
    text = readme.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise UserError(f"{readme} has no {README_BEGIN} ... {README_END} block")
    head, rest = text.split(README_BEGIN, 1)
    tail = rest.split(README_END, 1)[1]
    readme.write_text(head + readme_table(entries) + tail)


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock (``fcntl.flock`` on ``<path>.lock``) for a read-modify-write of ``path``."""
    import fcntl  # POSIX only: imported where the lock is taken, so the module imports everywhere

    with open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.import_dir:
        import_entries(Path(args.import_dir), args)
    if args.remeasure:
        remeasure(args.remeasure, args)
    if args.readme:
        update_readme(zoo.manifest())
        print("updated the README's table of pretrained models", file=sys.stderr)
    if args.import_dir or args.remeasure or args.readme:
        return 0
    if not (args.run and args.name and args.recipe):
        raise UserError("give a run directory (or checkpoint), --name and --recipe; or --readme")
    run = Path(args.run)
    ckpt = run / "checkpoints" / "last.ckpt" if run.is_dir() else run
    model, data, images_seen = load_training_checkpoint(str(ckpt))
    if not re.fullmatch(rf"{re.escape(model.model_name)}\.[a-z0-9_-]+", args.name):
        raise UserError(f"entry name {args.name!r} must be '{model.model_name}.<tag>' (lower-case tag)")
    recipe = Path(args.recipe)
    if not recipe.is_file():
        raise UserError(f"recipe {recipe} not found")
    data = {k: v for k, v in data.items() if k != "data_dir"}
    if not data.get("name"):
        raise UserError(f"{ckpt} does not record its data set")
    directory = Path(args.out) if args.out else weights.CHECKPOINTS
    manifest_file = directory / zoo.MANIFEST
    entries = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}

    path = zoo.export_pretrained(model, directory, args.name, data)
    old = entries.get(args.name, {}).get("file")
    if old and old != path.name and (directory / old).is_file():
        (directory / old).unlink()
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)

    metrics, ci_check = measure_export(path, args.name, data, args)
    loaded = zoo.load_pretrained(str(path))
    grid_dir = Path(args.grid_dir)
    grid_dir.mkdir(parents=True, exist_ok=True)
    grid = grid_dir / f"{args.name}.png"
    save_image(image_grid(loaded.sample(64, seed=0).cpu(), 8), grid)

    entry = {
        "model": model.model_name,
        "paper": args.paper or PAPERS.get(model.model_name, model.model_name),
        "file": path.name,
        "sha256": weights.sha256_file(path),
        "size": path.stat().st_size,
        "num_params": zoo.num_exported_params(model),
        "modules": sorted(model.export_modules()),
        "hparams": dict(zoo.export_payload(model)["hparams"]),
        "data": data,
        "resolution": int(data.get("resolution") or 0),
        "channels": int(data.get("channels") or 0),
        "images_seen": int(images_seen),
        "metrics": metrics,
        "ci_check": ci_check,
        "sample_grid": str(grid.resolve().relative_to(ROOT)) if grid.resolve().is_relative_to(ROOT) else str(grid),
        "recipe": {"config": str(recipe),
                   "train": f"python scripts/fit.py --config {recipe} --out runs/zoo/{args.name}",
                   "export": "python scripts/export_pretrained.py " + shlex.join(sys.argv[1:] if argv is None
                                                                                else argv)},
        "versions": versions(),
        "trained_on": args.trained_on,
        "license": args.license,
        "notes": args.notes,
    }
    with _locked(manifest_file):  # re-read under a lock: exports running side by side must not drop entries
        entries = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
        entries[args.name] = entry
        zoo.write_manifest(entries, manifest_file)
    print(json.dumps({k: entry[k] for k in ("file", "size", "images_seen")}), file=sys.stderr)
    for k, v in metrics["values"].items():
        print(f"{k}  {v:.4f}")
    print(f"wrote {manifest_file} and {grid}", file=sys.stderr)
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)
