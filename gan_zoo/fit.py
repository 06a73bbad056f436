"""``scripts/fit.py``: train any registered GAN on any registered data set.

    python scripts/fit.py --model dcgan --data fashion_mnist --resolution 32 --max-images 30000

Options come from three places, later ones winning: the defaults, ``--config FILE.yaml`` (a flat mapping of the
same option names), and the command line. Every hyperparameter of the chosen model is an option (``--lr``,
``--latent-dim``, ...); ``--model NAME --help`` lists them.

The run directory (``--out``, default ``runs/<model>-<data>-<time>``) receives ``config.yaml`` (the resolved
options, reusable with ``--config``), ``checkpoints/last.ckpt`` (+ snapshots), ``samples/*.png`` and the logs.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.fabric.utilities.exceptions import MisconfigurationException

from gan_zoo.base import check_hparams
from gan_zoo.callbacks import ImagesBudget, ImagesCheckpoint, ImagesProgressBar, SampleGrid
from gan_zoo.callbacks.checkpoint import FitInterrupted, SignalCatcher
from gan_zoo.callbacks.divergence import DivergenceGuard
from gan_zoo.callbacks.encoder import LinearProbe
from gan_zoo.callbacks.clock import TrainClock
from gan_zoo.callbacks.metrics import ImageMetrics
from gan_zoo.callbacks.toy import ToyModeMetrics
from gan_zoo.checkpoint_io import (AtomicCheckpointIO, first_line, hparam_differences, load_checkpoint,
                                   load_matching_state)
from gan_zoo.cli import HelpFormatter, Parser, UserError, add_hparams, read_config, run_main
from gan_zoo.datamodules import get_datamodule, get_datamodule_class, list_datamodules
from gan_zoo.loggers import LOGGERS, finish_logger, keep_earlier_csv, make_logger
from gan_zoo.metrics.extractors import ExtractorError, default_extractor, inception_path
from gan_zoo.metrics.image_metrics import METRICS, parse_metrics
from gan_zoo.models import get_model_class, list_models

DATA_LINKED = ("channels", "resolution", "num_classes", "data_dim")  # model arguments filled in from the data set


def _devices(value: str):
    if value == "auto":
        return value
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return int(value)


def _limit(value: str):
    v = float(value)
    return int(v) if v.is_integer() and v > 1 else v


# Lightning's DDP strategies that wrap the module without unused-parameter detection: a GAN step backpropagates
# through one network at a time, so each of them fails at the first backward. They resolve to a strategy that works.
GAN_SAFE_DDP = {"ddp": "gan_ddp", "ddp_find_unused_parameters_false": "gan_ddp"}
GAN_SAFE_DDP.update({f"{k}{s}": f"{k}_find_unused_parameters_true" for k in ("ddp_spawn", "ddp_fork", "ddp_notebook")
                     for s in ("", "_find_unused_parameters_false")})


def strategy_note(asked: str, used: str) -> str:
    """The line a fit prints when ``--strategy asked`` runs as ``used``."""
    return (f"--strategy {asked}: running {used} (Lightning's {asked} wraps the whole module without "
            "unused-parameter detection, which fails on a GAN step that trains one network at a time)")


def resolve_strategy(strategy: str, accelerator: str, devices, num_nodes: int = 1) -> str:
    """``auto`` becomes ``gan_ddp`` when the fit runs on more than one device in all (``devices`` x ``num_nodes``;
    Lightning's own ``auto`` would pick DDP without unused-parameter detection, which a GAN step's frozen network
    breaks); Lightning's DDP names become their GAN-safe counterparts (``GAN_SAFE_DDP``); anything else passes."""
    if strategy in GAN_SAFE_DDP:
        return GAN_SAFE_DDP[strategy]
    if strategy != "auto":
        return strategy
    if num_nodes > 1:
        return "gan_ddp"
    if isinstance(devices, (list, tuple)):
        n = len(devices)
    elif devices == "auto" or devices == -1:
        gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        n = torch.cuda.device_count() if gpu else 1
    else:
        n = int(devices)
    return "gan_ddp" if n > 1 else "auto"


