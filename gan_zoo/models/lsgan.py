"""LSGAN (Mao et al., "Least Squares Generative Adversarial Networks", 2016): DCGAN networks with a linear D output
and least-squares losses."""

from __future__ import annotations

from torch import Tensor

from gan_zoo.balance import lsgan_real_probability, probability_errors, probability_g_error
from gan_zoo.losses import LSGAN_CODINGS, lsgan_d_loss, lsgan_g_loss
from gan_zoo.models.alternating import AlternatingGAN
from gan_zoo.registry import register_model


@register_model("lsgan")
class LSGAN(AlternatingGAN):
    """LSGAN (Mao et al., "Least Squares Generative Adversarial Networks", 2016): DCGAN networks with a linear D
    output; D minimises ``0.5*(s(x)-b)^2 + 0.5*(s(G(z))-a)^2``, G minimises ``0.5*(s(G(z))-c)^2``.

    The balancing policies read D's score ``s`` as the probability ``D = clamp((s - a) / (b - a), 0, 1)`` (LSGAN's
    optimal D is this affine image of ``p_data / (p_data + p_g)``; see ``gan_zoo.balance.lsgan_real_probability``),
    then the BCE errors of that probability, so both codings meet the thresholds of "Balancing the GAN game"
    (Larsen & Sønderby, "Generating Faces with Torch", 2015) where DCGAN does: at the equilibrium score
    ``(a + b) / 2`` every error is ``log 2``. For a batch of equal scores, the ``l2`` bracket on G's error,
    ``[0.9, 1.3]``, is ``0.5*(a + (b - a) e^-f - c)^2`` for ``f`` = 0.9 and 1.3 in G's own loss: ``[0.1761, 0.2646]``
    for "01" (equilibrium 0.125) and ``[0.0175, 0.1035]`` for "pearson" (equilibrium 0), where the raw loss never
    reaches the BCE bracket near the equilibrium.

    Args:
        channels: image channels (1 or 3).
        resolution: image side (16, 28, 32, 64, ... 1024).
        data_dim: dimension of vector data (the 2D toys: MLP networks); 0 for images.
        hidden: MLP width (vector data).
        latent_dim: size of z.
        ngf: generator width at the finest resolution.
        ndf: discriminator width at the finest resolution.
        coding: (a, b, c) coding, "01" for (0, 1, 1) (the paper's experiments) or "pearson" for (-1, 1, 0).
        upsample: generator upsampling, "deconv" (transposed convs, the DCGAN paper) or "nearest" (nearest-neighbour
            upsampling + conv, no checkerboard artefacts; Odena et al., Distill 2016).
        d_batch_norm: batch norm in D after every conv but the first (the DCGAN paper); "Balancing the GAN game"
            (Larsen & Sønderby 2015) trains D without it.
        minibatch_kernels: minibatch discrimination kernels B before D's last layer (0 = off).
        minibatch_kernel_dim: minibatch discrimination kernel size C.
        lr: Adam learning rate of G (and of D unless lr_d is set); the paper uses 2e-4, ctmakro's "Fast LSGAN in
            Canton" 1e-4.
        lr_d: Adam learning rate of D (default: lr); a rate of its own is the two time-scale update rule (TTUR;
            Heusel et al. 2017).
        beta1: Adam beta1 (0.5 as in DCGAN; ctmakro's "Fast LSGAN in Canton" warns that LSGAN may not converge
            otherwise).
        beta2: Adam beta2.
        instance_noise: std of the Gaussian instance noise on D's inputs at the start, >= 0 (0 = off).
        instance_noise_images: images seen over which the instance noise anneals linearly to 0, >= 0.
        balance: balancing policy of "Balancing the GAN game": "none", "margin" (skip a network's step while it is
            too good) or "l2" (an adaptive L2 penalty on D).
        balance_margin: margin of the "margin" policy, in (0, 0.5).
        ema_decay: decay of the generator EMA used for sampling (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    def __init__(self, channels: int = 1, resolution: int = 32, data_dim: int = 0, hidden: int = 128,
                 latent_dim: int = 100, ngf: int = 64, ndf: int = 64,
                 coding: str = "01", upsample: str = "deconv", d_batch_norm: bool = True, minibatch_kernels: int = 0,
                 minibatch_kernel_dim: int = 5, lr: float = 2e-4, lr_d: float | None = None, beta1: float = 0.5,
                 beta2: float = 0.999, instance_noise: float = 0.0, instance_noise_images: int = 100_000,
                 balance: str = "none", balance_margin: float = 0.3, ema_decay: float = 0.999,
                 n_fixed_samples: int = 64):
        if coding not in LSGAN_CODINGS:
            raise ValueError(f"unknown LSGAN coding {coding!r}; valid: {', '.join(LSGAN_CODINGS)}")
        super().__init__(channels=channels, resolution=resolution, data_dim=data_dim, hidden=hidden,
                         latent_dim=latent_dim, ngf=ngf, ndf=ndf,
                         upsample=upsample, d_batch_norm=d_batch_norm, minibatch_kernels=minibatch_kernels,
                         minibatch_kernel_dim=minibatch_kernel_dim, lr=lr, lr_d=lr_d, beta1=beta1, beta2=beta2,
                         instance_noise=instance_noise, instance_noise_images=instance_noise_images,
                         balance=balance, balance_margin=balance_margin, ema_decay=ema_decay,
                         n_fixed_samples=n_fixed_samples)
        self.a, self.b, self.c = LSGAN_CODINGS[coding]
        self.save_hyperparameters()

    def d_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return lsgan_d_loss(real_scores, fake_scores, self.a, self.b)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return lsgan_g_loss(fake_scores, self.c)

    def balance_errors(self, real_scores: Tensor, fake_scores: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean -log D(x), mean -log(1 - D(G(z))))`` with ``D = clamp((s - a) / (b - a), 0, 1)``."""
        return probability_errors(lsgan_real_probability(real_scores, self.a, self.b),
                                  lsgan_real_probability(fake_scores, self.a, self.b))

    def balance_g_error(self, fake_scores: Tensor, g_loss: Tensor) -> Tensor:
        """``mean -log D(G(z))`` with ``D = clamp((s - a) / (b - a), 0, 1)`` (not G's least-squares loss)."""
        return probability_g_error(lsgan_real_probability(fake_scores, self.a, self.b))
