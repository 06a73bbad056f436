"""Ensemble SGAN (Chavdarova & Fleuret, "SGAN: An Alternative Training of Generative Adversarial Networks", CVPR
2018): N independent local GAN pairs and a global pair.

Registered as ``ensemble_sgan``: the literature also calls Odena's semi-supervised GAN "SGAN" (here ``semisupgan``).
Its former name ``sgan`` stays an alias, so commands, configs, checkpoints and zoo entries that use it still work.

Per batch (split into N chunks, chunk ``i`` for local pair ``i``):

1. Local pairs: pair ``i`` takes one ordinary GAN step (BCE D step on its chunk versus ``G_i(z_i)``, then a
   non-saturating G step) with its own latent stream (a ``torch.Generator`` seeded per pair, on the training
   device). Nothing of the global pair enters a local step, so a local pair follows exactly the trajectory it would
   follow trained alone.
2. Global D: ``D_0`` takes a BCE step on the whole real batch versus the local generators' samples of step 1
   (detached: no gradient into any ``G_i``).
3. Messengers: every ``messenger_sync`` iterations ``D_i^msg`` is refreshed from ``D_i`` (weights and buffers); every
   iteration each messenger takes a BCE step on real versus ``G_0`` samples, so it keeps giving ``G_0`` a signal: on
   chunk ``i`` of both (``messenger_batch="chunk"``, the default on images) or on the whole real batch and all of
   ``G_0``'s samples (``"whole"``, the default on vector data: each messenger then sees as many points as ``D_0``).
   The paper refreshes the messengers every iteration; a messenger refreshed that often has taken a single step on
   ``G_0``'s samples when ``G_0`` trains against it, and ``G_0`` collapses onto one mode of the 2D grid. The default
   cadence is every 100 iterations on images and every 1,000 on vector data (measured in BENCHMARKS.md, "Mode
   coverage on the 2D toys" and "The pretrained zoo").
4. Global G: ``G_0`` takes a step on the non-saturating loss averaged over the messengers (messengers frozen).

Options beyond the paper, all off by default:

- Instance noise (Sønderby et al., "Amortised MAP Inference for Image Super-resolution", 2016): with
  ``instance_noise`` the messengers see real data and ``G_0``'s samples through Gaussian noise annealed to 0, in
  their steps and in ``G_0``'s: a smoother signal across the empty gaps between modes.
  With ``instance_noise_on="all"`` every discriminator sees it: each local pair draws its noise from its own stream
  (the one its latents come from), so it still follows exactly the trajectory it would follow trained alone with
  noise.
- The R1 penalty (Mescheder et al., "Which Training Methods for GANs do actually Converge?", 2018) on every
  discriminator's real inputs (``r1``).

``configs/ensemble_sgan_grid25.yaml`` is the recipe for the 2D grid: noise on every discriminator and R1 (measured in
BENCHMARKS.md, "Mode coverage on the 2D toys").

``sample()`` uses the global generator (its EMA); ``sample(n, member=i)`` the local generator ``i`` (1-based).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from gan_zoo.base import GANModule, MemberSampling
from gan_zoo.datamodules.base import Batch
from gan_zoo.losses import bce_d_loss, ns_g_loss, r1_penalty
from gan_zoo.networks.factory import gan_networks
from gan_zoo.registry import register_model
from gan_zoo.regularizers import InstanceNoise


MESSENGER_BATCHES = ("chunk", "whole")
NOISE_TARGETS = ("global", "all")


class SGANOptimizers(NamedTuple):
    """An ensemble SGAN's optimizers by role. ``flat()`` is the order ``configure_optimizers`` returns them in, and
    checkpoints store optimizer states by position, so that order never changes: N local Gs, N local Ds, N
    messengers, G_0, D_0."""

    local_g: list  # G_i, i = 1..N
    local_d: list  # D_i
    messengers: list  # D_i^msg
    global_g: object  # G_0
    global_d: object  # D_0

    def flat(self) -> list:
        return [*self.local_g, *self.local_d, *self.messengers, self.global_g, self.global_d]

    @classmethod
    def unflat(cls, opts: Sequence, n_pairs: int) -> "SGANOptimizers":
        """The roles of ``opts``, in the order of ``flat()`` (``self.optimizers()``)."""
        n = n_pairs
        return cls(list(opts[:n]), list(opts[n : 2 * n]), list(opts[2 * n : 3 * n]), opts[3 * n], opts[3 * n + 1])


@register_model("ensemble_sgan", aliases=("sgan",))
class EnsembleSGAN(MemberSampling, GANModule):
    """Ensemble SGAN (Chavdarova & Fleuret, CVPR 2018): N local GAN pairs trained as independent GANs, and a global
    pair whose generator trains against "messenger" copies of the local discriminators.

    Args:
        channels: image channels (images).
        resolution: image side (images).
        data_dim: dimension of vector data (the 2D toys: MLP networks); 0 for images.
        latent_dim: size of z.
        ngf: generator width (images).
        ndf: discriminator width (images).
        hidden: MLP width (vector data).
        n_pairs: number of local pairs N, >= 1 (each trains on 1/N of every batch).
        messenger_sync: iterations between refreshes of the messengers from the local Ds, >= 1 (default: 100 on
            images, 1000 on vector data).
        messenger_batch: a messenger's step: "chunk" (its pair's chunk of the real batch) or "whole" (the whole
            batch), versus as many G_0 samples (default: chunk on images, whole on vector data).
        pair_seed: seed of the local pairs' weights and latent streams (pair i: pair_seed * 1000 + i).
        instance_noise: std of the instance noise on the discriminators' inputs at the start, >= 0 (0 = off).
        instance_noise_on: which Ds see the noise: "global" (the messengers, also in G_0's step) or "all" (every D).
        instance_noise_images: images seen over which the noise anneals linearly to 0, >= 0.
        r1: weight gamma >= 0 of the R1 penalty gamma / 2 * E ||grad_x D(x)||^2 on every D's real inputs (0 = off).
        lr: Adam learning rate of every G (and every D unless lr_d is set).
        lr_d: Adam learning rate of every D (default: lr).
        beta1: Adam beta1.
        beta2: Adam beta2.
        ema_decay: decay of the global generator's EMA used for sampling (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    supports_vectors = True
    default_batch_size = 256  # split over the pairs: 64 per local pair at the default N = 4
    member_noun = "local pairs"  # sample(n, member=i)
    member_owner = "SGAN"  # "member must be in 1..N (this SGAN has N local pairs)"

    def __init__(self, channels: int = 1, resolution: int = 32, data_dim: int = 0, latent_dim: int = 100,
                 ngf: int = 64, ndf: int = 64, hidden: int = 128, n_pairs: int = 4, messenger_sync: int | None = None,
                 messenger_batch: str | None = None, pair_seed: int = 0,
                 instance_noise: float = 0.0, instance_noise_on: str = "global", instance_noise_images: int = 100_000,
                 r1: float = 0.0, lr: float = 2e-4, lr_d: float | None = None,
                 beta1: float = 0.5, beta2: float = 0.999, ema_decay: float = 0.999, n_fixed_samples: int = 64):
        if messenger_sync is None:
            messenger_sync = 1000 if data_dim else 100
        if messenger_batch is None:
            messenger_batch = "whole" if data_dim else "chunk"
        if n_pairs < 1 or messenger_sync < 1:
            raise ValueError("n_pairs and messenger_sync must be >= 1")
        if r1 < 0:
            raise ValueError(f"r1 must be >= 0, got {r1}")
        noise = InstanceNoise(instance_noise, instance_noise_images)
        if messenger_batch not in MESSENGER_BATCHES:
            raise ValueError(f"messenger_batch must be one of {', '.join(MESSENGER_BATCHES)}, not {messenger_batch!r}")
        if instance_noise_on not in NOISE_TARGETS:
            raise ValueError(f"instance_noise_on must be one of {', '.join(NOISE_TARGETS)}, not {instance_noise_on!r}")
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.noise = noise  # on the messengers' inputs (and G_0's), on every D's with instance_noise_on="all"
        self.r1 = r1  # the R1 penalty's weight on every D's real inputs (0 = off)
        net = dict(channels=channels, resolution=resolution, data_dim=data_dim, latent_dim=latent_dim, ngf=ngf,
                   ndf=ndf, hidden=hidden)
        local_g, local_d = [], []
        for i in range(n_pairs):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.pair_seed_of(pair_seed, i))
                g, d = gan_networks(**net)
            local_g.append(g)
            local_d.append(d)
        self.local_generators = nn.ModuleList(local_g)
        self.local_discriminators = nn.ModuleList(local_d)
        self.generator, self.discriminator = gan_networks(**net)  # the global pair (G_0, D_0)
        self.messengers = nn.ModuleList(gan_networks(**net)[1] for _ in range(n_pairs))
        self.sync_messengers()
        self.clamp_output = not data_dim
        self.iterations = 0  # completed iterations (for the messenger cadence); checkpointed
        self._z_streams: list[torch.Generator] | None = None
        self._z_state: list[Tensor] | None = None  # the streams' states from a checkpoint, and their device type
        self._z_device = "cpu"
        self.init_ema()
        self.save_hyperparameters()

    @staticmethod
    def pair_seed_of(pair_seed: int, i: int) -> int:
        return pair_seed * 1000 + i

    # --- pieces ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def sync_messengers(self) -> None:
        """``D_i^msg <- D_i`` (parameters and buffers)."""
        for msg, d in zip(self.messengers, self.local_discriminators):
            msg.load_state_dict(d.state_dict())

    def local_stream(self, i: int) -> torch.Generator:
        """Local pair ``i``'s own random stream (its latents and, with ``instance_noise_on="all"``, its instance
        noise): independent of the global RNG, on the device the model trains on (no copy per draw), offset by the
        rank under DDP so that ranks draw different numbers; its state is checkpointed. A CPU stream and a CUDA
        stream from the same seed give different numbers: a run resumed on another kind of device than it was saved
        on restarts the streams from their seeds, offset by the iterations done, and says so."""
        if self._z_streams is None:
            self._z_streams = []
            rank = self.global_rank if self._trainer is not None else 0
            device = self.device
            saved = self._z_state
            if saved is not None and self._z_device != device.type:
                rank_zero_warn(f"the local pairs' latent streams were saved on {self._z_device} and this run is on "
                               f"{device.type}: they restart from their seeds (offset by the {self.iterations} "
                               "iterations done), so the pairs draw other numbers than an uninterrupted run would")
                saved = None
            for j in range(self.hparams.n_pairs):
                seed = self.pair_seed_of(self.hparams.pair_seed, j) + 7919 + 1_000_003 * rank
                if self._z_state is not None and saved is None:
                    seed += 104_729 * self.iterations
                g = torch.Generator(device=device).manual_seed(seed)
                if saved is not None:
                    g.set_state(saved[j])
                self._z_streams.append(g)
        return self._z_streams[i]

    def local_latent(self, i: int, n: int, device) -> Tensor:
        """``n`` latents from local pair ``i``'s own stream."""
        g = self.local_stream(i)
        return torch.randn(n, self.latent_dim, generator=g, device=g.device).to(device)

    def member_generators(self) -> list[nn.Module]:
        """The local generators (no EMA copy), sampled by ``sample(n, member=i)``."""
        return list(self.local_generators)

    def _d_step(self, opt, d: nn.Module, real: Tensor, fake: Tensor, backward, sigma: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:
        """A BCE step of ``d``; with ``sigma`` > 0 it sees real then fake through instance noise (from ``generator``
        if given, else the global RNG); with ``r1`` > 0 the R1 penalty on the real inputs it saw is added."""
        real_in, fake_in = self.noise.apply(real, sigma, generator), self.noise.apply(fake, sigma, generator)
        r1 = self.r1
        if r1 > 0:
            real_in = real_in.detach().requires_grad_(True)
        real_logits = d(real_in)
        loss = bce_d_loss(real_logits, d(fake_in))
        if r1 > 0:
            loss = loss + r1_penalty(real_logits, real_in, r1)
        opt.zero_grad(set_to_none=True)
        backward(loss)
        opt.step()
        return loss.detach()

    # --- the loop ----------------------------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        real = batch["x"]
        n_pairs = self.hparams.n_pairs
        if real.shape[0] < n_pairs:
            raise ValueError(f"batch of {real.shape[0]} cannot be split over {n_pairs} local pairs")
        chunks = real.tensor_split(n_pairs)
        opts = SGANOptimizers.unflat(self.optimizers(), n_pairs)
        # instance noise: G_0's side always, every D with instance_noise_on="all"
        sigma = self.noise.sigma(self.images_seen)
        sigma_all = sigma if self.hparams.instance_noise_on == "all" else 0.0

        # 1. local pairs: independent GAN steps (latents and noise from the pair's own stream)
        local_fakes = []
        loss_ld, loss_lg = [], []
        for i, x in enumerate(chunks):
            g, d, stream = self.local_generators[i], self.local_discriminators[i], self.local_stream(i)
            fake = g(self.local_latent(i, x.shape[0], x.device))
            loss_ld.append(self._d_step(opts.local_d[i], d, x, fake.detach(), self.manual_backward, sigma_all,
                                        stream))
            d.requires_grad_(False)
            lg = ns_g_loss(d(self.noise.apply(fake, sigma_all, stream)))
            opts.local_g[i].zero_grad(set_to_none=True)
            self.manual_backward(lg)
            opts.local_g[i].step()
            d.requires_grad_(True)
            loss_lg.append(lg.detach())
            local_fakes.append(fake.detach())

        # 2. global D against the local generators' samples
        loss_d0 = self._d_step(opts.global_d, self.discriminator, real, torch.cat(local_fakes), self.manual_backward,
                               sigma_all)

        # 3. messengers: refresh, then a step on real versus G_0 samples
        if self.iterations % self.hparams.messenger_sync == 0:
            self.sync_messengers()
        fake0 = self.generator(self.sample_latent(real.shape[0], device=real.device))
        if self.hparams.messenger_batch == "whole":
            msg_real, msg_fake = [real] * n_pairs, [fake0.detach()] * n_pairs
        else:
            msg_real, msg_fake = chunks, fake0.detach().tensor_split(n_pairs)
        loss_msg = [self._d_step(opts.messengers[i], m, msg_real[i], msg_fake[i], self.manual_backward, sigma)
                    for i, m in enumerate(self.messengers)]

        # 4. global G against the messengers
        self.messengers.requires_grad_(False)
        loss_g0 = torch.stack([ns_g_loss(m(self.noise.apply(fake0, sigma))) for m in self.messengers]).mean()
        opts.global_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g0)
        opts.global_g.step()
        self.update_ema()
        self.messengers.requires_grad_(True)

        self.iterations += 1
        self.count_images(real.shape[0])
        logs = {"loss/d": loss_d0, "loss/g": loss_g0.detach(), "loss/d_local": torch.stack(loss_ld).mean(),
                "loss/g_local": torch.stack(loss_lg).mean(), "loss/d_messenger": torch.stack(loss_msg).mean()}
        if sigma > 0:
            logs["train/instance_noise"] = sigma
        self.log_train(logs, {"d": "loss/d", "g": "loss/g"})
        return {"loss_d": loss_d0, "loss_g": logs["loss/g"]}

    def configure_optimizers(self):
        return SGANOptimizers(
            local_g=[self.adam(g.parameters()) for g in self.local_generators],
            local_d=[self.adam(d.parameters(), d=True) for d in self.local_discriminators],
            messengers=[self.adam(m.parameters(), d=True) for m in self.messengers],
            global_g=self.adam(self.generator.parameters()),
            global_d=self.adam(self.discriminator.parameters(), d=True),
        ).flat()

    # --- checkpoint state: the cadence and the local latent streams ----------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        streams = self._z_streams
        checkpoint["gan_zoo"]["sgan"] = {
            "iterations": self.iterations,
            "z_streams": None if streams is None else [g.get_state() for g in streams],
            "z_device": streams[0].device.type if streams else "cpu",
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint["gan_zoo"].get("sgan", {})
        self.iterations = int(state.get("iterations", 0))
        self._z_state = state.get("z_streams")
        self._z_device = state.get("z_device", "cpu")  # checkpoints written before it was stored: CPU streams
        self._z_streams = None