def base_parser(add_help: bool) -> argparse.ArgumentParser:
    p = Parser(
        prog="fit.py", add_help=add_help, formatter_class=HelpFormatter,
        usage="%(prog)s --model NAME [--data NAME] [--config FILE] [OPTION ...]",
        description=f"Train a GAN. Models: {', '.join(list_models())}. Data sets: {', '.join(list_datamodules())}.",
        epilog="Add --model NAME --help to list that model's hyperparameters.")
    p.add_argument("--model", help=f"model name, one of: {', '.join(list_models())}")
    p.add_argument("--config", help="YAML file of options (flat mapping; command-line options override it)")
    d = p.add_argument_group("data")
    d.add_argument("--data", default="fashion_mnist", help=f"data set, one of: {', '.join(list_datamodules())}")
    d.add_argument("--data-dir", default=None, help="directory searched first for the data set files")
    d.add_argument("--resolution", "--final-resolution", dest="resolution", type=int, default=None,
                   help="image side (default: the data set's native size, or what the model needs, e.g. 28 -> 32 "
                        "for PGGAN)")
    d.add_argument("--channels", type=int, default=None, help="1 or 3 (default: the data set's)")
    d.add_argument("--batch-size", type=int, default=None,
                   help="batch size per device (default: the model's default_batch_size, else 64)")
    d.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (disk-backed data sets)")
    d.add_argument("--num-labeled", type=int, default=None,
                   help="labeled images, balanced per class (default: the model's, e.g. 100 for semisupgan; else 0)")
    d.add_argument("--resize-mode", choices=("resize", "pad"), default="resize", help="how 28x28 data reaches 32")
    d.add_argument("--download", action=argparse.BooleanOptionalAction, default=True,
                   help="let torchvision download a missing data set (needs the internet)")
    t = p.add_argument_group("training")
    t.add_argument("--max-images", type=int, default=None,
                   help="stop after this many images seen (default: the model's schedule, or one epoch)")
    t.add_argument("--max-epochs", type=int, default=None, help="stop after this many epochs")
    t.add_argument("--limit-train-batches", type=_limit, default=None, help="batches per epoch (int) or fraction")
    t.add_argument("--accelerator", default="auto", help="cpu, gpu, auto, ...")
    t.add_argument("--devices", type=_devices, default="auto", help="number of devices, a list '0,1', or auto")
    t.add_argument("--num-nodes", type=int, default=1,
                   help="machines in a multi-node fit (each runs --devices processes; launch with torchrun or SLURM, "
                        "see the README)")
    t.add_argument("--strategy", default="auto",
                   help="Lightning strategy: auto (one device, or gan_ddp on several: the measured default for "
                        "GANs, see BENCHMARKS.md), gan_ddp, ddp_find_unused_parameters_true, ...; ddp runs as "
                        "gan_ddp")
    t.add_argument("--precision", default="32-true", help="32-true, bf16-mixed, 16-mixed, ...")
    t.add_argument("--compile", nargs="?", const="inductor", default=None, metavar="BACKEND",
                   help="torch.compile the trained networks (backend: inductor unless named; checkpoints unchanged)")
    t.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="keep the networks' conv weights (and so their activations) in channels-last memory format: "
                        "the same arithmetic, measured 0.5-13.5 %% faster (medians) for every model on the CPU "
                        "(BENCHMARKS.md); --no-channels-last for the contiguous format")
    t.add_argument("--seed", type=int, default=0, help="seed of everything (weights, noise, data order)")
    t.add_argument("--ckpt-path", default=None, help="resume from a checkpoint file, or 'last' (<out>/checkpoints)")
    m = p.add_argument_group("metrics")
    m.add_argument("--metrics", default="auto",
                   help="fid,is,kid,probe (any of them), toy, none, or auto: FID/IS/KID where an extractor is "
                        "available (domain CNNs for (Fashion-)MNIST, Inception when its weights file is present), "
                        "the linear probe of an encoder (bigan, bigbigan) on a labeled data set, toy mode coverage "
                        "on ring8/grid25")
    m.add_argument("--metric-samples", type=int, default=10_000, help="generated images per evaluation")
    m.add_argument("--metrics-every-images", type=int, default=0, help="images between evaluations (0 = at the end)")
    m.add_argument("--metric-split", default="test", help="real split the metrics compare against")
    m.add_argument("--extractor", default="auto", help="fmnist-cnn, mnist-cnn, inception, or auto")
    m.add_argument("--inception-weights", default=None, help="path of the Inception weights file")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=None, help="run directory (default runs/<model>-<data>-<time>)")
    o.add_argument("--logger", choices=LOGGERS, default="wandb",
                   help="wandb (online with credentials, else offline), tensorboard, csv or none")
    o.add_argument("--project", default="gan_zoo", help="W&B project")
    o.add_argument("--ckpt-every-images", type=int, default=10_000, help="images between updates of last.ckpt")
    o.add_argument("--snapshot-every-images", type=int, default=0, help="images between kept snapshots (0 = none)")
    o.add_argument("--sample-every-images", type=int, default=10_000, help="images between sample grids")
    o.add_argument("--log-every-n-steps", type=int, default=10, help="logging interval in training steps")
    o.add_argument("--progress-bar", action=argparse.BooleanOptionalAction, default=True, help="show a progress bar")
    return p


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Two passes: find --model and --config first, then parse everything with that model's options. A config's
    values go through the same parser as the command line (types, choices, true/false flags), before it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    pre, _ = base_parser(add_help=False).parse_known_args(argv)
    config = read_config(pre.config) if pre.config else {}
    model_name = pre.model or config.get("model")
    parser = base_parser(add_help=True)
    hparam_names: list[str] = []
    if model_name:
        cls = get_model_class(model_name)
        hparam_names = add_hparams(parser, cls, set(DATA_LINKED), f"{cls.model_name} hyperparameters")
    from_config = config_argv(parser, config, pre.config) if config else []
    if from_config:
        try:
            parser.parse_args(from_config)
        except UserError as e:
            raise UserError(f"config {pre.config}: {e}") from e
    args = parser.parse_args(from_config + argv)
    if not args.model:
        raise UserError("the following argument is required: --model")
    check_options(args)
    return args, hparam_names


