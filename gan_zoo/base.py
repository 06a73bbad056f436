"""``GANModule``: the mechanics every GAN in the zoo shares, and nothing of any GAN's algorithm.

- manual optimization (``automatic_optimization = False``);
- a counter of images seen (global, across ranks), saved in checkpoints and logged as ``train/kimg``;
- an EMA copy of the generator (``ema_decay=0`` turns it off) that ``sample()`` uses;
- fixed sampling noise as a non-persistent buffer, for sample grids that are comparable over a run;
- RNG states saved in checkpoints, so a resumed run continues exactly.

``GANModule`` also declares, with their defaults, what the scripts (fit.py, evaluate.py, sample.py, export.py) ask of a
model: the data it trains on, its default batch size and budget, its extra callbacks, and its optional methods.

Subclasses build ``self.generator`` (and whatever else they train), call ``init_ema()``, own ``training_step`` and
``configure_optimizers``, and call ``self.save_hyperparameters()`` at the end of their own ``__init__``.
"""

from __future__ import annotations

import copy
import inspect
import random
from pathlib import Path
from typing import Callable

import lightning as L
import torch
from torch import Tensor, nn

from gan_zoo.loggers import StepMeans
from gan_zoo.registry import MODELS

FIXED_NOISE_SEED = 1234


