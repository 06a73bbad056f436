"""DCGAN (Radford, Metz & Chintala, "Unsupervised Representation Learning with Deep Convolutional Generative
Adversarial Networks", 2015) with the options of ctmakro's "Fast LSGAN in Canton (TensorFlow)" (2017) and the
balancing policies of "Balancing the GAN game" (Larsen & Sønderby, "Generating Faces with Torch", 2015)."""

from __future__ import annotations

from torch import Tensor

from gan_zoo.losses import bce_d_loss, bce_errors, ns_g_loss
from gan_zoo.models.alternating import AlternatingGAN
from gan_zoo.registry import register_model


@register_model("dcgan")
class DCGAN(AlternatingGAN):
    """DCGAN (Radford, Metz & Chintala, 2015): a convolutional generator and discriminator, BCE for D, the
    non-saturating loss for G, one D step then one G step per batch.

    Args:
        channels: image channels (1 or 3).
        resolution: image side (16, 28, 32, 64, ... 1024).
        data_dim: dimension of vector data (the 2D toys: MLP networks); 0 for images.
        hidden: MLP width (vector data).
        latent_dim: size of z.
        ngf: generator width at the finest resolution.
        ndf: discriminator width at the finest resolution.
        upsample: generator upsampling, "deconv" (transposed convs, the DCGAN paper) or "nearest" (nearest-neighbour
            upsampling + conv, no checkerboard artefacts; Odena et al., Distill 2016).
        d_batch_norm: batch norm in D after every conv but the first (the DCGAN paper); "Balancing the GAN game"
            (Larsen & Sønderby 2015) trains D without it.
        label_smoothing: one-sided label smoothing in [0, 0.5) (Salimans et al., "Improved Techniques for Training
            GANs", 2016): the real target is 1 - label_smoothing.
        minibatch_kernels: minibatch discrimination kernels B before D's last layer (0 = off; Salimans et al.: 100).
        minibatch_kernel_dim: minibatch discrimination kernel size C (Salimans et al.: 5).
        lr: Adam learning rate of G (and of D unless lr_d is set).
        lr_d: Adam learning rate of D (default: lr); a rate of its own is the two time-scale update rule (TTUR;
            Heusel et al. 2017).
        beta1: Adam beta1.
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
                 upsample: str = "deconv", d_batch_norm: bool = True, label_smoothing: float = 0.0,
                 minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5, lr: float = 2e-4,
                 lr_d: float | None = None, beta1: float = 0.5, beta2: float = 0.999, instance_noise: float = 0.0,
                 instance_noise_images: int = 100_000, balance: str = "none", balance_margin: float = 0.3,
                 ema_decay: float = 0.999, n_fixed_samples: int = 64):
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        super().__init__(channels=channels, resolution=resolution, data_dim=data_dim, hidden=hidden,
                         latent_dim=latent_dim, ngf=ngf, ndf=ndf,
                         upsample=upsample, d_batch_norm=d_batch_norm, minibatch_kernels=minibatch_kernels,
                         minibatch_kernel_dim=minibatch_kernel_dim, lr=lr, lr_d=lr_d, beta1=beta1, beta2=beta2,
                         instance_noise=instance_noise, instance_noise_images=instance_noise_images,
                         balance=balance, balance_margin=balance_margin, ema_decay=ema_decay,
                         n_fixed_samples=n_fixed_samples)
        self.real_target = 1.0 - label_smoothing
        self.save_hyperparameters()

    def d_loss(self, real_scores: Tensor, fake_scores: Tensor) -> Tensor:
        return bce_d_loss(real_scores, fake_scores, self.real_target)

    def g_loss(self, fake_scores: Tensor) -> Tensor:
        return ns_g_loss(fake_scores)

    def balance_errors(self, real_scores: Tensor, fake_scores: Tensor) -> tuple[Tensor, Tensor]:
        """``(softplus(-s(x)), softplus(s(G(z))))`` batch means: BCE with ``D = sigmoid(s)``, against the hard targets
        1 and 0 whatever the label smoothing."""
        return bce_errors(real_scores, fake_scores)

    def balance_g_error(self, fake_scores: Tensor, g_loss: Tensor) -> Tensor:
        """The non-saturating G loss itself: ``softplus(-s(G(z)))`` = ``BCE(D(G(z)), 1)``."""
        return g_loss