def config_argv(parser: argparse.ArgumentParser, config: dict, path: str) -> list[str]:
    """The command-line tokens a config mapping stands for (``lr: 0.001`` -> ``--lr 0.001``, ``progress_bar: false``
    -> ``--no-progress-bar``); null keeps the default. Unknown names, lists where one value belongs and anything but
    true/false for a flag are errors naming the option."""
    actions = {a.dest: a for a in reversed(parser._actions) if a.option_strings}
    unknown = sorted(set(config) - set(actions) - {"config"})
    if unknown:
        raise UserError(f"unknown option(s) in {path}: {', '.join(unknown)}")
    tokens: list[str] = []
    for key, value in config.items():
        if key == "config" or value is None:
            continue
        action = actions[key]
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            if not isinstance(value, bool):
                raise UserError(f"config {path}: {key} must be true or false, got {value!r}")
            tokens.append(flag if value else "--no-" + flag[2:])
        elif key == "devices" and isinstance(value, list) and all(isinstance(v, int) for v in value):
            tokens += [flag, ",".join(map(str, value))]
        elif isinstance(value, (list, dict)):
            raise UserError(f"config {path}: {key} takes one value, got a {type(value).__name__}: {value!r}")
        else:
            tokens += [flag, str(value)]
    return tokens


POSITIVE_OPTIONS = ("max_images", "max_epochs", "batch_size", "metric_samples", "log_every_n_steps", "num_nodes")
NON_NEGATIVE_OPTIONS = ("num_workers", "num_labeled", "metrics_every_images", "ckpt_every_images",
                        "snapshot_every_images", "sample_every_images")


def check_options(args: argparse.Namespace) -> None:
    """``UserError`` naming the first fit option outside its range."""
    for name in POSITIVE_OPTIONS:
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    for name in NON_NEGATIVE_OPTIONS:
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if args.channels is not None and args.channels not in (1, 3):
        raise UserError(f"--channels must be 1 (grey) or 3 (RGB), got {args.channels}")
    if args.resolution is not None and args.resolution < 4:
        raise UserError(f"--resolution must be at least 4, got {args.resolution}")
    if args.limit_train_batches is not None and args.limit_train_batches <= 0:
        raise UserError(f"--limit-train-batches must be positive, got {args.limit_train_batches}")


