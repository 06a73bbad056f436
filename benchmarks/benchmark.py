#!/usr/bin/env python
"""Training throughput: the Lightning path against a plain PyTorch loop, side by side in one process, for every model.

For each model (at its default configuration, 1 channel, 32x32: Fashion-MNIST sized) both paths train the same
networks with the same losses, optimizers, D/G steps, EMA updates and uint8-to-float batches: (a) the model's
``training_step`` under a Lightning ``Trainer`` (manual optimization), (b) its plain PyTorch loop from
``benchmarks/plain_loops.py`` (``tests/test_plain_loops.py`` proves the two end with bitwise the same weights). Runs
alternate between the paths (pair r runs Lightning then plain for even r, plain then Lightning for odd r), so drift
in the machine and any first-run / second-run effect hit both; each run builds a fresh model from the same seed and
times ``--steps`` batches after ``--warmup`` batches. Reported per model: the median images/s of each path, the median
of the per-pair ratios Lightning / plain with their min-max (above 1: Lightning faster), and peak memory.

Peak memory (``--memory subprocess``, default): each path runs once more, ``--warmup + --steps`` batches, in a fresh
Python process; just before the loop (model, optimizers not yet made, loader ready; for Lightning before the Trainer
is built) the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``) and the resident set size read; after the
loop, ``peak_rss_delta_mib`` = peak RSS (VmHWM) - that RSS: what training the model adds to the process at its
peak (optimizer state, activations and autograd buffers, allocator caches, the Trainer and its loops), not counting
the imported libraries and the model's weights, which are present before. ``peak_rss_mib`` is the whole process's peak.
A fresh process per measurement keeps memory the allocator retained from an earlier run out of the number. Without
``/proc/self/clear_refs`` it falls back to ``ru_maxrss`` (then the delta is only right if the run set the peak).

PGGAN is placed at the start of the final 32x32 stabilise phase (``restore_progress``), so every timed step trains the
full-resolution networks at alpha 1 (its schedule would otherwise spend 60,000 images below 32x32).

    python -m benchmarks.benchmark                            # every model + the canonical 64x64 DCGAN
    python -m benchmarks.benchmark --models dcgan,egan --steps 3 --warmup 1 --repeats 1 --memory none
    python -m benchmarks.benchmark --configs canonical64 --steps 20 --repeats 5 --json out.json   # DCGAN configs only
    python -m benchmarks.benchmark --channels-last                # both paths with channels-last weights
    python -m benchmarks.benchmark --compare formats              # Lightning path: channels-last vs contiguous
    OMP_NUM_THREADS=1 python -m benchmarks.benchmark --toys all --steps 100 --warmup 20 --memory none   # 2D toys
    python -m benchmarks.benchmark --accelerator gpu --precision bf16-mixed --channels-last   # gpu_session.sh perf

``--check PRECISIONS`` runs no comparison: every ``--models`` entry (default: all) trains on Fashion-MNIST at 32x32
(the models' default image setting; data from ``$GAN_ZOO_DATA`` or the Debian package) under a Trainer, once per
precision, and reports the median images/s over windows of ``--window`` batches after ``--warmup`` batches (CUDA
synchronised at window edges), the peak GPU memory, and whether every returned loss and 16 samples were finite; the
exit status is 1 if any run failed. PGGAN runs with short phases so that it reaches 32x32 during the warm-up. fp32
runs use TF32 matmuls there, as Lightning recommends on Hopper.

    python -m benchmarks.benchmark --check 32-true,bf16-mixed,16-mixed --accelerator gpu --steps 150 --warmup 50
    python -m benchmarks.benchmark --check 32-true --models dcgan --steps 4 --warmup 2 --window 2   # a CPU dry run
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a file (python benchmarks/benchmark.py): gan_zoo and benchmarks from the root
    sys.path.insert(0, str(ROOT))

import lightning as L  # noqa: E402
import torch  # noqa: E402

import gan_zoo  # noqa: E402
from gan_zoo.models import get_model_class  # noqa: E402
from gan_zoo.datamodules.base import ResumableLoader  # noqa: E402
from benchmarks.plain_loops import PLAIN_LOOPS  # noqa: E402

warnings.filterwarnings("ignore")

NUM_LABELED = 100  # the semi-supervised GAN's labeled pool (its default --num-labeled)


@dataclass
class Spec:
    """One benchmarked configuration: a model, its hyperparameters and the loader's batch size."""

    label: str
    kind: str  # "model" (a registered model at its defaults) or "config" (one of CONFIGS)
    model: str
    hparams: dict
    batch_size: int
    notes: dict = field(default_factory=dict)


