"""The semi-supervised GAN (Odena 2016; Salimans et al. 2016): D is a classifier with a "fake" class.

- ``form="odena"``: K + 1 logits, the last one "fake".
- ``form="salimans"``: K logits with the fake logit fixed at 0 (``D(x) = Z / (Z + 1)``).
- ``g_loss="feature_matching"`` (Salimans: the best classifier) or ``"ns"`` (non-saturating).

Each step sees a labeled batch (``x_lab``, ``y_lab``: ``num_labeled`` images, balanced per class) and an unlabeled
batch (the rest of the training set, labels hidden). The classifier is evaluated with an EMA of D's weights
(``classify``). ``supervised_only=True`` is the baseline: the same classifier, trained by the supervised loss on the
same labeled batches, through the same code path, with no generator step.

``arch="mlp"`` swaps the DCGAN-style networks for the fully connected ones of Salimans et al.'s permutation-invariant
MNIST experiments (``networks/semisup.py``; 28x28 grey images only) and draws z uniform on [0, 1) as their code does.
The classifier's weight-normalised layers get their data-dependent initialisation from the first labeled batch,
before the first D step (so the baseline too sees no unlabeled image). Their optimiser settings are a recipe:
``configs/semisupgan_mlp_mnist28.yaml``.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from gan_zoo.base import GANModule, ema_step_
from gan_zoo.callbacks.classifier import TestAccuracy
from gan_zoo.datamodules.base import Batch
from gan_zoo.losses import (feature_matching_loss, odena_d_loss, odena_g_loss, salimans_d_loss, salimans_ns_g_loss)
from gan_zoo.networks import DCGANGenerator
from gan_zoo.networks.dcgan import DCGANClassifier
from gan_zoo.networks.semisup import SalimansMLPClassifier, SalimansMLPGenerator
from gan_zoo.registry import register_model

FORMS = ("salimans", "odena")
G_LOSSES = ("feature_matching", "ns")
ARCHS = ("conv", "mlp")


@register_model("semisupgan")
class SemiSupervisedGAN(GANModule):
    """Semi-supervised GAN (Odena, "Semi-Supervised Learning with Generative Adversarial Networks", 2016; Salimans et
    al., "Improved Techniques for Training GANs", 2016): the discriminator is a classifier of the K real classes plus
    "fake", trained on a few labeled images and many unlabeled ones.

    Args:
        channels: image channels.
        resolution: image side.
        num_classes: K, the number of real classes.
        latent_dim: size of z.
        ngf: generator width (arch conv).
        ndf: classifier width (arch conv).
        form: "salimans" (K logits, fake logit fixed at 0) or "odena" (K + 1 logits).
        g_loss: "feature_matching" (on D's last hidden layer) or "ns" (non-saturating).
        supervised_only: the baseline: train only the classifier on the labeled batches (no GAN).
        unsup_weight: weight of D's unsupervised loss (--unlabeled_weight in Salimans et al.'s code,
            openai/improved-gan; the recipes set it).
        dropout: dropout before the classifier head (arch conv; Salimans et al.'s discriminators use dropout).
        lr: Adam learning rate (G and D).
        beta1: Adam beta1.
        beta2: Adam beta2.
        d_ema_decay: decay of the EMA of D's weights used by classify() and the test accuracy.
        ema_decay: decay of the generator EMA used for sampling (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
        arch: "conv" (DCGAN-style networks, z standard normal) or "mlp" (Salimans et al.'s fully connected networks,
            z uniform on [0, 1); 28x28 grey images only; their optimiser settings: configs/semisupgan_mlp_mnist28.yaml).
    """

    default_num_labeled = 100

    def __init__(self, channels: int = 1, resolution: int = 28, num_classes: int = 10, latent_dim: int = 100,
                 ngf: int = 64, ndf: int = 64, form: str = "salimans", g_loss: str = "feature_matching",
                 supervised_only: bool = False, unsup_weight: float = 1.0, dropout: float = 0.3, lr: float = 2e-4,
                 beta1: float = 0.5, beta2: float = 0.999, d_ema_decay: float = 0.999, ema_decay: float = 0.999,
                 n_fixed_samples: int = 64, arch: str = "conv"):
        if form not in FORMS:
            raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}")
        if g_loss not in G_LOSSES:
            raise ValueError(f"g_loss must be one of {', '.join(G_LOSSES)}, got {g_loss!r}")
        if num_classes < 2:
            raise ValueError(f"the semi-supervised GAN needs a labeled data set (num_classes={num_classes})")
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        if arch == "mlp" and (channels, resolution) != (1, 28):
            raise ValueError(f"arch mlp takes 28x28 grey images: channels must be 1 and resolution 28, got channels "
                             f"{channels} and resolution {resolution}")
        self.uniform_latent = arch == "mlp"  # before GANModule.__init__, which draws the fixed latents
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.num_classes = num_classes
        outputs = num_classes + 1 if form == "odena" else num_classes
        if arch == "mlp":
            self.generator = SalimansMLPGenerator(latent_dim)
            self.discriminator = SalimansMLPClassifier(outputs)
        else:
            self.generator = DCGANGenerator(latent_dim, channels, resolution, ngf)
            self.discriminator = DCGANClassifier(channels, resolution, ndf, outputs, dropout)
        self.discriminator_ema = copy.deepcopy(self.discriminator).requires_grad_(False).eval()
        self.d_ema_updates = 0
        self.init_ema()
        self.save_hyperparameters()

    def sample_latent(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """``n`` latent vectors: uniform on [0, 1) with ``arch="mlp"`` (their code), else standard normal. Drawn on
        the CPU when ``generator`` is given."""
        if not self.uniform_latent:
            return super().sample_latent(n, generator, device)
        if generator is not None:
            z = torch.rand(n, self.latent_dim, generator=generator)
            return z if device is None else z.to(device)
        return torch.rand(n, self.latent_dim, device=device)

    # --- the classifier ------------------------------------------------------------------------------------------

    @torch.no_grad()
    def classify(self, x: Tensor, batch_size: int = 1000) -> Tensor:
        """Class logits (N, K) of images in [-1, 1], from the EMA of D's weights (eval mode: no dropout)."""
        d = self.discriminator_ema
        d.eval()
        return torch.cat([d(b.to(self.device))[:, : self.num_classes] for b in x.split(batch_size)])

    def export_modules(self) -> dict:
        """A pretrained export keeps the classifier (the EMA of D) beside the EMA generator."""
        return {**super().export_modules(), "discriminator_ema": self.discriminator_ema}

    def update_d_ema(self) -> None:
        ema_step_(self.discriminator_ema, self.discriminator, self.hparams.d_ema_decay, self.d_ema_updates)
        self.d_ema_updates += 1

    def train(self, mode: bool = True):
        super().train(mode)
        self.discriminator_ema.eval()
        return self

    @torch.no_grad()
    def init_d_from_data(self, x_lab: Tensor) -> None:
        """The mlp classifier's data-dependent initialisation on a labeled batch (rank 0's under data parallelism),
        copied into the EMA of D."""
        self.discriminator.data_init_(x_lab)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in self.discriminator.state_dict().values():  # every rank keeps rank 0's initialisation
                torch.distributed.broadcast(t, src=0)
        self.discriminator_ema.load_state_dict(self.discriminator.state_dict())

    def d_losses(self, x_lab: Tensor, y_lab: Tensor, x_unl: Tensor | None, fake: Tensor | None) -> dict:
        """D's loss terms: ``sup`` (labeled images only) and, with a GAN, ``unsup`` (unlabeled real and fake)."""
        D = self.discriminator
        lab_logits = D(x_lab)
        if fake is None:
            return {"sup": torch.nn.functional.cross_entropy(lab_logits, y_lab)}
        d_loss = odena_d_loss if self.hparams.form == "odena" else salimans_d_loss
        sup, unsup = d_loss(lab_logits, y_lab, D(x_unl), D(fake))
        return {"sup": sup, "unsup": unsup}

    def g_loss(self, x_unl: Tensor, fake: Tensor) -> Tensor:
        D = self.discriminator
        if self.hparams.g_loss == "feature_matching":
            with torch.no_grad():
                real_f = D.features(x_unl)
            return feature_matching_loss(real_f, D.features(fake))
        logits = D(fake)
        return odena_g_loss(logits) if self.hparams.form == "odena" else salimans_ns_g_loss(logits)

    # --- the loop ------------------------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        if "x_lab" not in batch:
            raise ValueError("the semi-supervised GAN needs labeled batches: give --num-labeled N (> 0)")
        x_unl, x_lab, y_lab = batch["x"], batch["x_lab"], batch["y_lab"]
        opt_g, opt_d = self.optimizers()
        if self.hparams.arch == "mlp" and self.d_ema_updates == 0:  # before the first D step of the run
            self.init_d_from_data(x_lab)
        fake = None
        if not self.hparams.supervised_only:
            fake = self.generator(self.sample_latent(x_unl.shape[0], device=x_unl.device))
        terms = self.d_losses(x_lab, y_lab, x_unl, None if fake is None else fake.detach())
        loss_d = terms["sup"] + self.hparams.unsup_weight * terms.get("unsup", 0.0)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        self.update_d_ema()
        logs = {"loss/d": loss_d.detach(), "loss/d_sup": terms["sup"].detach()}
        if fake is not None:
            self.discriminator.requires_grad_(False)
            loss_g = self.g_loss(x_unl, fake)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
            self.discriminator.requires_grad_(True)
            self.update_ema()
            logs.update({"loss/g": loss_g.detach(), "loss/d_unsup": terms["unsup"].detach()})
        self.count_images(x_unl.shape[0])
        self.log_train(logs, {"d": "loss/d"})
        return {"loss_d": logs["loss/d"]}

    def configure_optimizers(self):
        return self.adam(self.generator.parameters()), self.adam(self.discriminator.parameters())

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["gan_zoo"]["d_ema_updates"] = self.d_ema_updates

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        self.d_ema_updates = int(checkpoint["gan_zoo"].get("d_ema_updates", 0))

    def default_callbacks(self, dm, out, every_n_images: int = 0) -> list:
        return [TestAccuracy(every_n_images)]