def metric_callbacks(args, dm, out: Path, model=None) -> list:
    """The metric callbacks that ``--metrics`` asks for (``auto``: whatever can run here, including the linear
    probe of a model with an encoder on a labelled data set)."""
    spec = args.metrics.strip().lower()
    if spec == "none":
        return []
    if not dm.is_image:
        if spec not in ("auto", "toy"):
            raise UserError(f"--metrics {spec}: the 2D toy data sets take --metrics toy (or none)")
        return [ToyModeMetrics(out / "samples", every_n_images=args.metrics_every_images, seed=args.seed)]
    if spec == "toy":
        raise UserError(f"--metrics toy needs a 2D toy data set, not {dm.name!r}")
    names = None if spec == "auto" else [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names or [] if n not in (*METRICS, "probe")]
    if bad or names == []:
        raise UserError(f"--metrics {spec}: unknown metric(s) {', '.join(bad) or '(none)'}; valid: a comma list of "
                        f"{', '.join(METRICS)} and probe; or toy, none, auto")
    has_encoder = model is not None and model.encode is not None
    probe = []
    if names is None or "probe" in names:
        if names is not None and not has_encoder:
            raise UserError(f"--metrics probe needs a model with an encoder (bigan, bigbigan), not "
                            f"{(model.model_name if model is not None else None)!r}")
        if names is not None and not dm.num_classes:
            raise UserError(f"--metrics probe needs a labeled data set, not {dm.name!r}")
        if has_encoder and dm.num_classes:
            probe = [LinearProbe(every_n_images=args.metrics_every_images)]
        names = None if names is None else [n for n in names if n != "probe"]
        if names == []:
            return probe
    extractor = default_extractor(dm.name, args.extractor)
    if names is None:
        if extractor == "inception":
            try:
                inception_path(args.inception_weights)
            except ExtractorError as e:
                print(f"metrics skipped: {e}", file=sys.stderr)
                return probe
        names = ["fid", "is", "kid"]
    return [ImageMetrics(parse_metrics(names), args.metric_samples, extractor, args.metric_split,
                         every_n_images=args.metrics_every_images, seed=args.seed,
                         inception_weights=args.inception_weights, progress=args.progress_bar)] + probe