class GANModule(L.LightningModule):
    """Shared mechanics for manual-optimization GANs.

    Args:
        latent_dim: size of the generator's input noise.
        ema_decay: decay of the generator EMA (0 disables it; ``sample()`` then uses the raw generator).
        n_fixed_samples: number of fixed noise vectors for sample grids.
    """

    model_name: str = "gan"  # set by @register_model

    # --- what the scripts ask of a model -----------------------------------------------------------------------------
    # fit.py, evaluate.py, sample.py and export.py read these, and only these, by name; a model overrides what differs.

    supports_images: bool = True  # trains on the image data sets
    supports_vectors: bool = False  # trains on the 2D toy data sets (vector data, MLP networks)
    default_batch_size: int = 64  # batch size per device where --batch-size is not given
    default_num_labeled: int = 0  # labeled images where --num-labeled is not given (> 0: a semi-supervised model)
    # Optional methods: None where a model lacks the capability; a model that has it defines the method.
    encode: Callable[..., Tensor] | None = None  # encode(x) -> latents (N, latent_dim): the probe and inversion metrics
    classify: Callable[..., Tensor] | None = None  # classify(x) -> class logits (N, K): export's test accuracy
    check_member: Callable[[int], None] | None = None  # check_member(i) (MemberSampling): --member of sample/evaluate

    @classmethod
    def resolve_resolution(cls, native: int) -> int:
        """The image side a fit trains at on data of side ``native`` where --resolution is not given: ``native``
        (PGGAN: the next power of two)."""
        return native

    @classmethod
    def hparam_default(cls, name: str):
        """The default --help shows for hyperparameter ``name`` whose signature default is None (resolved in
        ``__init__``): the model's class attribute ``default_<name>`` where it declares one (bigan's
        ``default_loss``), else None."""
        return getattr(cls, f"default_{name}", None)

    @property
    def default_max_images(self) -> int | None:
        """The image budget where neither --max-images nor --max-epochs is given: None, one epoch (PGGAN: the end of
        its schedule)."""
        return None

    def default_callbacks(self, dm, out: Path, every_n_images: int = 0) -> list:
        """The callbacks a fit of this model on data module ``dm`` adds, writing under the run directory ``out``, with
        periodic evaluations every ``every_n_images`` (``--metrics-every-images``; 0: at the end): none (bigan:
        reconstruction grids; pggan: a grid per resolution; semisupgan: the test accuracy)."""
        return []

    def __init__(self, latent_dim: int, ema_decay: float = 0.999, n_fixed_samples: int = 64):
        super().__init__()
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.automatic_optimization = False
        self.latent_dim = latent_dim
        self.ema_decay = ema_decay
        self.images_seen = 0  # a Python int: schedules read it on the hot path without a device sync
        self.ema_updates = 0
        self._step_means = StepMeans()  # per-step logged values between logger writes
        self.generator_ema: nn.Module | None = None
        self.clamp_output = True  # images are clamped to [-1, 1]; vector models (the toys) set this False
        g = torch.Generator().manual_seed(FIXED_NOISE_SEED)
        self.register_buffer("fixed_z", self.sample_latent(n_fixed_samples, generator=g), persistent=False)

    def save_hyperparameters(self, *args, ignore=None, frame=None, logger: bool = True) -> None:
        """Lightning's ``save_hyperparameters`` (of the calling ``__init__``), then ``check_hparams`` on them: a
        learning rate, width or weight out of its range is a ``ValueError`` naming it, for every model."""
        super().save_hyperparameters(*args, ignore=ignore, frame=frame or inspect.currentframe().f_back,
                                     logger=logger)
        check_hparams(self.hparams)

    # --- latent space & sampling -------------------------------------------------------------------------------------

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``n`` latent vectors; standard normal by default. Drawn on the CPU when ``generator`` is given."""
        if generator is not None:
            z = torch.randn(n, self.latent_dim, generator=generator)
            return z if device is None else z.to(device)
        return torch.randn(n, self.latent_dim, device=device)

    @property
    def sampling_generator(self) -> nn.Module:
        """The generator used for samples and metrics: the EMA copy where there is one."""
        return self.generator_ema if self.generator_ema is not None else self.generator

    @torch.no_grad()
    def generate(self, z: Tensor, batch_size: int = 256, **kwargs) -> Tensor:
        """Images from the sampling generator for latents ``z`` (eval mode), clamped to [-1, 1], in contiguous
        memory format (also when the networks are channels-last); ``kwargs`` go to the generator (e.g. PGGAN's
        ``level`` and ``alpha``)."""
        return self._generate_with(self.sampling_generator, z, batch_size, **kwargs)

    @torch.no_grad()
    def _generate_with(self, g: nn.Module, z: Tensor, batch_size: int = 256, **kwargs) -> Tensor:
        """``generate`` with generator ``g`` (e.g. an ensemble's member)."""
        was_training = g.training
        g.eval()
        try:
            out = torch.cat([g(zb, **kwargs) for zb in z.to(self.device).split(batch_size)])
        finally:
            g.train(was_training)
        out = out.contiguous()
        return out.clamp_(-1.0, 1.0) if self.clamp_output else out

    def sample(self, n: int, seed: int | None = None) -> Tensor:
        """``n`` samples ``(N, C, H, W)`` in [-1, 1] (vector models: ``(N, D)``); the same ``seed`` gives the same
        samples on any device."""
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.generate(self.sample_latent(n, generator=gen, device=self.device))

    def sample_fixed(self) -> Tensor:
        """Samples for the fixed noise (the sample grids)."""
        return self.generate(self.fixed_z)

    # --- EMA ---------------------------------------------------------------------------------------------------------

    def init_ema(self) -> None:
        """Create the EMA copy of ``self.generator`` (call once the generator is built)."""
        if self.ema_decay > 0:
            self.generator_ema = copy.deepcopy(self.generator).requires_grad_(False).eval()

    @torch.no_grad()
    def update_ema(self) -> None:
        """One EMA step of the generator (see ``ema_step_``)."""
        if self.generator_ema is None:
            return
        ema_step_(self.generator_ema, self.generator, self.ema_decay, self.ema_updates)
        self.ema_updates += 1

    # --- compilation -------------------------------------------------------------------------------------------

    compile_skip: tuple[str, ...] = ()  # trained networks left eager by compile_networks (a model says why)

    def trained_networks(self) -> dict[str, nn.Module]:
        """The networks the training step runs (name -> module): every child with trainable parameters except the
        EMA copy, containers (``ModuleList``, ``ModuleDict``) expanded into their members."""
        nets: dict[str, nn.Module] = {}
        for name, child in self.named_children():
            if name == "generator_ema" or not any(p.requires_grad for p in child.parameters()):
                continue
            if isinstance(child, (nn.ModuleList, nn.ModuleDict)):
                nets.update({f"{name}.{k}": m for k, m in child.named_children()})
            else:
                nets[name] = child
        return nets

    def compile_networks(self, backend: str = "inductor") -> list[str]:
        """``torch.compile`` every trained network in place (``nn.Module.compile``: parameter names, state dicts and
        checkpoints stay as they are; the EMA generator, used only for samples and metrics, stays eager, and so do the
        networks in ``compile_skip``). Compiling happens on each network's first call. Returns the compiled
        networks' names."""
        import torch._dynamo  # only with --compile: importing it takes 2 s

        valid = torch._dynamo.list_backends(exclude_tags=())
        if backend not in valid:
            raise ValueError(f"unknown torch.compile backend {backend!r}; valid: {', '.join(sorted(valid))}")
        nets = {k: v for k, v in self.trained_networks().items() if k not in self.compile_skip}
        for net in nets.values():
            net.compile(backend=backend)
        return list(nets)

    # --- optimizers ----------------------------------------------------------------------------------------------

    def adam(self, params, lr: float | None = None, d: bool = False) -> torch.optim.Adam:
        """Adam (fused, see ``adam_impl``) over ``params`` with the model's ``beta1`` / ``beta2`` (as floats: torch
        rejects an int 0 in betas);
        ``lr`` defaults to the model's ``lr``, or with ``d=True`` to ``lr_d`` when that is set."""
        hp = self.hparams
        if lr is None:
            lr = hp.lr_d if d and hp.get("lr_d") is not None else hp.lr
        return torch.optim.Adam(params, lr=lr, betas=(float(hp.beta1), float(hp.beta2)), **adam_impl())

    # --- progress ----------------------------------------------------------------------------------------------------

    def count_images(self, batch_size: int) -> None:
        """Add one global batch (``batch_size`` per rank) to the images-seen counter."""
        world = self.trainer.world_size if self._trainer is not None else 1
        self.images_seen += int(batch_size) * world

    def should_log_step(self) -> bool:
        """True on the steps the loggers write (Lightning's ``log_every_n_steps``)."""
        if self._trainer is None:
            return False
        return bool(getattr(getattr(self.trainer, "_logger_connector", None), "should_update_logs", True))

    def log_train(self, logs: dict, bar: dict | None = None) -> None:
        """Per-step training values (0-d tensors or numbers), logged with ``train/kimg`` as their means over the
        steps since the last write, on the steps the loggers write (``should_log_step``). Between writes they are
        only summed (``StepMeans``). ``bar``: the progress bar's entries, each the name of a key of ``logs`` (its
        mean) or a number."""
        self._step_means.add(logs)
        if not self.should_log_step():
            return
        means = self._step_means.means()
        shown = {k: means[v] if isinstance(v, str) else v for k, v in (bar or {}).items()}
        self.write_train_logs({**means, "train/kimg": self.images_seen / 1000.0}, shown)

    def write_train_logs(self, metrics: dict[str, float], shown: dict) -> None:
        """Hand ``metrics`` to every logger as Lightning's own logging step does (at its step, with ``epoch``) and
        into ``trainer.callback_metrics``, and ``shown`` to the progress bar: ``log_train`` on a logging step.

        Not through ``self.log``: its result collection costs several milliseconds per call, a sizeable share of a
        small model's step (BENCHMARKS.md, "Where a tiny step's time goes"). Where Lightning lacks the internals
        used here, ``self.log`` it is."""
        connector = getattr(self.trainer, "_logger_connector", None)
        epoch_loop = getattr(getattr(self.trainer, "fit_loop", None), "epoch_loop", None)
        if connector is None or not hasattr(epoch_loop, "_batches_that_stepped") or not all(
                hasattr(connector, a) for a in ("log_metrics", "_callback_metrics", "_progress_bar_metrics")):
            self.log_dict(metrics, on_step=True, on_epoch=False)  # a Lightning without these internals
            if shown:
                self.log_dict(shown, on_step=True, on_epoch=False, prog_bar=True, logger=False)
            return
        # the step Lightning writes a batch's logged values at: the batches that stepped before it
        connector.log_metrics({**metrics, "epoch": self.current_epoch}, step=epoch_loop._batches_that_stepped)
        connector._callback_metrics.update({k: torch.tensor(float(v)) for k, v in metrics.items()})
        connector._progress_bar_metrics.update(shown)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.generator_ema is not None:
            self.generator_ema.eval()  # the EMA generator never trains; keep its BN in inference mode
        return self

    # --- memory ---------------------------------------------------------------------------------------------------

    def training_memory(self, batch_size: int, activation_bytes: int = 4) -> int:
        """Bytes a training step needs, estimated without allocating (call it on a model built under
        ``torch.device("meta")``): 16 per trained parameter (fp32 weight, gradient, two Adam moments), 4 per frozen
        one (the EMA generator), and the activations of one G forward and two D forwards on ``batch_size`` samples,
        kept for the backward pass and matched by their gradients. Networks whose forward takes more than a batch
        (a joint discriminator) add no activations: a lower bound, meant to refuse what cannot fit."""
        trained = sum(p.numel() for p in self.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in self.parameters() if not p.requires_grad)
        return 16 * trained + 4 * frozen + 2 * activation_bytes * self._activation_count(batch_size)

    def _activation_count(self, batch_size: int) -> int:
        count = [0]

        def hook(module, inputs, output):
            if torch.is_tensor(output):
                count[0] += output.numel()

        nets = [m for m in (getattr(self, "generator", None), getattr(self, "discriminator", None))
                if isinstance(m, nn.Module)]
        hooks = [m.register_forward_hook(hook) for net in nets for m in net.modules() if not list(m.children())]
        try:
            x = self.generator(self.sample_latent(batch_size, device=next(self.parameters()).device))
            self.discriminator(x)
            self.discriminator(x)
        except Exception:  # a network that needs more than a batch: count what ran
            pass
        finally:
            for h in hooks:
                h.remove()
        return count[0]

    # --- resuming -----------------------------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        # The optimizers as configure_optimizers built them from this run's hyperparameters, before a resumed fit
        # loads the checkpoint's optimizer states (whose param groups carry the old learning rates).
        self._configured_groups = [[{k: g[k] for k in OPTIMIZER_SETTINGS if k in g} for g in _inner(o).param_groups]
                                   for o in self.trainer.optimizers]

    def on_train_start(self) -> None:
        self.resumed_optimizer_changes = apply_optimizer_settings(
            [_inner(o) for o in self.trainer.optimizers], getattr(self, "_configured_groups", None))

    # --- pretrained export ----------------------------------------------------------------------------------------

    def export_modules(self) -> dict[str, nn.Module]:
        """The modules a pretrained export keeps (attribute name -> module): the sampling generator. Models that
        serve another purpose too add theirs (an encoder, a classifier)."""
        name = "generator_ema" if self.generator_ema is not None else "generator"
        return {name: getattr(self, name)}

    def restore_progress(self, images_seen: int) -> None:
        """Set the images-seen counter of a model built from an export (schedules follow it)."""
        self.images_seen = int(images_seen)

    # --- checkpoint state --------------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["gan_zoo"] = {
            "model": self.model_name,
            "images_seen": self.images_seen,
            "ema_updates": self.ema_updates,
            "rng": rng,
            "data": self._data_info(),
        }

    def _data_info(self) -> dict:
        """What the model was trained on (for evaluation without the run's config): the data set's name, resolution,
        channels and resize mode, and the number of labeled images where it trained semi-supervised. Never its
        directory: the user says where data lives, a checkpoint never does."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if dm is None:
            return {}
        info = {"name": dm.name, "resolution": dm.resolution, "channels": dm.channels,
                "resize_mode": getattr(dm, "resize_mode", "resize")}
        if getattr(dm, "num_labeled", 0):
            info["num_labeled"] = int(dm.num_labeled)
        return info

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get("gan_zoo")
        if meta is None:
            raise ValueError("not a gan_zoo checkpoint: the 'gan_zoo' entry is missing")
        if not MODELS.same(meta.get("model"), self.model_name):  # an alias: a checkpoint of the model's old name
            raise ValueError(f"checkpoint is for model {meta.get('model')!r}, not {self.model_name!r}")
        self.images_seen = int(meta["images_seen"])
        self.ema_updates = int(meta.get("ema_updates", 0))
        rng = meta.get("rng")
        if rng:
            torch.set_rng_state(rng["torch"])
            random.setstate(_as_random_state(rng["python"]))
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])


class MemberSampling:
    """Sampling one member of a model made of several generators (an ensemble's local generators, a population's
    parents): ``sample(n, seed, member=i)`` and ``generate(z, member=i)`` use member ``i`` (1-based); without
    ``member`` they are the model's usual sampling. Put it before ``GANModule`` in the bases and define
    ``member_generators()`` (the generators members are sampled from, in order) and ``member_noun`` (what the
    error message calls them); ``member_owner`` is what it calls the model (default: its name, upper-cased)."""

    member_noun = "members"
    member_owner: str | None = None

    def member_generators(self) -> list[nn.Module]:
        raise NotImplementedError

    def check_member(self, member: int) -> None:
        """``ValueError`` unless ``member`` names one of the members (1..N)."""
        n = len(self.member_generators())
        if not 1 <= member <= n:
            owner = self.member_owner or self.model_name.upper()
            raise ValueError(f"member must be in 1..{n} (this {owner} has {n} {self.member_noun}), got {member}")

    def generate(self, z: Tensor, batch_size: int = 256, member: int | None = None, **kwargs) -> Tensor:
        """Samples of the model's sampling generator for latents ``z``, or of member ``member`` (1..N)."""
        if member is None:
            return super().generate(z, batch_size, **kwargs)
        self.check_member(member)
        return self._generate_with(self.member_generators()[member - 1], z, batch_size, **kwargs)

    def sample(self, n: int, seed: int | None = None, member: int | None = None) -> Tensor:
        """``n`` samples of the model's sampling generator, or of member ``member`` (1..N)."""
        if member is None:
            return super().sample(n, seed)
        self.check_member(member)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.generate(self.sample_latent(n, generator=gen, device=self.device), member=member)


