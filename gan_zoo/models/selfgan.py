"""SelfGAN (Hecong Wu, "SelfGAN--Not A GAN But Punch Itself", viXra:1902.0445, 2019; the author's code:
HighCWu/SelfGAN): G and D trained together by one optimizer and one backward.

Per step: ``gen = BCE(D(G(z)), 1)`` with its gradient flowing into both G and D, ``real = BCE(D(x), 1)`` and
``fake = BCE(D(last), 0)`` on ``last``, the previous step's generated images (a detached buffer, zeros at the start),
combined by the dynamic weights of ``gan_zoo.losses.selfgan_loss``. Without the stale replay D would never be taught
"fake". Works on images (DCGAN networks) and on the 2D toys (MLPs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gan_zoo.base import GANModule
from gan_zoo.datamodules.base import Batch
from gan_zoo.losses import SELFGAN_WEIGHTINGS, SELFGAN_WEIGHTS, selfgan_loss
from gan_zoo.networks.factory import gan_networks
from gan_zoo.registry import register_model


@register_model("selfgan")
class SelfGAN(GANModule):
    """SelfGAN (Hecong Wu, "SelfGAN--Not A GAN But Punch Itself", 2019): G and D trained by one optimizer and one
    backward per step, their losses combined by dynamic weights, D taught "fake" on a replay of the previous step's
    samples.

    Args:
        channels: image channels (images).
        resolution: image side (images).
        data_dim: dimension of vector data (the 2D toys; 0 for images).
        latent_dim: size of z.
        ngf: generator width (images).
        ndf: discriminator width (images).
        hidden: MLP width (vector data).
        weighting: "gpu" ((real + 0.1 v_g gen + 0.9 v_f fake) / 2) or "tpu" (weights as shares of their sum): the
            article's GPU and TPU versions, both in the author's code (HighCWu/SelfGAN).
        weights: dynamic weights from "loss" (batch-mean losses, the article's text) or "probability" (the author's
            code, HighCWu/SelfGAN). Gradients flow through them in both, as in the article and the code.
        lr: Adam learning rate of the single optimizer.
        beta1: Adam beta1.
        beta2: Adam beta2.
        ema_decay: decay of the generator EMA used for sampling (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    supports_vectors = True

    def __init__(self, channels: int = 1, resolution: int = 32, data_dim: int = 0, latent_dim: int = 100,
                 ngf: int = 64, ndf: int = 64, hidden: int = 128, weighting: str = "gpu", weights: str = "loss",
                 lr: float = 2e-4, beta1: float = 0.5, beta2: float = 0.999, ema_decay: float = 0.999,
                 n_fixed_samples: int = 64):
        if weighting not in SELFGAN_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {', '.join(SELFGAN_WEIGHTINGS)}, got {weighting!r}")
        if weights not in SELFGAN_WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(SELFGAN_WEIGHTS)}, got {weights!r}")
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.generator, self.discriminator = gan_networks(channels=channels, resolution=resolution,
                                                          data_dim=data_dim, latent_dim=latent_dim, ngf=ngf,
                                                          ndf=ndf, hidden=hidden)
        self.clamp_output = not data_dim
        self.last_fake: Tensor | None = None  # the previous step's G(z), detached; checkpointed
        self.init_ema()
        self.save_hyperparameters()

    def replay(self, like: Tensor) -> Tensor:
        """The previous step's generated batch (zeros before the first step), shaped like ``like``."""
        last = self.last_fake
        if last is None or last.shape != like.shape:
            return torch.zeros_like(like)
        return last.to(like.device)

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        real = batch["x"]
        n = real.shape[0]
        opt = self.optimizers()
        fake = self.generator(self.sample_latent(n, device=real.device))
        last = self.replay(fake)
        s_real = self.discriminator(real)
        s_gen = self.discriminator(fake)  # not detached: "gen" trains G and D
        s_last = self.discriminator(last)
        hp = self.hparams
        loss = selfgan_loss(s_real, s_gen, s_last, hp.weighting, hp.weights)
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        self.update_ema()
        self.last_fake = fake.detach()
        self.count_images(n)
        logs = {"loss/self": loss.detach(), "d/real_score": s_real.detach().mean(),
                "d/gen_score": s_gen.detach().mean(), "d/last_score": s_last.detach().mean()}
        self.log_train(logs, {"loss": "loss/self"})
        return {"loss": logs["loss/self"]}

    def configure_optimizers(self):
        # one optimizer over G and D together
        return self.adam(list(self.generator.parameters()) + list(self.discriminator.parameters()))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_zoo"]["last_fake"] = None if self.last_fake is None else self.last_fake.cpu()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.last_fake = checkpoint["gan_zoo"].get("last_fake")