def main(argv: list[str] | None = None) -> int:
    args, hparam_names = parse_args(argv)

    # The EMA generator is kept in eval mode on purpose; Lightning's pytree deprecation is not ours to fix.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*will save all extracted features.*")  # bounded by --metric-samples
    quiet_lightning_and_wandb()

    cls = get_model_class(args.model)
    out = Path(args.out or f"runs/{cls.model_name}-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file, not a directory")

    # Resolve the checkpoint before anything slow, so a bad path fails at once.
    ckpt_path, ckpt = None, None
    if args.ckpt_path:
        ckpt_path = out / "checkpoints" / "last.ckpt" if args.ckpt_path == "last" else Path(args.ckpt_path)
        if args.ckpt_path == "last" and not ckpt_path.is_file():
            raise UserError(f"--ckpt-path last: no checkpoint at {ckpt_path} (give the same --out as the run to resume)")
        ckpt = load_checkpoint(ckpt_path, model_name=cls.model_name, resume=True)

    L.seed_everything(args.seed, workers=True, verbose=False)
    resolution = args.resolution
    dm_cls = get_datamodule_class(args.data)
    if resolution is None and dm_cls.is_image:
        resolution = cls.resolve_resolution(dm_cls.native_resolution)  # e.g. PGGAN: 28x28 data trains at 32x32
    batch_size = args.batch_size if args.batch_size is not None else cls.default_batch_size
    num_labeled = args.num_labeled if args.num_labeled is not None else cls.default_num_labeled
    try:
        dm = get_datamodule(args.data, data_dir=args.data_dir, resolution=resolution, channels=args.channels,
                            batch_size=batch_size, num_workers=args.num_workers, seed=args.seed,
                            num_labeled=num_labeled, resize_mode=args.resize_mode, download=args.download)
    except ValueError as e:
        raise UserError(f"{args.data}: {e}") from e
    dm.prepare_data()  # finds the files now: a missing data set is reported before the model is built
    if not dm.is_image and not cls.supports_vectors:
        raise UserError(f"model {cls.model_name!r} works on images; {args.data!r} is a 2D toy data set")
    if dm.is_image and not cls.supports_images:
        raise UserError(f"model {cls.model_name!r} works on 2D toy data, not on images ({args.data!r})")
    if num_labeled:
        try:
            dm.labeled_indices()
        except ValueError as e:
            raise UserError(f"--num-labeled {num_labeled}: {e}") from e

    hparams = {n: getattr(args, n) for n in hparam_names}
    linked = {"channels": dm.channels, "resolution": dm.resolution, "num_classes": dm.num_classes,
              "data_dim": dm.data_dim}
    accepted = set(inspect.signature(cls.__init__).parameters)
    hparams.update({k: v for k, v in linked.items() if k in accepted})
    try:
        check_hparams(hparams)
        check_memory(cls, hparams, batch_size, args)
        model = cls(**hparams)
    except ValueError as e:
        raise UserError(f"{cls.model_name}: {e}") from e
    if ckpt is not None:
        load_matching_state(model, ckpt, str(ckpt_path))
        changed = hparam_differences(ckpt.get("hyper_parameters") or {}, dict(model.hparams))
        if changed:
            print(f"resuming {ckpt_path} with changed hyperparameters: {changed}; the optimizers take this run's "
                  "learning rates and betas (their moments come from the checkpoint)", file=sys.stderr)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)  # 4D parameters and buffers only; a checkpoint loads either way
    if args.compile:
        try:
            model.compile_networks(args.compile)
        except ValueError as e:
            raise UserError(f"--compile: {e}") from e

    max_images, max_epochs = args.max_images, args.max_epochs
    if max_images is None and max_epochs is None:  # no budget given: the model's own schedule, else one pass
        max_images = model.default_max_images
        max_epochs = None if max_images else 1
    asked = args.strategy
    args.strategy = resolve_strategy(args.strategy, args.accelerator, args.devices, args.num_nodes)

    signals = SignalCatcher()
    checkpoints = ImagesCheckpoint(out / "checkpoints", args.ckpt_every_images, args.snapshot_every_images,
                                   signals=signals)
    # The clock first (it times the training step alone), then the guard: where it checks, a non-finite loss stops
    # the fit before that batch's checkpoint (which checks the weights itself before it writes). The budget before the
    # checkpoint: the batch after which the fit stops is the one last.ckpt keeps.
    callbacks = [
        TrainClock(args.metrics_every_images),
        DivergenceGuard(out / "checkpoints" / "last.ckpt", every_n_steps=args.log_every_n_steps),
        ImagesBudget(max_images),
        checkpoints,
    ]
    if dm.is_image:
        callbacks.append(SampleGrid(out / "samples", args.sample_every_images))
    callbacks += metric_callbacks(args, dm, out, model)
    callbacks += model.default_callbacks(dm, out, args.metrics_every_images)
    if args.progress_bar:
        callbacks.append(ImagesProgressBar(max_images))
    logger = make_logger(args.logger, out, args.project)
    if logger:
        logger.images_seen = lambda: model.images_seen  # one x-axis for every logged value
    try:
        trainer = L.Trainer(
            max_epochs=max_epochs if max_epochs is not None else -1,
            limit_train_batches=args.limit_train_batches, accelerator=args.accelerator, devices=args.devices,
            num_nodes=args.num_nodes, strategy=args.strategy, precision=args.precision, logger=logger, callbacks=callbacks,
            plugins=[AtomicCheckpointIO()], enable_checkpointing=False, enable_progress_bar=args.progress_bar,
            enable_model_summary=False, log_every_n_steps=args.log_every_n_steps, default_root_dir=str(out),
            num_sanity_val_steps=0)
    except (ValueError, TypeError, MisconfigurationException) as e:
        raise UserError(f"cannot set up the trainer: {first_line(e)}") from e

    # Everything is checked: only now does the run directory appear.
    created = not out.exists()
    resolved = {k: v for k, v in vars(args).items() if k != "config"}
    resolved.update(out=str(out), strategy=args.strategy, model=cls.model_name, max_images=max_images,
                    max_epochs=max_epochs, resolution=dm.resolution, channels=dm.channels, batch_size=batch_size,
                    num_labeled=num_labeled)
    if isinstance(resolved["devices"], list):
        resolved["devices"] = ",".join(map(str, resolved["devices"]))
    try:
        if trainer.is_global_zero:
            write_run_config(out, resolved)
            if args.logger == "csv":
                keep_earlier_csv(out / "logs")
        if logger:
            logger.log_hyperparams({f"run/{k}": v for k, v in resolved.items() if k not in hparams})
        if trainer.is_global_zero:
            if asked in GAN_SAFE_DDP:
                print(strategy_note(asked, args.strategy), file=sys.stderr)
            print(f"{cls.model_name} on {dm.describe()} -> {out}", file=sys.stderr)
        try:
            with signals:
                trainer.fit(model, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
        finally:
            finish_logger(logger)
        if signals.requested is not None:  # arrived while the final checkpoint was being written
            raise FitInterrupted(signals.requested)
    except FitInterrupted as e:
        if created and not checkpoints.training_started and trainer.is_global_zero:
            shutil.rmtree(out, ignore_errors=True)
        if trainer.is_global_zero:
            print(interrupted_message(e, checkpoints, out), file=sys.stderr)
        return e.exit_status
    except BaseException:
        if created and not checkpoints.training_started and trainer.is_global_zero:
            shutil.rmtree(out, ignore_errors=True)  # bad input found late: no half-made run directory
        raise
    if trainer.is_global_zero:
        print(f"done: {model.images_seen} images seen; checkpoint {out / 'checkpoints' / 'last.ckpt'}"
              + (f"; samples {out / 'samples' / 'final.png'}" if dm.is_image else ""), file=sys.stderr)
    return 0


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_lightning_and_wandb() -> None:
    """Silence the notices a normal fit does not need: Lightning's advertisement for its hosted logger, its warning
    that an epoch is shorter than ``--log-every-n-steps`` (progress is counted in images, not epochs), and W&B's
    deprecation notice for the ``anonymous`` setting Lightning passes."""
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropMessages) for f in rank_zero.filters):
        rank_zero.addFilter(_DropMessages("litlogger"))
    warnings.filterwarnings("ignore", message=r".*is smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*anonymous setting.*")