OPTIMIZER_SETTINGS = ("lr", "betas", "eps", "weight_decay")  # what a run's hyperparameters set in a param group

# Ranges of the hyperparameters several models share, checked by ``check_hparams`` wherever a model has them.
POSITIVE = ("lr", "lr_d", "lr_e_mult", "adam_eps", "latent_dim", "ngf", "ndf", "nef", "hidden", "d_hidden",
            "fmap_base", "fmap_max", "n_fixed_samples", "mu", "n_pairs", "phase_images", "d_steps",
            "minibatch_kernel_dim", "mbstd_group")
UNIT_INTERVAL = ("beta1", "beta2", "ema_decay", "d_ema_decay", "dropout", "d_dropout", "label_smoothing")  # [0, 1)
NON_NEGATIVE = ("instance_noise", "instance_noise_images", "drift", "gp_weight", "gamma", "r1", "minibatch_kernels",
                "unsup_weight")


def check_hparams(hparams) -> None:
    """``ValueError`` naming the first shared hyperparameter outside its range (``POSITIVE``: > 0,
    ``UNIT_INTERVAL``: in [0, 1), ``NON_NEGATIVE``: >= 0); None (a default resolved later) passes."""
    for name, value in hparams.items():
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name in POSITIVE and not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
        if name in UNIT_INTERVAL and not 0 <= value < 1:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
        if name in NON_NEGATIVE and not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")