CONFIGS = {
    # name: (model hparams, batch size); DCGAN configurations kept from the first version of this script
    "fmnist32": (dict(channels=1, resolution=32), 64),
    # the canonical DCGAN: 64x64 RGB, nz 100, ngf = ndf = 64, batch 64, Adam 2e-4 / 0.5
    "canonical64": (dict(channels=3, resolution=64, latent_dim=100, ngf=64, ndf=64, lr=2e-4, beta1=0.5), 64),
}


# The 2D toys as the toy protocol runs them (benchmarks/toy_benchmark.py, configs/*_grid25.yaml): MLPs of width 128,
# latent 2, Adam 1e-3, 256 points a batch, EMA off; EGAN and SGAN with their grid25 recipes' population and pairs.
TOY_HPARAMS = dict(data_dim=2, latent_dim=2, hidden=128, lr=1e-3, ema_decay=0.0)
TOY_MODEL_HPARAMS = {"egan": dict(mu=4, gamma=0.0, d_steps=1), "ensemble_sgan": dict(n_pairs=4)}
TOY_BATCH = 256


def toy_models() -> list[str]:
    """The registered models that train on vector data (the 2D toys)."""
    return [m for m in gan_zoo.list_models() if get_model_class(m).supports_vectors]


def toy_spec(name: str) -> Spec:
    """A model on 2D points at the toy protocol's settings (``TOY_HPARAMS``, batch 256)."""
    return Spec(label=f"{name}-toy", kind="toy", model=name,
                hparams={**TOY_HPARAMS, **TOY_MODEL_HPARAMS.get(name, {})}, batch_size=TOY_BATCH)


def model_spec(name: str, batch_size: int | None = None) -> Spec:
    """A registered model at its defaults, 1 channel, 32x32; batch size: ``batch_size`` or the model's
    ``default_batch_size`` (64 unless the model sets it)."""
    cls = get_model_class(name)
    bs = batch_size or cls.default_batch_size
    return Spec(label=name, kind="model", model=name, hparams=dict(channels=1, resolution=32), batch_size=int(bs))


def config_spec(name: str) -> Spec:
    hp, bs = CONFIGS[name]
    return Spec(label=name, kind="config", model="dcgan", hparams=dict(hp), batch_size=bs)


def resolve(label: str, batch_size: int | None = None) -> Spec:
    """``model:<name>``, ``toy:<name>`` or ``config:<name>`` (the form the memory probes are given)."""
    kind, name = label.split(":", 1)
    if kind == "toy":
        return toy_spec(name.removesuffix("-toy"))
    return model_spec(name, batch_size) if kind == "model" else config_spec(name)


# --- data and models ----------------------------------------------------------------------------------------------

def make_loader(spec: Spec, n_batches: int) -> ResumableLoader:
    """``n_batches`` batches of random uint8 images converted to [-1, 1] floats per batch, like an in-memory data set;
    the semi-supervised GAN also gets a labeled batch (``x_lab``, ``y_lab``) from a pool of 100 labeled images."""
    c, r, bs = spec.hparams.get("channels", 1), spec.hparams.get("resolution", 32), spec.batch_size
    g = torch.Generator().manual_seed(0)
    n = bs * n_batches
    if spec.hparams.get("data_dim"):  # the 2D toys: float points, as their data module gives them
        points = torch.randn(n, spec.hparams["data_dim"], generator=g)
        return ResumableLoader(n=n, batch_size=bs, seed=0, fetch=lambda idx: {"x": points[idx]})
    x = (torch.rand(n, c, r, r, generator=g) * 255).to(torch.uint8)
    y = torch.randint(0, 10, (n,), generator=g)
    labeled = spec.model == "semisupgan"
    if labeled:
        lab = torch.randperm(n, generator=g)[:NUM_LABELED] if n >= NUM_LABELED else torch.arange(n)
        xl, yl = x[lab], y[lab]

    def fetch(idx):
        batch = {"x": x[idx].float().div_(127.5).sub_(1.0), "y": y[idx]}
        if labeled:
            j = idx % len(xl)
            batch.update(x_lab=xl[j].float().div_(127.5).sub_(1.0), y_lab=yl[j])
        return batch

    return ResumableLoader(n=n, batch_size=bs, seed=0, fetch=fetch)


