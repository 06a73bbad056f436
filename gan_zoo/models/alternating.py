"""The alternating D-step / G-step loop shared by DCGAN and LSGAN (they differ only in their losses).

Per batch: draw z, generate ``fake = G(z)`` once; D step on real vs ``fake.detach()``; G step through the same ``fake``
against the updated D (D's parameters frozen, so only input gradients flow through it). Real and fake batches go
through D in separate forward passes (batch-norm statistics, minibatch discrimination).

Options from ctmakro's "Fast LSGAN in Canton (TensorFlow)" (2017): instance noise (Sønderby et al. 2016) annealed
linearly to 0 (``instance_noise`` sigma at the start, ``instance_noise_images`` images to reach 0); minibatch
discrimination (Salimans et al. 2016) and the nearest-neighbour generator live in the networks. The balancing policies
of "Balancing the GAN game" (Larsen & Sønderby, "Generating Faces with Torch", 2015; ``gan_zoo.balance``) decide
whether each step is applied or how much L2 penalty D gets, reading D's and G's errors in the model's own terms
(``balance_errors``, ``balance_g_error``).
"""

from __future__ import annotations

from torch import Tensor

from gan_zoo.balance import make_balance_policy
from gan_zoo.base import GANModule
from gan_zoo.datamodules.base import Batch
from gan_zoo.networks.factory import gan_networks
from gan_zoo.regularizers import InstanceNoise


class AlternatingGAN(GANModule):
    """One D step then one G step per batch, on DCGAN networks (images) or MLPs (vector data, the 2D toys).
    Subclasses define ``d_loss`` and ``g_loss``, and ``balance_errors`` and ``balance_g_error``: the errors the
    balancing policies read, in BCE terms whatever the model's loss."""

    supports_vectors = True

    def __init__(self, *, channels: int, resolution: int, data_dim: int, hidden: int, latent_dim: int, ngf: int, ndf: int, upsample: str,
                 d_batch_norm: bool, minibatch_kernels: int, minibatch_kernel_dim: int, lr: float, lr_d: float | None,
                 beta1: float, beta2: float, instance_noise: float, instance_noise_images: int, balance: str,
                 balance_margin: float, ema_decay: float, n_fixed_samples: int):
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.noise = InstanceNoise(instance_noise, instance_noise_images)  # on D's inputs, real and fake
        self.generator, self.discriminator = gan_networks(
            channels=channels, resolution=resolution, data_dim=data_dim, latent_dim=latent_dim, ngf=ngf, ndf=ndf,
            hidden=hidden, upsample=upsample, d_batch_norm=d_batch_norm, minibatch_kernels=minibatch_kernels,
            minibatch_kernel_dim=minibatch_kernel_dim)
        self.clamp_output = not data_dim
        self.balance = make_balance_policy(balance, balance_margin)
        self.init_ema()

    # --- losses (subclasses) -----------------------------------------------------------------------------------------

    def d_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        raise NotImplementedError

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        raise NotImplementedError

    def balance_errors(self, real_scores: Tensor, fake_scores: Tensor) -> tuple[Tensor, Tensor]:
        """``(err_R, err_F) = (BCE(D(x), 1), BCE(D(G(z)), 0))``, batch means, with ``D`` this model's probability that
        its input is real (what the ``margin`` policy reads)."""
        raise NotImplementedError

    def balance_g_error(self, fake_scores: Tensor, g_loss: Tensor) -> Tensor:
        """G's error ``BCE(D(G(z)), 1)``, a batch mean, from the G step's scores and loss (what the ``l2`` policy
        reads)."""
        raise NotImplementedError

    # --- the loop ----------------------------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        real = batch["x"]  # (N, C, H, W) in [-1, 1]
        n = real.shape[0]
        opt_g, opt_d = self.optimizers()
        sigma = self.noise.sigma(self.images_seen)

        z = self.sample_latent(n, device=real.device)
        fake = self.generator(z)  # one G forward, reused by both steps

        # D step: real vs detached fake
        s_real = self.discriminator(self.noise.apply(real, sigma))
        s_fake = self.discriminator(self.noise.apply(fake.detach(), sigma))
        loss_d = self.d_loss(s_real, s_fake)
        penalty = self.balance.d_penalty(self.discriminator.parameters())
        if penalty is not None:
            loss_d = loss_d + penalty
        update_d, update_g = True, True
        if self.balance.needs_errors:
            update_d, update_g = self.balance.decide(*self.balance_errors(s_real.detach(), s_fake.detach()))
        if update_d:
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()

        # G step: through the same fake, against the (updated) D; D's weights get no gradient
        self.discriminator.requires_grad_(False)
        s_gen = self.discriminator(self.noise.apply(fake, sigma))
        loss_g = self.g_loss(s_gen)
        if update_g:
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
            self.update_ema()
        self.discriminator.requires_grad_(True)
        if self.balance.needs_g_error:
            self.balance.observe_g_loss(self.balance_g_error(s_gen.detach(), loss_g))

        self.count_images(n)
        logs = {"loss/d": loss_d.detach(), "loss/g": loss_g.detach(),
                "d/real_score": s_real.detach().mean(), "d/fake_score": s_fake.detach().mean()}
        if self.balance.needs_errors:
            logs["balance/d_skipped"] = float(not update_d)
            logs["balance/g_skipped"] = float(not update_g)
        if hasattr(self.balance, "coef"):
            logs["balance/l2_coef"] = self.balance.coef
        if sigma > 0:
            logs["train/instance_noise"] = sigma
        self.log_train(logs, {"d": "loss/d", "g": "loss/g"})
        return {"loss_d": logs["loss/d"], "loss_g": logs["loss/g"]}

    def configure_optimizers(self):
        return self.adam(self.generator.parameters()), self.adam(self.discriminator.parameters(), d=True)