def _inner(optimizer):
    """The torch optimizer inside Lightning's ``LightningOptimizer`` wrapper."""
    return getattr(optimizer, "optimizer", optimizer)


def apply_optimizer_settings(optimizers, configured) -> list[str]:
    """Set the learning rate, betas, eps and weight decay of every param group of ``optimizers`` to ``configured``
    (per optimizer, per group, as ``configure_optimizers`` built them) where a restored state differs; the moments
    and step counts stay restored. A group that keeps its base rate in ``initial_lr`` (a decaying schedule) gets the
    new base there. Returns ``"optimizer i: lr 0.0002 -> 0.0001"`` for each change."""
    changes: list[str] = []
    if not configured or len(configured) != len(optimizers):
        return changes
    for i, (opt, groups) in enumerate(zip(optimizers, configured)):
        if len(groups) != len(opt.param_groups):
            continue
        for group, fresh in zip(opt.param_groups, groups):
            for key, value in fresh.items():
                old = group.get("initial_lr", group[key]) if key == "lr" else group.get(key)
                if _same(old, value):
                    continue
                changes.append(f"optimizer {i}: {key} {old} -> {value}")
                group[key] = value
                if key == "lr" and "initial_lr" in group:
                    group["initial_lr"] = value
    return changes


def _same(a, b) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if torch.is_tensor(a) or torch.is_tensor(b):
        return float(a) == float(b)
    return a == b


def adam_impl() -> dict:
    """Adam's implementation: the fused kernel (one kernel per parameter group instead of a dozen per parameter),
    which ``benchmarks/speed_options.py`` measured 1.075x faster than torch's default on the CPU for the whole DCGAN
    step (BENCHMARKS.md). Every optimizer of the zoo, and the plain loops it is compared with, use it."""
    return {"fused": True}


@torch.no_grad()
def ema_step_(ema: nn.Module, model: nn.Module, decay: float, t: int) -> None:
    """``ema <- beta * ema + (1 - beta) * model`` with a warm-up ``beta = min(decay, (1 + t) / (10 + t))`` at update
    number ``t``. The warm-up keeps the first, random weights from dominating short runs. Buffers (BN statistics,
    PGGAN's stage) are copied."""
    beta = min(decay, (1.0 + t) / (10.0 + t))
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def _as_random_state(state):
    # random.setstate needs (int, tuple, None-or-float); a checkpoint round trip may turn tuples into lists.
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