def build(spec: Spec, channels_last: bool = False):
    """The model from seed 0 (the same initial weights for every run of every path); with ``channels_last`` its 4D
    weights in channels-last memory format (``fit.py --channels-last``)."""
    torch.manual_seed(0)
    model = gan_zoo.get_model(spec.model, **spec.hparams)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if spec.model == "pggan":
        level, fading, start, length = model.schedule.phases[-1]  # the final stabilise phase
        model.restore_progress(start)
        spec.notes["pggan_start_images"] = start
        spec.notes["pggan_stage"] = f"{4 * 2 ** level}x{4 * 2 ** level}, alpha 1, {length} images in the phase"
    return model


def _check_images(model, start: int, spec: Spec, batches: int) -> None:
    seen = model.images_seen - start
    if seen != batches * spec.batch_size:
        raise RuntimeError(f"{spec.label}: {seen} images counted for {batches} batches of {spec.batch_size}")


# --- the two paths --------------------------------------------------------------------------------------------------

def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class _Timer(L.Callback):
    """Wall time from the start of batch ``warmup`` to the end of the last batch (CUDA synchronised at both ends
    only, like the plain loop's clock: a synchronisation after every batch would stop the host from queueing the next
    step's kernels while the GPU runs this one, a cost the plain loop does not pay)."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.last, self.t0, self.t1 = warmup, total - 1, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            _sync()
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.last:
            _sync()
            self.t1 = time.perf_counter()


def _trainer(warmup: int, steps: int, callbacks: list, accelerator: str = "cpu",
             precision: str = "32-true") -> L.Trainer:
    return L.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=1,
                     limit_train_batches=warmup + steps, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     callbacks=callbacks)


def _device(accelerator: str) -> torch.device:
    return torch.device("cuda", 0) if accelerator == "gpu" else torch.device("cpu")


def run_lightning(spec: Spec, warmup: int, steps: int, model=None, loader=None, channels_last: bool = False,
                  accelerator: str = "cpu", precision: str = "32-true") -> float:
    """Images/s of ``steps`` batches of ``training_step`` under a Trainer, after ``warmup`` batches."""
    model = build(spec, channels_last) if model is None else model
    loader = make_loader(spec, warmup + steps) if loader is None else loader
    start = model.images_seen
    timer = _Timer(warmup, warmup + steps)
    _trainer(warmup, steps, [timer], accelerator, precision).fit(model, loader)
    _check_images(model, start, spec, warmup + steps)
    return steps * spec.batch_size / (timer.t1 - timer.t0)


def run_plain(spec: Spec, warmup: int, steps: int, model=None, loader=None, channels_last: bool = False,
              accelerator: str = "cpu", precision: str = "32-true") -> float:
    """Images/s of ``steps`` batches of the model's plain loop, after ``warmup`` batches (on the accelerator's
    device; bf16-mixed as Lightning runs it, see ``plain_loops._run``)."""
    model = build(spec, channels_last) if model is None else model
    model.to(_device(accelerator))
    loader = make_loader(spec, warmup + steps) if loader is None else loader
    start = model.images_seen
    seconds = PLAIN_LOOPS[spec.model](model, loader, warmup, steps, precision=precision)
    _check_images(model, start, spec, warmup + steps)
    return steps * spec.batch_size / seconds


PATHS = {"lightning": run_lightning, "plain": run_plain}


# --- memory ---------------------------------------------------------------------------------------------------------

def _proc_status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def probe_memory(label: str, arm: str, warmup: int, steps: int, batch_size: int | None, accelerator: str = "cpu",
                 precision: str = "32-true") -> dict:
    """Run ``arm`` once in this (fresh) process; the peak-RSS increase over the RSS just before the loop (and on a
    GPU the peak of CUDA memory allocated during the run)."""
    spec = resolve(label, batch_size)
    path, channels_last = ARMS[arm]
    model = build(spec, channels_last)
    loader = make_loader(spec, warmup + steps)
    gc.collect()
    gpu = accelerator == "gpu"
    if gpu:
        model.to(_device(accelerator))
        torch.cuda.reset_peak_memory_stats()
        cuda_before = torch.cuda.memory_allocated()
    exact = _reset_peak_rss()
    before = _proc_status_kib("VmRSS")
    if before is None:  # no /proc: ru_maxrss only
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    img_s = PATHS[path](spec, warmup, steps, model=model, loader=loader, accelerator=accelerator, precision=precision)
    cuda = ({"cuda_peak_delta_mib": round((torch.cuda.max_memory_allocated() - cuda_before) / 2**20, 1)}
            if gpu else {})
    peak = _proc_status_kib("VmHWM") if exact else None
    method = "VmHWM reset by /proc/self/clear_refs, minus VmRSS before the loop"
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        method = "ru_maxrss minus the RSS before the loop (an underestimate if the peak came before the loop)"
    return {"peak_rss_delta_mib": round((peak - before) / 1024, 1), "peak_rss_mib": round(peak / 1024, 1),
            "rss_before_mib": round(before / 1024, 1), **cuda, "img_s": img_s, "method": method}


def measure_memory(label: str, arm: str, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.benchmark", "--probe-memory", label, arm, "--warmup", str(args.warmup),
           "--steps", str(args.steps), "--accelerator", args.accelerator, "--precision", args.precision]
    if args.batch_size:
        cmd += ["--batch-size", str(args.batch_size)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


# --- the comparison -------------------------------------------------------------------------------------------------

# arm -> (path, channels_last); an arm is one side of a side-by-side comparison
ARMS = {"lightning": ("lightning", False), "plain": ("plain", False),
        "lightning_cl": ("lightning", True), "plain_cl": ("plain", True)}


def arms_for(args) -> tuple[str, str]:
    """The two arms of ``--compare`` (the ratio is first / second)."""
    if args.compare == "formats":
        return "lightning_cl", "lightning"
    return ("lightning_cl", "plain_cl") if args.channels_last else ("lightning", "plain")


def compare(spec: Spec, args) -> dict:
    """Alternate the two arms ``args.repeats`` times; medians, per-pair ratios first / second, peak memory."""
    first, second = arms_for(args)
    runs: dict[str, list[float]] = {first: [], second: []}
    cuda_peaks: dict[str, list[float]] = {first: [], second: []}
    for r in range(args.repeats):
        order = (first, second) if r % 2 == 0 else (second, first)
        for arm in order:
            path, channels_last = ARMS[arm]
            gc.collect()  # the previous run's model and Trainer are freed now, not during this run's timed steps
            if args.memory == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                cuda_before = torch.cuda.memory_allocated()
            runs[arm].append(PATHS[path](spec, args.warmup, args.steps, channels_last=channels_last,
                                         accelerator=args.accelerator, precision=args.precision))
            if args.memory == "cuda":
                cuda_peaks[arm].append((torch.cuda.max_memory_allocated() - cuda_before) / 2**20)
        print(f"{spec.label} pair {r + 1}/{args.repeats} ({order[0]} first): "
              + ", ".join(f"{a} {runs[a][-1]:.1f} img/s" for a in (first, second)), file=sys.stderr, flush=True)
    ratios = [a / b for a, b in zip(runs[first], runs[second])]
    res = {"model": spec.model, "batch_size": spec.batch_size, "hparams": spec.hparams, **spec.notes,
           "arms": [first, second], **{f"{a}_img_s": statistics.median(runs[a]) for a in (first, second)},
           "ratio": f"{first} / {second}", "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
           "ratio_max": max(ratios), **{f"{a}_runs": runs[a] for a in (first, second)}, "ratios": ratios}
    if args.memory == "subprocess":
        res["memory"] = {a: measure_memory(f"{spec.kind}:{spec.label}", a, args) for a in (first, second)}
    elif args.memory == "cuda":  # the largest over the arm's runs; the model was built on the host, so its weights
        # (moved to the GPU inside the run) count in the delta
        res["memory"] = {a: {"cuda_peak_delta_mib": round(max(cuda_peaks[a]), 1),
                             "method": "torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus "
                                       "memory_allocated before the run, in this process; max over the runs"}
                         for a in (first, second)}
    mem = res.get("memory", {})
    mem_txt = ", ".join(f"{a} +{m['peak_rss_delta_mib']:.0f} MiB" for a, m in mem.items() if "peak_rss_delta_mib" in m)
    mem_txt += ", ".join(f"{a} CUDA +{m['cuda_peak_delta_mib']:.0f} MiB" for a, m in mem.items()
                         if "peak_rss_delta_mib" not in m and "cuda_peak_delta_mib" in m)
    print(f"{spec.label}: " + ", ".join(f"{a} {res[a + '_img_s']:.1f} img/s" for a in (first, second))
          + f", ratio {first} / {second} {res['ratio_median']:.3f} (min {res['ratio_min']:.3f}, "
          f"max {res['ratio_max']:.3f})" + (f"; peak memory {mem_txt}" if mem_txt else ""), flush=True)
    return res


# --- the check: every model on Fashion-MNIST in each precision ----------------------------------------------------

CHECK_PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


class _WindowTimer(L.Callback):
    """Median images/s over windows of ``window`` batches after ``warmup`` batches (CUDA synchronised at window
    edges); whether every returned loss was finite."""

    def __init__(self, warmup: int, window: int):
        self.warmup, self.window = warmup, window
        self.rates: list[float] = []
        self.finite = True
        self._t0 = self._n0 = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        for v in (outputs or {}).values():
            if torch.is_tensor(v) and not torch.isfinite(v).all():
                self.finite = False
        done = batch_idx + 1
        if done >= self.warmup and (done - self.warmup) % self.window == 0:
            if pl_module.device.type == "cuda":
                torch.cuda.synchronize()
            now, seen = time.perf_counter(), pl_module.images_seen
            if self._t0 is not None:
                self.rates.append((seen - self._n0) / (now - self._t0))
            self._t0, self._n0 = now, seen


def check_one(name: str, precision: str, args) -> dict:
    """One model in one precision on Fashion-MNIST 32x32 for ``args.warmup + args.steps`` batches: images/s, finite
    losses and samples, peak CUDA memory, or the error that stopped it."""
    import inspect

    from gan_zoo.datamodules import get_datamodule

    cls = get_model_class(name)
    batch_size = cls.default_batch_size if name != "pggan" else 64
    dm = get_datamodule("fashion_mnist", resolution=32, batch_size=batch_size, seed=0,
                        num_labeled=cls.default_num_labeled)
    dm.prepare_data()
    accepted = set(inspect.signature(cls.__init__).parameters)
    linked = {"channels": 1, "resolution": 32, "num_classes": dm.num_classes, "data_dim": 0}
    hp = {k: v for k, v in linked.items() if k in accepted}
    if name == "pggan":
        hp["phase_images"] = batch_size * max(1, args.warmup // 8)  # 6 phases: at 32x32 before the timed steps
    torch.manual_seed(0)
    model = cls(**hp)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    timer = _WindowTimer(args.warmup, args.window)
    trainer = L.Trainer(accelerator=args.accelerator, devices=1, precision=precision, max_epochs=-1,
                        limit_train_batches=args.warmup + args.steps, max_steps=-1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, callbacks=[timer], log_every_n_steps=50)
    trainer.fit_loop.max_epochs = 1
    gpu = args.accelerator == "gpu"
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    error = None
    try:
        trainer.fit(model, datamodule=dm)
    except Exception as e:  # report and go on with the other models
        error = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    wall = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else None
    samples_ok = None
    if error is None:
        x = model.sample(16, seed=0)
        samples_ok = bool(torch.isfinite(x).all() and x.abs().max() <= 1.0)
    res = {"model": name, "precision": precision, "batch_size": batch_size, "params": n_params,
           "images_per_s": round(statistics.median(timer.rates), 1) if timer.rates else None,
           "windows": len(timer.rates), "finite_losses": timer.finite, "samples_ok": samples_ok,
           "images_seen": model.images_seen, "wall_s": round(wall, 1),
           "peak_mem_mib": None if peak is None else round(peak, 1), "error": error}
    print(json.dumps(res), flush=True)
    return res


def check(models: list[str], precisions: list[str], args, results: dict, write) -> int:
    """``check_one`` for every model and precision (results in ``results["check"]``, written after every run); a
    table; 1 if any run failed (an error, a non-finite loss or bad samples)."""
    torch.backends.cuda.matmul.allow_tf32 = True  # fp32 runs use TF32 matmuls, as Lightning recommends on Hopper
    torch.backends.cudnn.allow_tf32 = True
    rows = results["check"] = []
    for name in models:
        for precision in precisions:
            rows.append(check_one(name, precision, args))
            write(False)
    print(f"\n{'model':<12} {'precision':<11} {'batch':>5} {'img/s':>9} {'finite':>6} {'peak MiB':>9}  error")
    for r in rows:
        rate = "-" if r["images_per_s"] is None else f"{r['images_per_s']:.0f}"
        print(f"{r['model']:<12} {r['precision']:<11} {r['batch_size']:>5} {rate:>9} {str(r['finite_losses']):>6} "
              f"{r['peak_mem_mib'] if r['peak_mem_mib'] is not None else '-':>9}  {r['error'] or ''}")
    return 1 if any(r["error"] or not r["finite_losses"] or not r["samples_ok"] for r in rows) else 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], capture_output=True, text=True, cwd=str(ROOT), timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(argv: list[str], accelerator: str = "cpu", module: str = "benchmarks.benchmark") -> dict:
    """The machine, the versions, the date and the command (``python -m MODULE ARGV``) of a measurement."""
    import numpy

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "machine": {"cpu": _cpu_name(), "arch": platform.machine(), "cpu_count": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                    "gpu_used": accelerator == "gpu",
                    "gpu": torch.cuda.get_device_name(0) if accelerator == "gpu" else None},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "lightning": L.__version__,
                     "numpy": numpy.__version__, "gan_zoo_commit": _git("rev-parse", "HEAD"),
                     "gan_zoo_dirty": bool(status) if status is not None else None},
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(["python", "-m", module, *argv]),
    }


def _split(value: str | None) -> list[str]:
    return [] if value is None or value.strip().lower() in ("", "none") else [v.strip() for v in value.split(",")
                                                                              if v.strip()]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None,
                   help="comma list of registered models at their defaults (1x32x32), or 'none'; default: all, "
                        "unless only --configs is given")
    p.add_argument("--configs", default=None,
                   help=f"comma list of DCGAN configurations ({', '.join(CONFIGS)}), or 'none'; default: canonical64, "
                        "unless only --models is given")
    p.add_argument("--toys", default=None,
                   help=f"comma list of models (or 'all': {', '.join(toy_models())}) on 2D points at the toy "
                        "protocol's settings: MLPs of width 128, latent 2, batch 256, Adam 1e-3, EMA off (EGAN: 4 "
                        "parents, gamma 0, one D step per generation; SGAN: 4 pairs); time them with one thread "
                        "(OMP_NUM_THREADS=1)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="batch size for every --models entry (default: the model's default_batch_size, else 64)")
    p.add_argument("--steps", type=int, default=30, help="timed batches per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed batches per run")
    p.add_argument("--repeats", type=int, default=5, help="runs per path (pairs)")
    p.add_argument("--memory", choices=("subprocess", "cuda", "none"), default="subprocess",
                   help="peak-memory measurement: one fresh process per model and path (default; host RSS, and "
                        "CUDA memory on a GPU), cuda (CUDA memory only, in this process during the timed runs: no "
                        "extra processes), or none")
    p.add_argument("--compare", choices=("paths", "formats"), default="paths",
                   help="paths: the Lightning path against the plain loop (default); formats: the Lightning path with "
                        "channels-last weights against contiguous ones")
    p.add_argument("--channels-last", action="store_true",
                   help="with --compare paths: both paths with channels-last weights (fit.py --channels-last)")
    p.add_argument("--accelerator", choices=("cpu", "gpu"), default="cpu",
                   help="where both paths run (gpu: the first CUDA device; batches are made on the host and moved)")
    p.add_argument("--precision", choices=("32-true", "bf16-mixed"), default="32-true",
                   help="both paths: fp32, or bf16 autocast around each whole step (Lightning's bf16-mixed)")
    p.add_argument("--check", metavar="PRECISIONS", default=None,
                   help=f"no comparison: train every --models entry (default: all) on Fashion-MNIST under a Trainer "
                        f"once per precision (comma list of {', '.join(CHECK_PRECISIONS)}); finite losses and "
                        "samples, images/s, peak CUDA memory; exit status 1 if a run failed")
    p.add_argument("--window", type=int, default=50, help="with --check: batches per timing window (at most --steps)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--probe-memory", nargs=2, metavar=("SPEC", "ARM"), default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.repeats < 1:
        p.error("--steps and --repeats must be >= 1, --warmup >= 0")

    if args.probe_memory:
        print(json.dumps(probe_memory(*args.probe_memory, args.warmup, args.steps, args.batch_size, args.accelerator,
                                      args.precision)))
        return 0

    precisions = _split(args.check)
    if args.check is not None:
        if not precisions or any(x not in CHECK_PRECISIONS for x in precisions):
            p.error(f"--check takes a comma list of {', '.join(CHECK_PRECISIONS)}")
        if _split(args.configs):
            p.error("--check runs registered models (--models), not --configs")
        if args.window < 1:
            p.error("--window must be >= 1")
        args.window = min(args.window, args.steps)
    toys = toy_models() if args.toys == "all" else _split(args.toys)
    if args.check is not None:
        if toys:
            p.error("--check runs registered models (--models), not --toys")
        models, configs = (gan_zoo.list_models() if args.models is None else _split(args.models)), []
    elif args.models is None and args.configs is None and args.toys is None:
        models, configs = gan_zoo.list_models(), ["canonical64"]
    else:  # only what was asked for: `--configs canonical64` alone runs that configuration, as it always did
        models, configs = _split(args.models), _split(args.configs)
    for name in toys:
        if name not in toy_models():
            print(f"error: {name!r} does not train on the 2D toys; valid: {', '.join(toy_models())}", file=sys.stderr)
            return 2
    valid = gan_zoo.list_models()
    for name in models:
        if name not in valid:
            print(f"error: unknown model {name!r}; valid: {', '.join(valid)}", file=sys.stderr)
            return 2
    for name in configs:
        if name not in CONFIGS:
            print(f"error: unknown config {name!r}; valid: {', '.join(CONFIGS)}", file=sys.stderr)
            return 2

    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("error: --accelerator gpu, but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.memory == "cuda" and args.accelerator != "gpu":
        print("error: --memory cuda needs --accelerator gpu (use --memory subprocess on the CPU)", file=sys.stderr)
        return 2
    if args.check is not None:
        results = {**environment(argv, args.accelerator), "check_precisions": precisions, "steps": args.steps,
                   "warmup": args.warmup, "window": args.window}
    else:
        results = {**environment(argv, args.accelerator), "precision": args.precision, "compare": args.compare,
                   "arms": list(arms_for(args)), "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
                   "memory_method": args.memory, "models": {}, "configs": {}, "toys": {}}

    def write(done: bool) -> None:  # after every model too, so a run stopped at a time limit keeps what it measured
        if args.json:
            results["complete"] = done
            tmp = Path(args.json).with_name(Path(args.json).name + ".tmp")
            tmp.write_text(json.dumps(results, indent=2))
            os.replace(tmp, args.json)

    if args.check is not None:
        status = check(models, precisions, args, results, write)
        write(True)
        return status
    for name in models:
        results["models"][name] = compare(model_spec(name, args.batch_size), args)
        write(False)
    for name in configs:
        results["configs"][name] = compare(config_spec(name), args)
        write(False)
    for name in toys:
        results["toys"][name] = compare(toy_spec(name), args)
        write(False)
    results["machine"]["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    write(True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
