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
import os
import sys
import time
from pathlib import Path

import yaml

from gan_zoo.cli import UserError, add_hparams, read_config, run_main

DATA_LINKED = ("channels", "resolution", "num_classes", "data_dim")  # model arguments filled in from the data set
LOGGERS = ("wandb", "tensorboard", "csv", "none")


def _devices(value: str):
    if value == "auto":
        return value
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return int(value)


def _limit(value: str):
    v = float(value)
    return int(v) if v.is_integer() and v > 1 else v


def resolve_strategy(strategy: str, accelerator: str, devices) -> str:
    """``auto`` becomes ``gan_ddp`` when the fit runs on more than one device (Lightning's own ``auto`` would pick
    DDP without unused-parameter detection, which a GAN step's frozen network breaks); anything else passes."""
    if strategy != "auto":
        return strategy
    if isinstance(devices, (list, tuple)):
        n = len(devices)
    elif devices == "auto" or devices == -1:
        import torch

        gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
        n = torch.cuda.device_count() if gpu else 1
    else:
        n = int(devices)
    return "gan_ddp" if n > 1 else "auto"


def base_parser(add_help: bool) -> argparse.ArgumentParser:
    from datamodules import list_datamodules
    from gan_zoo.registry import list_models

    p = argparse.ArgumentParser(
        prog="fit.py", add_help=add_help, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
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
    t.add_argument("--strategy", default="auto",
                   help="Lightning strategy: auto (one device, or gan_ddp on several: the measured default for "
                        "GANs, see BENCHMARKS.md), gan_ddp, ddp_find_unused_parameters_true, ddp_spawn, ...")
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
    """Two passes: find --model and --config first, then parse everything with that model's options."""
    from gan_zoo.registry import get_model_class

    argv = list(sys.argv[1:] if argv is None else argv)
    pre, _ = base_parser(add_help=False).parse_known_args(argv)
    config = read_config(pre.config) if pre.config else {}
    model_name = pre.model or config.get("model")
    parser = base_parser(add_help=True)
    hparam_names: list[str] = []
    if model_name:
        cls = get_model_class(model_name)
        hparam_names = add_hparams(parser, cls, set(DATA_LINKED), f"{cls.model_name} hyperparameters")
    valid = {a.dest for a in parser._actions}
    unknown = sorted(set(config) - valid)
    if unknown:
        raise UserError(f"unknown option(s) in {pre.config}: {', '.join(unknown)}")
    parser.set_defaults(**config)
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("the following argument is required: --model")
    return args, hparam_names


def metric_callbacks(args, dm, out: Path, model=None) -> list:
    """The metric callbacks that ``--metrics`` asks for (``auto``: whatever can run here, including the linear
    probe of a model with an encoder on a labelled data set)."""
    from gan_zoo.callbacks.encoder import LinearProbe
    from gan_zoo.callbacks.metrics import ImageMetrics
    from gan_zoo.callbacks.toy import ToyModeMetrics
    from gan_zoo.metrics.extractors import ExtractorError, default_extractor, inception_path
    from gan_zoo.metrics.image_metrics import METRICS, parse_metrics

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
    has_encoder = model is not None and hasattr(model, "encode")
    probe = []
    if names is None or "probe" in names:
        if names is not None and not has_encoder:
            raise UserError(f"--metrics probe needs a model with an encoder (bigan, bigbigan), not "
                            f"{getattr(model, 'model_name', model)!r}")
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
                         inception_weights=args.inception_weights)] + probe


def make_logger(args, out: Path):
    """The logger named by ``--logger``; W&B goes offline (with a hint how to sync) when no credentials exist."""
    if args.logger == "none":
        return False
    if args.logger == "csv":
        from lightning.pytorch.loggers import CSVLogger

        _keep_earlier_csv(out / "logs")
        return CSVLogger(str(out), name="logs", version="")
    if args.logger == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(str(out), name="tensorboard", version="")
    from lightning.pytorch.loggers import WandbLogger

    mode = os.environ.get("WANDB_MODE")
    if mode is None and not _wandb_credentials():
        mode = "offline"
        print(f"W&B: no credentials found, logging offline under {out / 'wandb'}; upload later with "
              f"`wandb sync {out / 'wandb'}/offline-run-*`", file=sys.stderr)
    logger = WandbLogger(project=args.project, name=out.name, save_dir=str(out), mode=mode)
    return logger


def _keep_earlier_csv(logs: Path) -> None:
    """Lightning's CSV logger starts ``metrics.csv`` afresh, deleting what an earlier run into the same ``--out``
    wrote (a resumed run would lose the metrics of its first part). Move that file aside as ``metrics.<k>.csv``, ``k``
    counting the earlier parts in order, so ``metrics.csv`` is always the latest part and nothing is lost."""
    current = logs / "metrics.csv"
    if not current.is_file() or current.stat().st_size == 0:
        return
    k = 1
    while (logs / f"metrics.{k}.csv").exists():
        k += 1
    current.rename(logs / f"metrics.{k}.csv")
    print(f"csv logger: the earlier run's metrics kept as {logs / f'metrics.{k}.csv'}", file=sys.stderr)


def _finish_logger(logger) -> None:
    """Close a W&B run so its files (summary, history) are complete, also when several fits share a process."""
    from lightning.pytorch.loggers import WandbLogger

    if isinstance(logger, WandbLogger) and logger._experiment is not None:
        logger.experiment.finish()


