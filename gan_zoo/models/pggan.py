"""PGGAN (Karras et al. 2017): progressive growing from 4x4 with fade-ins, WGAN-GP with drift, equalized learning
rate, pixel norm, minibatch stddev, EMA generator.

The schedule is measured in images seen. Level 0 (4x4) has one stabilise phase; every later level a fade-in phase
(alpha from 0 to 1) and then a stabilise phase. All blocks exist from the start (DDP wraps them once); the stage is
a function of the images-seen counter, and the phase of the last step is checkpointed, so a resumed fit continues
mid-fade with the same alpha, the same optimizer states and the same losses.
"""

from __future__ import annotations

import struct

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gan_zoo.base import GANModule, adam_impl
from gan_zoo.callbacks.resolution_grids import ResolutionGrids
from gan_zoo.datamodules.base import Batch
from gan_zoo.losses import drift_penalty, gradient_penalty, wgan_d_loss, wgan_g_loss
from gan_zoo.networks.pggan import PGDiscriminator, PGGenerator, num_levels
from gan_zoo.registry import register_model


def parse_per_resolution(spec: str, what: str) -> dict[int, int]:
    """``"4:64,8:64,16:32"`` -> ``{4: 64, 8: 64, 16: 32}`` (empty string -> {})."""
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        try:
            res, value = part.split(":")
            out[int(res)] = int(value)
        except ValueError:
            raise ValueError(f"{what}: expected 'resolution:value,...' (e.g. '4:64,8:32'), got {spec!r}") from None
    return out


@dataclass(frozen=True)
class Stage:
    level: int  # 0 = 4x4
    alpha: float  # 1 = the new block only
    phase: int  # index of the phase in the schedule
    resolution: int
    fading: bool


class ProgressiveSchedule:
    """Maps images seen to (level, alpha): level 0 stabilise, then per level a fade and a stabilise phase.

    Args:
        levels: number of levels (4x4 up to the final resolution).
        phase_images: images per phase (every stabilise and every fade phase).
        per_resolution: overrides of ``phase_images`` by resolution.
        batch_sizes: batch size by resolution (missing ones use ``default_batch``).
        default_batch: batch size where ``batch_sizes`` says nothing.
    """

    def __init__(self, levels: int, phase_images: int, per_resolution: dict[int, int] | None = None,
                 batch_sizes: dict[int, int] | None = None, default_batch: int | None = None):
        if phase_images <= 0:
            raise ValueError(f"phase_images must be > 0, got {phase_images}")
        self.levels, self.batch_sizes, self.default_batch = levels, dict(batch_sizes or {}), default_batch
        per_resolution = per_resolution or {}
        valid = {4 * 2 ** k for k in range(levels)}
        for res in list(per_resolution) + list(self.batch_sizes):
            if res not in valid:
                raise ValueError(f"resolution {res} in the schedule is not one of {sorted(valid)}")
        self.phases: list[tuple[int, bool, int, int]] = []  # (level, fading, start, length)
        start = 0
        for level in range(levels):
            length = per_resolution.get(4 * 2 ** level, phase_images)
            kinds = (False,) if level == 0 else (True, False)
            for fading in kinds:
                self.phases.append((level, fading, start, length))
                start += length
        self.total = start

    def at(self, images_seen: int) -> Stage:
        for i, (level, fading, start, length) in enumerate(self.phases):
            if images_seen < start + length:
                alpha = min(1.0, max(0.0, (images_seen - start) / length)) if fading else 1.0
                return Stage(level, alpha, i, 4 * 2 ** level, fading)
        level = self.levels - 1  # past the schedule: keep training at the final resolution
        return Stage(level, 1.0, len(self.phases) - 1, 4 * 2 ** level, False)

    def batch_size(self, level: int) -> int | None:
        return self.batch_sizes.get(4 * 2 ** level, self.default_batch)


def _as_float32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


