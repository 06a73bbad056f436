"""Ensemble SGAN (Chavdarova & Fleuret, CVPR 2018; seed 002): N independent local GAN pairs and a global pair.

Per batch (split into N chunks, chunk ``i`` for local pair ``i``):

1. Local pairs: pair ``i`` takes one ordinary GAN step (BCE D step on its chunk versus ``G_i(z_i)``, then a
   non-saturating G step) with its own latent stream (a ``torch.Generator`` seeded per pair). Nothing of the global
   pair enters a local step, so a local pair follows exactly the trajectory it would follow trained alone.
2. Global D: ``D_0`` takes a BCE step on the whole real batch versus the local generators' samples of step 1
   (detached: no gradient into any ``G_i``).
3. Messengers: every ``messenger_sync`` iterations ``D_i^msg`` is refreshed from ``D_i`` (weights and buffers); every
   iteration each messenger takes a BCE step on real versus ``G_0`` samples, so it keeps giving ``G_0`` a signal: on
   chunk ``i`` of both (``messenger_batch="chunk"``, the default on images) or on the whole real batch and all of
   ``G_0``'s samples (``"whole"``, the default on vector data: each messenger then sees as many points as ``D_0``).
   With ``instance_noise`` (seed 003) the messengers see real data and ``G_0``'s samples through Gaussian noise
   annealed to 0, in their steps and in ``G_0``'s: a smoother signal across the empty gaps between modes. With
   ``instance_noise_on="all"`` every discriminator sees it: each local pair draws its noise from its own stream (the
   one its latents come from), so it still follows exactly the trajectory it would follow trained alone with noise.
   On held-out grid25 seeds (12,000 iterations, noise 0.5 over the first 8,000) ``all`` met the target in 8 runs of
   10, as without noise (reverse KL 0.038 against 0.063), and ``global`` in 0 of 2 (BENCHMARKS.md, tenth and
   eleventh rounds); with ``all``, 16 of 20 over seeds 0 to 19 (twelfth round); neither a learning-rate decay at the
   end, noise 1.0, nor noise over the whole run removed the misses (thirteenth round); with the R1 penalty on every
   discriminator as well (``r1`` 0.1) it met the target in 19 of 19 runs over seeds 0 to 19 (seed 15 not run;
   sixteenth round): the grid25 recipe. The default is no noise and no penalty.
   On grid25 (12,000 iterations, 5 seeds, 4 pairs of 256 points) ``whole`` meets the target in 4 runs of 5 against
   3 with ``chunk``, and on ring8 in 5 of 5 against 4; with 4 pairs of 64 (256 real points per iteration, the other
   models' budget) it meets the grid25 target in 5 of 5 on seeds 0 to 4, and in 8 of 10 on held-out seeds 5 to 14,
   also 8 of 10 at 24,000 iterations (BENCHMARKS.md, seventh to ninth rounds). ``whole`` is not measured on images.
   The refresh is not the seed's every iteration: refreshed every iteration, a messenger has taken one step on
   ``G_0``'s samples when ``G_0`` trains against it, and ``G_0`` collapsed onto one mode of grid25 in 5 of 5 seeds
   (1,500 iterations: 1/25 modes with refresh 1, 24/25 with 20). The default is the best cadence measured for the
   kind of data (BENCHMARKS.md): every 100 iterations on images (Fashion-MNIST: FID10k 188.9 at 100 against 975.5 at
   20) and every 1,000 on vector data (grid25, 12,000 iterations, 5 seeds, messengers on their chunk: 24.8 modes and
   the target met in 3 runs at 1,000, against 23.6 and 1 at 100 and 22.6 and 1 at 20).
4. Global G: ``G_0`` takes a step on the non-saturating loss averaged over the messengers (messengers frozen), except
   in the ``messenger_warmup`` iterations after each refresh. On grid25 a run's modes are lost when ``G_0`` meets
   freshly refreshed messengers, most sharply at the first refresh after the noise ends; a warm-up of 100 iterations
   stopped those losses but left runs further from every mode when the noise ended, and met the target in 12 of 20
   runs against 16 of 20 without (BENCHMARKS.md, fourteenth round); held only after the noise ends
   (``messenger_warmup_start``), 16 of 20, two misses mended and two made (fifteenth round). Off by default.

``sample()`` uses the global generator (its EMA); ``sample(n, member=i)`` the local generator ``i`` (1-based).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gan_zoo.base import GANModule, InstanceNoise, LRDecay, MemberSampling
from gan_zoo.losses import bce_d_loss, ns_g_loss, r1_penalty
from gan_zoo.networks.factory import gan_networks
from gan_zoo.registry import register_model


MESSENGER_BATCHES = ("chunk", "whole")
NOISE_TARGETS = ("global", "all")


@register_model("sgan")
class EnsembleSGAN(InstanceNoise, LRDecay, MemberSampling, GANModule):
    """Ensemble SGAN: N local pairs trained as independent GANs, a global pair trained from them.

    Args:
        channels: image channels (images).
        resolution: image side (images).
        data_dim: dimension of vector data (the 2D toys: MLP networks); 0 for images.
        latent_dim: size of z.
        ngf: generator width (images).
        ndf: discriminator width (images).
        hidden: MLP width (vector data).
        n_pairs: number of local pairs N. On grid25 neither eight pairs (fifth round, 256 points per pair) nor two
            (twelfth round, 256 points per iteration, noise on every D, seeds 0 to 19: 15 of 20 runs meet the target,
            16 of 20 with four) did better than four (BENCHMARKS.md).
        messenger_sync: iterations between two refreshes of the messengers from the local discriminators (default:
            100 on images, 1000 on vector data; see the module docstring).
        messenger_batch: what each messenger's step trains on: ``chunk`` (its local pair's chunk of the real batch
            versus as many ``G_0`` samples) or ``whole`` (the whole real batch versus every ``G_0`` sample). Default:
            ``whole`` on vector data (the best measured, BENCHMARKS.md sixth round), ``chunk`` on images (``whole`` is
            not measured there).
        messenger_warmup: iterations after each refresh during which the messengers train on ``G_0``'s samples but
            ``G_0`` does not train against them (0: ``G_0`` trains against a messenger the iteration it is refreshed,
            when it has seen only its local generator's samples). 100 on grid25: 12 of 20 runs met the target against
            16 of 20 without (BENCHMARKS.md, fourteenth round).
        messenger_warmup_start: images seen from which the warm-up applies (0: after every refresh). An iteration is
            held back when it is among the first ``messenger_warmup`` after a refresh and at least this many images
            have been seen before it; set to ``instance_noise_images``, only the refreshes after the noise ends. On
            grid25 that met the target in 16 of 20 runs, as without the warm-up, on other seeds (BENCHMARKS.md,
            fifteenth round).
        pair_seed: seed of the local pairs' initial weights and latent streams (pair i uses pair_seed * 1000 + i).
        instance_noise: std of the Gaussian noise added to the discriminators' inputs at the start, 0 = off.
        instance_noise_on: which discriminators see the noise: ``global`` (the messengers, in their steps and in
            ``G_0``'s step; the local pairs and ``D_0`` train as without it) or ``all`` (also each local pair, in
            both its steps, with noise from its own stream, and ``D_0``).
        instance_noise_images: images seen over which the instance noise anneals linearly to its floor.
        instance_noise_floor: the std the noise anneals to and then keeps (0: the noise ends). 0.1 on grid25 blurred the
            samples (85.8 % high quality) and met the target in 1 of 4 runs (BENCHMARKS.md, fourteenth round).
        instance_noise_power: shape of the anneal, ``(1 - images / instance_noise_images) ** power`` of the way from
            ``instance_noise`` to the floor: 1 linear; 2 reaches small noise sooner and spends longer there. 2 on
            grid25 missed the target on both seeds screened, 12 and 14 (20 modes each; BENCHMARKS.md, sixteenth round).
        r1: weight gamma of the R1 penalty (Mescheder et al. 2018), ``gamma / 2 * E ||grad_x D(x)||^2`` on the real
            inputs, in every discriminator's step (local pairs, ``D_0``, messengers); 0 = off. It costs a double
            backward per step. 0.1 with the noise on grid25 (``configs/sgan_grid25.yaml``) met the target in 19 of 19
            runs over seeds 0 to 19 (seed 15 not run), the recipe without it in 16 of 20 (BENCHMARKS.md, sixteenth
            round).
        lr: Adam learning rate of every G (and every D unless lr_d is set).
        lr_d: Adam learning rate of every D (default: lr).
        lr_decay_start: images seen after which every learning rate decays linearly to 0 (``LRDecay``).
        lr_decay_images: images over which it decays; 0 = no decay. On grid25, decayed over the last 4,000 of the
            recipe's 12,000 iterations, it met the target on the same 6 of 10 seeds (10 to 19) as the recipe without
            it (BENCHMARKS.md, thirteenth round): not in the recipe.
        beta1: Adam beta1.
        beta2: Adam beta2.
        ema_decay: decay of the global generator's EMA used for sampling (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    supports_vectors = True
    default_batch_size = 256  # split over the pairs: 64 per local pair at the default N = 4
    member_noun = "local pairs"  # sample(n, member=i)

    def __init__(self, channels: int = 1, resolution: int = 32, data_dim: int = 0, latent_dim: int = 100,
                 ngf: int = 64, ndf: int = 64, hidden: int = 128, n_pairs: int = 4, messenger_sync: int | None = None,
                 messenger_batch: str | None = None, messenger_warmup: int = 0, messenger_warmup_start: int = 0,
                 pair_seed: int = 0,
                 instance_noise: float = 0.0, instance_noise_on: str = "global", instance_noise_images: int = 100_000,
                 instance_noise_floor: float = 0.0, instance_noise_power: float = 1.0, r1: float = 0.0,
                 lr: float = 2e-4, lr_d: float | None = None, lr_decay_start: int = 0, lr_decay_images: int = 0,
                 beta1: float = 0.5, beta2: float = 0.999, ema_decay: float = 0.999, n_fixed_samples: int = 64):
        if messenger_sync is None:
            messenger_sync = 1000 if data_dim else 100
        if messenger_batch is None:
            messenger_batch = "whole" if data_dim else "chunk"
        if n_pairs < 1 or messenger_sync < 1:
            raise ValueError("n_pairs and messenger_sync must be >= 1")
        if not 0 <= messenger_warmup < messenger_sync:
            raise ValueError(f"messenger_warmup must be in [0, messenger_sync = {messenger_sync}), "
                             f"got {messenger_warmup}")
        if messenger_warmup_start < 0:
            raise ValueError(f"messenger_warmup_start must be >= 0 images, got {messenger_warmup_start}")
        if r1 < 0:
            raise ValueError(f"r1 must be >= 0, got {r1}")
        self.check_instance_noise(instance_noise, instance_noise_images, instance_noise_floor, instance_noise_power)
        self.check_lr_decay(lr_decay_start, lr_decay_images)
        if messenger_batch not in MESSENGER_BATCHES:
            raise ValueError(f"messenger_batch must be one of {', '.join(MESSENGER_BATCHES)}, not {messenger_batch!r}")
        if instance_noise_on not in NOISE_TARGETS:
            raise ValueError(f"instance_noise_on must be one of {', '.join(NOISE_TARGETS)}, not {instance_noise_on!r}")
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
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
        self._z_state: list[Tensor] | None = None
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
        noise): independent of the global RNG, on the CPU, offset by the rank under DDP so that ranks draw different
        numbers; its state is checkpointed."""
        if self._z_streams is None:
            self._z_streams = []
            rank = self.global_rank if self._trainer is not None else 0
            for j in range(self.hparams.n_pairs):
                seed = self.pair_seed_of(self.hparams.pair_seed, j) + 7919 + 1_000_003 * rank
                g = torch.Generator(device="cpu").manual_seed(seed)
                if self._z_state is not None:
                    g.set_state(self._z_state[j])
                self._z_streams.append(g)
        return self._z_streams[i]

    def local_latent(self, i: int, n: int, device) -> Tensor:
        """``n`` latents from local pair ``i``'s own stream."""
        return torch.randn(n, self.latent_dim, generator=self.local_stream(i)).to(device)

    def member_generators(self) -> list[nn.Module]:
        """The local generators (no EMA copy), sampled by ``sample(n, member=i)``."""
        return list(self.local_generators)

    def _d_step(self, opt, d: nn.Module, real: Tensor, fake: Tensor, backward, sigma: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:
        """A BCE step of ``d``; with ``sigma`` > 0 it sees real then fake through instance noise (from ``generator``
        if given, else the global RNG); with ``hparams.r1`` > 0 the R1 penalty on the real inputs it saw is added."""
        real_in, fake_in = self._d_input(real, sigma, generator), self._d_input(fake, sigma, generator)
        r1 = self.hparams.r1
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

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        real = batch["x"]
        n_pairs = self.hparams.n_pairs
        if real.shape[0] < n_pairs:
            raise ValueError(f"batch of {real.shape[0]} cannot be split over {n_pairs} local pairs")
        chunks = real.tensor_split(n_pairs)
        opts = self.optimizers()
        opt_lg, opt_ld = opts[:n_pairs], opts[n_pairs : 2 * n_pairs]
        opt_msg = opts[2 * n_pairs : 3 * n_pairs]
        opt_g0, opt_d0 = opts[3 * n_pairs], opts[3 * n_pairs + 1]
        lr_factor = self.decay_lr()
        sigma = self.noise_sigma()  # instance noise: G_0's side always, every D with instance_noise_on="all"
        sigma_all = sigma if self.hparams.instance_noise_on == "all" else 0.0

        # 1. local pairs: independent GAN steps (latents and noise from the pair's own stream)
        local_fakes = []
        loss_ld, loss_lg = [], []
        for i, x in enumerate(chunks):
            g, d, stream = self.local_generators[i], self.local_discriminators[i], self.local_stream(i)
            fake = g(self.local_latent(i, x.shape[0], x.device))
            loss_ld.append(self._d_step(opt_ld[i], d, x, fake.detach(), self.manual_backward, sigma_all, stream))
            d.requires_grad_(False)
            lg = ns_g_loss(d(self._d_input(fake, sigma_all, stream)))
            opt_lg[i].zero_grad(set_to_none=True)
            self.manual_backward(lg)
            opt_lg[i].step()
            d.requires_grad_(True)
            loss_lg.append(lg.detach())
            local_fakes.append(fake.detach())

        # 2. global D against the local generators' samples
        loss_d0 = self._d_step(opt_d0, self.discriminator, real, torch.cat(local_fakes), self.manual_backward,
                               sigma_all)

        # 3. messengers: refresh, then a step on real versus G_0 samples
        since_sync = self.iterations % self.hparams.messenger_sync
        if since_sync == 0:
            self.sync_messengers()
        fake0 = self.generator(self.sample_latent(real.shape[0], device=real.device))
        if self.hparams.messenger_batch == "whole":
            msg_real, msg_fake = [real] * n_pairs, [fake0.detach()] * n_pairs
        else:
            msg_real, msg_fake = chunks, fake0.detach().tensor_split(n_pairs)
        loss_msg = [self._d_step(opt_msg[i], m, msg_real[i], msg_fake[i], self.manual_backward, sigma)
                    for i, m in enumerate(self.messengers)]

        # 4. global G against the messengers (not while they warm up after a refresh, once warm-ups have started)
        g0_steps = (since_sync >= self.hparams.messenger_warmup
                    or self.images_seen < self.hparams.messenger_warmup_start)
        self.messengers.requires_grad_(False)
        with torch.set_grad_enabled(g0_steps):  # during the warm-up the loss is only logged
            loss_g0 = torch.stack([ns_g_loss(m(self._d_input(fake0, sigma))) for m in self.messengers]).mean()
        if g0_steps:
            opt_g0.zero_grad(set_to_none=True)
            self.manual_backward(loss_g0)
            opt_g0.step()
            self.update_ema()
        self.messengers.requires_grad_(True)

        self.iterations += 1
        self.count_images(real.shape[0])
        logs = {"loss/d": loss_d0, "loss/g": loss_g0.detach(), "loss/d_local": torch.stack(loss_ld).mean(),
                "loss/g_local": torch.stack(loss_lg).mean(), "loss/d_messenger": torch.stack(loss_msg).mean()}
        if sigma > 0:
            logs["train/instance_noise"] = sigma
        if self.hparams.lr_decay_images:
            logs["train/lr_factor"] = lr_factor
        self.log_train(logs, {"d": logs["loss/d"], "g": logs["loss/g"]})
        return {"loss_d": loss_d0, "loss_g": logs["loss/g"]}

    def configure_optimizers(self):
        g = [self.adam(m.parameters()) for m in (*self.local_generators,)]
        d = [self.adam(m.parameters(), d=True) for m in (*self.local_discriminators, *self.messengers)]
        return g + d + [self.adam(self.generator.parameters()), self.adam(self.discriminator.parameters(), d=True)]

    # --- checkpoint state: the cadence and the local latent streams ----------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_zoo"]["sgan"] = {
            "iterations": self.iterations,
            "z_streams": None if self._z_streams is None else [g.get_state() for g in self._z_streams],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint["gan_zoo"].get("sgan", {})
        self.iterations = int(state.get("iterations", 0))
        self._z_state = state.get("z_streams")
        self._z_streams = None