def _wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import netrc

        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    args, hparam_names = parse_args(argv)

    import warnings

    import lightning as L
    import torch

    # The EMA generator is kept in eval mode on purpose; Lightning's pytree deprecation is not ours to fix.
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*will save all extracted features.*")  # bounded by --metric-samples

    from datamodules import get_datamodule, get_datamodule_class
    from gan_zoo.callbacks import ImagesCheckpoint, ImagesProgressBar, SampleGrid
    from gan_zoo.callbacks.divergence import DivergenceGuard
    from gan_zoo.checkpoint_io import AtomicCheckpointIO, load_checkpoint
    from gan_zoo.registry import get_model_class

    cls = get_model_class(args.model)
    out = Path(args.out or f"runs/{cls.model_name}-{args.data}-{time.strftime('%Y%m%d-%H%M%S')}")

    # Resolve the checkpoint before anything slow, so a bad path fails at once.
    ckpt_path = None
    if args.ckpt_path:
        ckpt_path = out / "checkpoints" / "last.ckpt" if args.ckpt_path == "last" else Path(args.ckpt_path)
        if args.ckpt_path == "last" and not ckpt_path.is_file():
            raise UserError(f"--ckpt-path last: no checkpoint at {ckpt_path} (give the same --out as the run to resume)")
        load_checkpoint(ckpt_path, model_name=cls.model_name)

    L.seed_everything(args.seed, workers=True, verbose=False)
    resolution = args.resolution
    dm_cls = get_datamodule_class(args.data)
    if resolution is None and dm_cls.is_image and hasattr(cls, "resolve_resolution"):
        resolution = cls.resolve_resolution(dm_cls.native_resolution)  # e.g. PGGAN: 28x28 data trains at 32x32
    batch_size = args.batch_size or getattr(cls, "default_batch_size", 64)
    num_labeled = args.num_labeled if args.num_labeled is not None else getattr(cls, "default_num_labeled", 0)
    dm = get_datamodule(args.data, data_dir=args.data_dir, resolution=resolution, channels=args.channels,
                        batch_size=batch_size, num_workers=args.num_workers, seed=args.seed,
                        num_labeled=num_labeled, resize_mode=args.resize_mode, download=args.download)
    dm.prepare_data()  # finds the files now: a missing data set is reported before the model is built
    if not dm.is_image and not getattr(cls, "supports_vectors", False):
        raise UserError(f"model {cls.model_name!r} works on images; {args.data!r} is a 2D toy data set")
    if dm.is_image and not getattr(cls, "supports_images", True):
        raise UserError(f"model {cls.model_name!r} works on 2D toy data, not on images ({args.data!r})")

    hparams = {n: getattr(args, n) for n in hparam_names}
    linked = {"channels": dm.channels, "resolution": dm.resolution, "num_classes": dm.num_classes,
              "data_dim": dm.data_dim}
    accepted = set(inspect.signature(cls.__init__).parameters)
    hparams.update({k: v for k, v in linked.items() if k in accepted})
    try:
        model = cls(**hparams)
    except ValueError as e:
        raise UserError(f"{cls.model_name}: {e}") from e
    if args.channels_last:
        model.to(memory_format=torch.channels_last)  # 4D parameters and buffers only; a checkpoint loads either way
    if args.compile:
        try:
            model.compile_networks(args.compile)
        except ValueError as e:
            raise UserError(f"--compile: {e}") from e

    max_images, max_epochs = args.max_images, args.max_epochs
    if max_images is None and max_epochs is None:  # no budget given: the model's own schedule, else one pass
        max_images = getattr(model, "default_max_images", None)
        max_epochs = None if max_images else 1
    out.mkdir(parents=True, exist_ok=True)
    resolved = {k: v for k, v in vars(args).items() if k != "config"}
    args.strategy = resolve_strategy(args.strategy, args.accelerator, args.devices)
    resolved.update(strategy=args.strategy, model=cls.model_name, max_images=max_images, max_epochs=max_epochs,
                    resolution=dm.resolution,
                    channels=dm.channels, batch_size=batch_size, num_labeled=num_labeled)
    (out / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))

    callbacks = [  # the guard first: a non-finite loss stops the fit before that batch's checkpoint
        DivergenceGuard(out / "checkpoints" / "last.ckpt"),
        ImagesCheckpoint(out / "checkpoints", args.ckpt_every_images, args.snapshot_every_images, max_images),
    ]
    if dm.is_image:
        callbacks.append(SampleGrid(out / "samples", args.sample_every_images))
    callbacks += metric_callbacks(args, dm, out, model)
    callbacks += getattr(model, "default_callbacks", lambda dm, out: [])(dm, out)
    if args.progress_bar:
        callbacks.append(ImagesProgressBar())
    logger = make_logger(args, out)
    trainer = L.Trainer(
        max_epochs=max_epochs if max_epochs is not None else -1,
        limit_train_batches=args.limit_train_batches, accelerator=args.accelerator, devices=args.devices,
        strategy=args.strategy, precision=args.precision, logger=logger, callbacks=callbacks,
        plugins=[AtomicCheckpointIO()], enable_checkpointing=False, enable_progress_bar=args.progress_bar,
        enable_model_summary=False, log_every_n_steps=args.log_every_n_steps, default_root_dir=str(out),
        num_sanity_val_steps=0)
    if logger:
        logger.log_hyperparams({f"run/{k}": v for k, v in resolved.items() if k not in hparams})
    if trainer.is_global_zero:
        print(f"{cls.model_name} on {dm.describe()} -> {out}", file=sys.stderr)
    try:
        trainer.fit(model, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    finally:
        _finish_logger(logger)
    if trainer.is_global_zero:
        print(f"done: {model.images_seen} images seen; checkpoint {out / 'checkpoints' / 'last.ckpt'}"
              + (f"; samples {out / 'samples' / 'final.png'}" if dm.is_image else ""), file=sys.stderr)
    if trainer.interrupted:
        return 130
    return 0


def cli(argv: list[str] | None = None) -> int:
    return run_main(main, argv)