@register_model("pggan")
class PGGAN(GANModule):
    """PGGAN (Karras, Aila, Laine & Lehtinen, "Progressive Growing of GANs for Improved Quality, Stability, and
    Variation", 2017): G and D grow from 4x4 to the final resolution, each new block faded in; WGAN-GP with a drift
    term, equalized learning rate, pixel norm and minibatch stddev.

    Args:
        channels: image channels.
        resolution: final resolution, a power of two (4 ... 1024); 28x28 data is resized (or padded) to 32.
        latent_dim: size of z (512 in the paper; 128 keeps CPU runs short).
        fmap_base: width at resolution r is min(fmap_base // r, fmap_max) (paper: 8192). The default 512 with
            fmap_max 64 gives widths 64, 64, 32, 16 for 4x4 ... 32x32: narrow where a CPU step costs most.
        fmap_max: maximum width (paper: 512).
        phase_images: images seen per stabilise phase and per fade-in phase, at every resolution (paper: 600k-800k;
            the default 18,000 makes 126,000 images from 4x4 to 32x32, a CPU demonstration).
        phase_images_per_res: per-resolution overrides, e.g. "4:20000,32:60000".
        batch_sizes: batch size per resolution, e.g. "4:64,8:64,16:32,32:32" (default: the data loader's batch);
            each must be at most the loader's batch size (paper: 16 up to 128x128, then 14, 6 and 3 to fit memory).
        lr: Adam learning rate (paper: 1e-3).
        beta1: Adam beta1 (paper: 0.0).
        beta2: Adam beta2 (paper: 0.99).
        adam_eps: Adam epsilon (paper: 1e-8).
        gp_weight: gradient-penalty weight lambda (paper: 10).
        drift: drift penalty epsilon (paper: 0.001).
        mbstd_group: minibatch-stddev group size (paper: 4).
        ema_decay: decay of the generator EMA used for samples and metrics (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    default_batch_size = 16  # small batches: more updates per image, which short CPU budgets need
    # --compile leaves the critic eager: its WGAN-GP penalty differentiates a gradient (double backward), which
    # torch.compile's autograd does not support
    compile_skip = ("discriminator",)

    @classmethod
    def resolve_resolution(cls, native: int) -> int:
        """The default final resolution for data of side ``native``: the next power of two (28 -> 32)."""
        r = 4
        while r < native:
            r *= 2
        return r

    def __init__(self, channels: int = 1, resolution: int = 32, latent_dim: int = 128, fmap_base: int = 512,
                 fmap_max: int = 64, phase_images: int = 18_000, phase_images_per_res: str = "",
                 batch_sizes: str = "", lr: float = 1e-3, beta1: float = 0.0, beta2: float = 0.99,
                 adam_eps: float = 1e-8, gp_weight: float = 10.0, drift: float = 0.001, mbstd_group: int = 4,
                 ema_decay: float = 0.999, n_fixed_samples: int = 64):
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.levels = num_levels(resolution)
        self.generator = PGGenerator(latent_dim, channels, resolution, fmap_base, fmap_max)
        self.discriminator = PGDiscriminator(channels, resolution, fmap_base, fmap_max, mbstd_group)
        self.schedule = ProgressiveSchedule(self.levels, phase_images,
                                            parse_per_resolution(phase_images_per_res, "phase_images_per_res"),
                                            parse_per_resolution(batch_sizes, "batch_sizes"))
        self.phase_index = -1  # phase of the last training step (checkpointed)
        self.init_ema()
        self.set_stage(self.schedule.at(0))
        self.save_hyperparameters()

    @property
    def default_max_images(self) -> int:
        """With no budget given, fit.py trains to the end of the schedule."""
        return self.schedule.total

    # --- stage ---------------------------------------------------------------------------------------------------

    def set_stage(self, stage: Stage) -> None:
        """Point G and the EMA generator at ``stage`` (their level and alpha are buffers, so they are checkpointed)."""
        self.generator.set_stage(stage.level, stage.alpha)
        if self.generator_ema is not None:
            self.generator_ema.set_stage(stage.level, stage.alpha)

    def restore_progress(self, images_seen: int) -> None:
        super().restore_progress(images_seen)
        self.set_stage(self.schedule.at(self.images_seen))

    def real_at(self, x: Tensor, stage: Stage) -> Tensor:
        """Real images at the stage's resolution, blended like G's output during a fade:
        ``alpha * x + (1 - alpha) * upsample(avgpool(x))``."""
        factor = x.shape[-1] // stage.resolution
        if factor > 1:
            x = F.avg_pool2d(x, factor)
        if stage.fading and stage.alpha < 1.0:
            low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
            x = torch.lerp(low, x, stage.alpha)
        return x

    def _reset_optimizers(self) -> None:
        for opt in self.optimizers():
            inner = getattr(opt, "optimizer", opt)
            inner.state.clear()

    # --- the loop ------------------------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        stage = self.schedule.at(self.images_seen)
        if stage.phase != self.phase_index:  # a new phase: fresh Adam state (the paper's reset)
            self._reset_optimizers()
            self.phase_index = stage.phase
        self.set_stage(stage)
        bs = self.schedule.batch_size(stage.level)
        real = batch["x"]
        if bs is not None:
            if bs > real.shape[0]:
                raise ValueError(f"batch size {bs} at {stage.resolution}x{stage.resolution} exceeds the loader's "
                                 f"{real.shape[0]}: raise --batch-size to at least {bs}")
            real = real[:bs]
        real = self.real_at(real, stage)  # (N, C, r, r)
        n = real.shape[0]
        opt_g, opt_d = self.optimizers()
        level, alpha = stage.level, stage.alpha

        def critic(x):
            return self.discriminator(x, level, alpha)

        # level and alpha as Python numbers: reading them back from G's buffers would be two device syncs per step
        # (alpha rounded to float32 as the buffer holds it, so the result is the same)
        fake = self.generator(self.sample_latent(n, device=real.device), level, _as_float32(alpha))

        # D step: WGAN loss + gradient penalty + drift
        s_real = critic(real)
        s_fake = critic(fake.detach())
        loss_wd = wgan_d_loss(s_real, s_fake)
        gp = gradient_penalty(critic, real, fake, self.hparams.gp_weight)
        drift = drift_penalty(s_real, self.hparams.drift)
        loss_d = loss_wd + gp + drift
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        # G step against the updated D
        self.discriminator.requires_grad_(False)
        loss_g = wgan_g_loss(critic(fake))
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        self.discriminator.requires_grad_(True)
        self.update_ema()

        self.count_images(n)
        logs = {"loss/d": loss_d.detach(), "loss/g": loss_g.detach(), "loss/gp": gp.detach(),
                "loss/drift": drift.detach(), "loss/wasserstein": -loss_wd.detach(),
                "pggan/resolution": float(stage.resolution), "pggan/alpha": alpha}
        self.log_train(logs, {"d": "loss/d", "g": "loss/g", "res": float(stage.resolution), "alpha": alpha})
        return {"loss_d": logs["loss/d"], "loss_g": logs["loss/g"]}

    def configure_optimizers(self):
        hp = self.hparams
        betas = (float(hp.beta1), float(hp.beta2))  # floats: torch rejects an int 0 in betas (a config's "beta1: 0")
        kw = dict(lr=hp.lr, betas=betas, eps=hp.adam_eps, **adam_impl())
        return (torch.optim.Adam(self.generator.parameters(), **kw),
                torch.optim.Adam(self.discriminator.parameters(), **kw))

    # --- checkpoints and callbacks -------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        stage = self.schedule.at(self.images_seen)
        checkpoint["gan_zoo"]["pggan"] = {"phase_index": self.phase_index, "level": stage.level,
                                          "alpha": stage.alpha, "resolution": stage.resolution}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.phase_index = int(checkpoint["gan_zoo"].get("pggan", {}).get("phase_index", -1))

    def default_callbacks(self, dm, out, every_n_images: int = 0) -> list:
        return [ResolutionGrids(out / "samples")] if dm.is_image else []
