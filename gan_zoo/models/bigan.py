"""BiGAN (Donahue et al. 2016) and BigBiGAN-lite (Donahue & Simonyan 2019): a generator, an encoder that inverts it,
and a discriminator on ``(x, z)`` pairs.

Encoder pairs ``(x, E(x))`` play "real" and generator pairs ``(G(z), z)`` "fake". D steps see both pairs with
``G(z)`` and ``E(x)`` computed without gradient (they never move E or G); the E+G step, one optimizer over E and G,
runs through D with D's parameters frozen (it never moves D).

- ``bigan``: joint discriminator only (``s_xz``), BCE for D, flipped labels for E+G, one D step per E+G step.
- ``bigbigan``: unary heads ``s_x`` and ``s_z`` beside ``s_xz``, a hinge per score, ``d_steps=2`` D steps per E+G
  step, spectral norm in D.

``arch="mlp"`` makes G, E and the x-side of D fully connected on the flattened image (BiGAN's permutation-invariant
MNIST setting, where the paper reports 1-NN accuracy on E(x)).

A D step takes one training batch; every ``d_steps``-th batch is followed by the E+G step on that same batch, so each
D step sees its own real images.
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_zoo.base import GANModule
from gan_zoo.callbacks.encoder import ReconstructionGrid
from gan_zoo.datamodules.base import Batch
from gan_zoo.losses import bigan_d_loss, bigan_eg_loss, bigbigan_d_loss, bigbigan_eg_loss
from gan_zoo.networks import DCGANGenerator
from gan_zoo.networks.bigan import Encoder, JointDiscriminator
from gan_zoo.networks.mlp import MLPImageGenerator
from gan_zoo.registry import register_model

LOSSES = ("bce", "hinge")


@register_model("bigan")
class BiGAN(GANModule):
    """BiGAN (Donahue, Krähenbühl & Darrell, "Adversarial Feature Learning", 2016): a generator G, an encoder E that
    learns to invert it, and a discriminator on (x, z) pairs telling (x, E(x)) from (G(z), z).

    Args:
        channels: image channels (1 or 3).
        resolution: image side.
        latent_dim: size of z.
        ngf: generator width.
        nef: encoder width.
        ndf: discriminator conv width.
        d_hidden: width of the discriminator's MLPs.
        unary: BigBiGAN's unary heads s_x and s_z beside the joint score s_xz.
        loss: "bce" (BiGAN) or "hinge" (BigBiGAN, a hinge per score).
        d_steps: D steps per E+G step.
        d_dropout: dropout in the discriminator's joint MLP (ALI, Dumoulin et al. 2016, the BiGAN paper's concurrent
            twin: 0.2 in its discriminator).
        spectral_norm: spectral normalisation in the discriminator.
        stochastic_encoder: a Gaussian encoder (mean and softplus scale, reparameterised), BigBiGAN's (Donahue &
            Simonyan 2019, who ablate it against a deterministic one).
        lr: Adam learning rate of G (and of D unless lr_d is set).
        lr_d: Adam learning rate of D (default: lr); a rate of its own is the two time-scale update rule (TTUR;
            Heusel et al. 2017).
        lr_e_mult: E's learning rate as a multiple of G's (BigBiGAN found 10 helped).
        arch: ``"conv"`` (DCGAN-style G, E and F) or ``"mlp"`` (fully connected G, E and F on the flattened image,
            two hidden layers of 16 times ngf, nef and ndf units: BiGAN's permutation-invariant MNIST setting).
        beta1: Adam beta1.
        beta2: Adam beta2.
        ema_decay: decay of the EMA of G used by sample() and reconstruct() (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    default_unary, default_loss, default_d_steps, default_spectral_norm = False, "bce", 1, False

    def __init__(self, channels: int = 1, resolution: int = 32, latent_dim: int = 64, ngf: int = 64, nef: int = 64,
                 ndf: int = 64, d_hidden: int = 256, unary: bool | None = None, loss: str | None = None,
                 d_steps: int | None = None, d_dropout: float = 0.2, spectral_norm: bool | None = None,
                 stochastic_encoder: bool = False, lr: float = 2e-4, lr_d: float | None = None,
                 lr_e_mult: float = 1.0, beta1: float = 0.5, beta2: float = 0.999, ema_decay: float = 0.999,
                 n_fixed_samples: int = 64, arch: str = "conv"):
        unary = self.default_unary if unary is None else unary
        loss = self.default_loss if loss is None else loss
        d_steps = self.default_d_steps if d_steps is None else d_steps
        spectral_norm = self.default_spectral_norm if spectral_norm is None else spectral_norm
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if d_steps < 1:
            raise ValueError(f"d_steps must be >= 1, got {d_steps}")
        if lr_e_mult <= 0:
            raise ValueError(f"lr_e_mult must be > 0, got {lr_e_mult}")
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.generator = (MLPImageGenerator(latent_dim, channels, resolution, 16 * ngf) if arch == "mlp"
                          else DCGANGenerator(latent_dim, channels, resolution, ngf))
        self.encoder = Encoder(channels, resolution, latent_dim, nef, stochastic_encoder, arch)
        self.discriminator = JointDiscriminator(channels, resolution, latent_dim, ndf, d_hidden, unary, d_dropout,
                                                spectral_norm, arch)
        self.init_ema()  # of G only: an EMA of the encoder's weights does not match the batch-norm statistics it
        # would inherit from the trained encoder (its latents came out at half the trained encoder's scale)
        self.save_hyperparameters()  # records the resolved unary / loss / d_steps / spectral_norm

    # --- losses ------------------------------------------------------------------------------------------------------

    def d_loss(self, enc: tuple, gen: tuple) -> Tensor:
        return (bigan_d_loss if self.hparams.loss == "bce" else bigbigan_d_loss)(enc, gen)

    def eg_loss(self, enc: tuple, gen: tuple) -> Tensor:
        return (bigan_eg_loss if self.hparams.loss == "bce" else bigbigan_eg_loss)(enc, gen)

    # --- encoder API -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def _run_encoder(self, fn, x: Tensor, batch_size: int) -> Tensor:
        # fn(encoder, batch) over x in batches, with the encoder in eval mode
        e = self.encoder
        was = e.training
        e.eval()
        try:
            return torch.cat([fn(e, b.to(self.device)) for b in x.split(batch_size)])
        finally:
            e.train(was)

    def encode(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """Latents (N, latent_dim) of images in [-1, 1] (the mean for a stochastic encoder)."""
        return self._run_encoder(lambda e, b: e(b, sample=False), x, batch_size)

    def encoder_features(self, x: Tensor, batch_size: int = 500) -> Tensor:
        """Pooled conv features (N, F) of the encoder: what the linear probe reads."""
        return self._run_encoder(lambda e, b: e.features(b), x, batch_size)

    def export_modules(self) -> dict:
        """A pretrained export keeps the encoder beside the EMA generator."""
        return {**super().export_modules(), "encoder": self.encoder}

    def reconstruct(self, x: Tensor) -> Tensor:
        """``G(E(x))`` with the EMA generator, in [-1, 1]."""
        return self.generate(self.encode(x))

    # --- the loop ----------------------------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        real = batch["x"]
        n = real.shape[0]
        opt_eg, opt_d = self.optimizers()
        z = self.sample_latent(n, device=real.device)

        # G(z) and E(x) once per batch: with gradient on the batches that take an E+G step, which reuses them (E and
        # G do not change in the D step), without on the others. The D step sees them detached: D alone moves.
        eg_step = (batch_idx + 1) % self.hparams.d_steps == 0
        with torch.set_grad_enabled(eg_step):
            fake, z_enc = self.generator(z), self.encoder(real)
        enc, gen = self.discriminator(real, z_enc.detach()), self.discriminator(fake.detach(), z)
        loss_d = self.d_loss(enc, gen)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        logs = {"loss/d": loss_d.detach(), "d/enc_score": enc[2].detach().mean(), "d/gen_score": gen[2].detach().mean()}

        # E+G step every d_steps batches, on this batch: D frozen, one optimizer over E and G
        if eg_step:
            self.discriminator.requires_grad_(False)
            enc, gen = self.discriminator(real, z_enc), self.discriminator(fake, z)
            loss_eg = self.eg_loss(enc, gen)
            opt_eg.zero_grad(set_to_none=True)
            self.manual_backward(loss_eg)
            opt_eg.step()
            self.discriminator.requires_grad_(True)
            self.update_ema()
            logs["loss/eg"] = loss_eg.detach()
        self.count_images(n)
        self.log_train(logs, {"d": "loss/d"})
        return {"loss_d": logs["loss/d"]}

    def configure_optimizers(self):
        hp = self.hparams
        opt_eg = self.adam([{"params": self.generator.parameters(), "lr": hp.lr},
                            {"params": self.encoder.parameters(), "lr": hp.lr * hp.lr_e_mult}])
        opt_d = self.adam(self.discriminator.parameters(), d=True)
        return opt_eg, opt_d

    def default_callbacks(self, dm, out, every_n_images: int = 0) -> list:
        """Reconstruction grids; the linear probe is a metric (``--metrics``, on by default: fit.py)."""
        return [ReconstructionGrid(out / "samples")]


@register_model("bigbigan")
class BigBiGAN(BiGAN):
    """BigBiGAN-lite (Donahue & Simonyan, "Large Scale Adversarial Representation Learning", 2019) at a small scale:
    BiGAN with a discriminator of F on x, H on z and J on both, three linear score heads (s_x, s_z, s_xz), a hinge
    loss per score, 2 D steps per E+G step and spectral norm in D.

    Arguments as for ``bigan``."""

    default_unary, default_loss, default_d_steps, default_spectral_norm = True, "hinge", 2, True
