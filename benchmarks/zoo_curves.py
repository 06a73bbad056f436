"""The zoo's comparison: every run's FID against images seen in one figure, and one table of FID and IS at fixed
budgets, training time per 100k images and each model's own measure, beside the plain PyTorch DCGAN yardstick.

    python -m benchmarks.zoo_curves runs/zoo/* --yardstick runs/zoo/yardstick --png docs/benchmarks/zoo_fid.png

Each run directory holds ``logs/metrics.csv`` as a fit writes it with ``--logger csv`` (``step`` = images seen, the
periodic metrics of ``--metrics-every-images`` and the training clock's ``time/train_seconds``; a resumed fit's
earlier parts beside it as ``metrics.1.csv``, ...) or as
``benchmarks/yardstick.py`` writes it. A run is named after its directory (the zoo's run directories carry the
entry's name). The table (Markdown, on stdout) gives per run:

- FID and IS at each ``--at`` budget: the evaluation nearest to it, if one lies within 5 % of it (else "-");
- the last evaluation's images and FID, and its FID divided by the yardstick's at the same images (the yardstick's
  evaluation nearest to them, within 5 %);
- training seconds per 100k images (``time/train_seconds`` over images at the last value: training steps only, no
  evaluations or checkpoints);
- the model's own measure, its last value, where it logs one (classifier accuracy, encoder probe, toy modes).

Where a run logged FID of several sample counts or extractors, ``--fid`` picks the key (the message lists them).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from benchmarks import read_run, series
from gan_zoo.errors import UserError

# own measures, in the order they are reported
OWN = ("metrics/test_acc", "metrics/probe_acc", "metrics/probe_z_acc", "toy/modes", "toy/hq_percent", "toy/reverse_kl")


def fid_key(runs: dict[str, dict], wanted: str | None) -> str:
    """The FID key of the runs: ``wanted`` if given, else the only one any run logged (a run without it, such as one
    stopped before its first evaluation, gets no curve)."""
    keys = {k for run in runs.values() for values in run.values() for k in values
            if k.startswith("metrics/fid") and not k.endswith("_std")}
    if wanted:
        if wanted not in keys:
            raise UserError(f"no run logged {wanted} (found: {', '.join(sorted(keys)) or 'none'})")
        return wanted
    if len(keys) != 1:
        raise UserError(f"the runs logged {len(keys)} FID keys ({', '.join(sorted(keys)) or 'none'}); "
                        f"choose one with --fid")
    return keys.pop()


def near(points: list[tuple[int, float]], images: int, tolerance: float = 0.05) -> float | None:
    """The value of the evaluation nearest to ``images``, if within ``tolerance`` of it."""
    if not points:
        return None
    step, value = min(points, key=lambda p: abs(p[0] - images))
    return value if abs(step - images) <= tolerance * images else None


def _fmt(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def table(runs: dict[str, dict], fid: str, at: list[int], yardstick: str | None) -> str:
    is_key = fid.replace("metrics/fid", "metrics/is", 1)
    head = (["run"] + [f"FID {a // 1000}k" for a in at] + [f"IS {a // 1000}k" for a in at]
            + ["last evaluation (images)", "FID there", "FID / yardstick's", "training s per 100k images",
               "own measure"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = series(runs[yardstick], fid) if yardstick else []
    for name, run in runs.items():
        f, s = series(run, fid), series(run, is_key)
        cells = [name + (" (yardstick)" if name == yardstick else "")]
        cells += [_fmt(near(f, a)) for a in at] + [_fmt(near(s, a), 2) for a in at]
        if f:
            last_step, last_fid = f[-1]
            ref = near(base, last_step) if base else None
            cells += [f"{last_step:,}", _fmt(last_fid), _fmt(last_fid / ref if ref else None, 2)]
        else:
            cells += ["-", "-", "-"]
        clock = series(run, "time/train_seconds")
        cells.append(_fmt(clock[-1][1] / clock[-1][0] * 1e5 if clock and clock[-1][0] else None, 0))
        own = [f"{k.split('/', 1)[1]} {series(run, k)[-1][1]:.4g}" for k in OWN if series(run, k)]
        cells.append(", ".join(own) or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(runs: dict[str, dict], fid: str, yardstick: str | None, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, run in runs.items():
        pts = series(run, fid)
        if not pts:
            continue
        x, y = [p[0] / 1000 for p in pts], [p[1] for p in pts]
        if name == yardstick:
            ax.plot(x, y, "k--", linewidth=2, label=f"{name} (plain PyTorch DCGAN)")
        else:
            ax.plot(x, y, marker="o", markersize=3, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("images seen (thousands)")
    ax.set_ylabel(fid.removeprefix("metrics/") + " (log scale)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(png)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.zoo_curves", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (logs/metrics.csv in each)")
    p.add_argument("--yardstick", help="the yardstick's run directory (benchmarks/yardstick.py)")
    p.add_argument("--png", help="write the figure here")
    p.add_argument("--at", default="150000,300000,600000", help="budgets (images) of the table's FID / IS columns")
    p.add_argument("--fid", help="the FID key, where the runs logged several")
    args = p.parse_args(argv)
    dirs = [Path(d) for d in args.runs]
    if args.yardstick and Path(args.yardstick) not in dirs:
        dirs.append(Path(args.yardstick))
    runs = {d.name: read_run(d) for d in dirs}
    if len(runs) != len(dirs):
        raise UserError("two run directories share a name; the runs are named after their directories")
    yardstick = Path(args.yardstick).name if args.yardstick else None
    at = [int(a) for a in args.at.split(",") if a]
    key = fid_key(runs, args.fid)
    print(table(runs, key, at, yardstick))
    if args.png:
        figure(runs, key, yardstick, Path(args.png))
        print(f"figure: {args.png}", file=sys.stderr)
    return 0


def cli(argv=None) -> int:
    try:
        return main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