def write_run_config(out: Path, resolved: dict) -> None:
    """Create the run directory and write ``config.yaml`` (atomically); an unusable ``--out`` is a ``UserError``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".config.yaml.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(yaml.safe_dump(resolved, sort_keys=False))
        os.chmod(tmp, 0o644)
        os.replace(tmp, out / "config.yaml")
    except OSError as e:
        raise UserError(f"--out {out}: cannot write the run directory: {e.strerror or e}") from e


def interrupted_message(e, checkpoints, out: Path) -> str:
    """One line: which signal, what was saved, and the command that resumes the fit."""
    name = signal.Signals(e.signum).name
    resume = f"resume with: {command_name()} --config {out / 'config.yaml'} --ckpt-path last"
    if e.checkpoint is not None:
        return f"interrupted by {name} at {e.images_seen} images seen: wrote {e.checkpoint}; {resume}"
    if not checkpoints.training_started:
        return f"interrupted by {name} before training started; nothing was saved"
    last = checkpoints.last_path
    if checkpoints.training_ended:
        return f"interrupted by {name} after training (during the end-of-fit metrics); {last} is complete"
    if last.is_file():
        return f"interrupted by {name} mid-step (a second signal); the last checkpoint is {last}; {resume}"
    return f"interrupted by {name} mid-step (a second signal) before the first checkpoint; nothing was saved"


def command_name() -> str:
    """How this process was started, for the commands messages suggest (``python scripts/fit.py``)."""
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "scripts/fit.py"
    return f"python {prog}" if prog.endswith(".py") else Path(prog).name


def check_memory(cls, hparams: dict, batch_size: int, args) -> None:
    """Refuse, before allocating anything, a model whose training step cannot fit in this machine's memory
    (``GANModule.training_memory`` on a copy built on the meta device, against the free memory of the GPU or
    the available RAM)."""
    try:
        with torch.device("meta"):
            need = cls(**hparams).training_memory(batch_size, 2 if "16" in str(args.precision) else 4)
    except ValueError:
        raise
    except Exception:  # a model that cannot be built on the meta device is built for real and not estimated
        return
    have, where = available_memory(args.accelerator)
    if have and need > have:
        gib = 2 ** 30
        raise ValueError(f"training at resolution {hparams.get('resolution')} with batch size {batch_size} needs "
                         f"at least {need / gib:.1f} GiB (weights, gradients, Adam moments and activations, "
                         f"estimated), more than the {have / gib:.1f} GiB of {where}; use a smaller --resolution, "
                         "--batch-size or network width")


def available_memory(accelerator: str) -> tuple[int, str]:
    """``(bytes, what)``: the free memory of the first GPU where the fit would use one, else the RAM the kernel
    reports as available; ``(0, "")`` where neither can be read."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info()
        return free, "free GPU memory"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024, "available RAM"
    except OSError:
        pass
    return 0, ""


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)
