"""GAN losses as pure functions of discriminator scores.

Notation: ``s`` is the discriminator's raw score (a logit for the BCE losses), ``D(x) = sigmoid(s(x))``.
Every BCE-type loss is written with ``softplus`` on logits, never as ``log(sigmoid(.))`` (numerically stable).
All losses are batch means.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


# --- DCGAN (Radford et al. 2015, Goodfellow et al. 2014) -------------------------------------------------------------

def bce_d_loss(real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
    """Discriminator BCE with real target ``real_target`` (0.9 = one-sided label smoothing) and fake target 0.

    ``t*softplus(-s_r) + (1-t)*softplus(s_r) + softplus(s_f)``  # -t log D(x) - (1-t) log(1-D(x)) - log(1-D(G(z)))
    """
    real = real_target * F.softplus(-real_logits) + (1.0 - real_target) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def ns_g_loss(fake_logits: Tensor) -> Tensor:
    """Non-saturating generator loss ``softplus(-s(G(z)))``  # -log D(G(z))"""
    return F.softplus(-fake_logits).mean()


def bce_errors(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """``(err_R, err_F) = (BCE(D(x), 1), BCE(D(G(z)), 0))``, the quantities the margin balancing policy reads."""
    return F.softplus(-real_logits).mean(), F.softplus(fake_logits).mean()


# --- LSGAN (Mao et al. 2016) -----------------------------------------------------------------------------------------

LSGAN_CODINGS: dict[str, tuple[float, float, float]] = {
    "01": (0.0, 1.0, 1.0),  # (a, b, c): the paper's main experiments and ctmakro's "Fast LSGAN in Canton"
    "pearson": (-1.0, 1.0, 0.0),  # b - c = 1, b - a = 2: minimises the Pearson chi^2 divergence
}


def lsgan_d_loss(real_scores: Tensor, fake_scores: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """``0.5*mean((s(x) - b)^2) + 0.5*mean((s(G(z)) - a)^2)``"""
    return 0.5 * (real_scores - b).pow(2).mean() + 0.5 * (fake_scores - a).pow(2).mean()


def lsgan_g_loss(fake_scores: Tensor, c: float = 1.0) -> Tensor:
    """``0.5*mean((s(G(z)) - c)^2)``"""
    return 0.5 * (fake_scores - c).pow(2).mean()


# --- EGAN (Wang et al. 2018) ------------------------------------------------------------------------------------------

EGAN_MUTATIONS = ("minimax", "heuristic", "least_squares")


def mutation_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """The generator loss of one EGAN mutation, on D's logits for the child's samples.

    ``minimax``: ``-mean softplus(s)``  # mean log(1 - D(G(z)));
    ``heuristic``: ``mean softplus(-s)``  # -mean log D(G(z));
    ``least_squares``: ``mean (sigmoid(s) - 1)^2``  # mean (D(G(z)) - 1)^2.
    """
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()  # mean log(1 - D(G(z)))
    if kind == "heuristic":
        return F.softplus(-fake_logits).mean()  # -mean log D(G(z))
    if kind == "least_squares":
        return (torch.sigmoid(fake_logits) - 1.0).pow(2).mean()
    raise ValueError(f"unknown mutation {kind!r}; valid: {', '.join(EGAN_MUTATIONS)}")


# --- Regularisers ----------------------------------------------------------------------------------------------------

def l2_penalty(params, coef: Tensor | float) -> Tensor:
    """``coef * sum_w ||w||^2`` over ``params`` (the adaptive D penalty of "Balancing the GAN game", Larsen &
    Sønderby 2015)."""
    params = [p for p in params if p.requires_grad]
    return coef * torch.stack([p.pow(2).sum() for p in params]).sum()


def r1_penalty(real_logits: Tensor, real_inputs: Tensor, gamma: float) -> Tensor:
    """R1 (Mescheder et al. 2018): ``gamma / 2 * mean(||grad_x D(x)||_2^2)`` over the real inputs ``x`` that produced
    ``real_logits`` (``real_inputs`` must require grad). Differentiable in D's parameters (double backward). It is 0
    where D is flat on the data, so unlike instance noise it leaves the equilibrium in place while damping the
    oscillation around it."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_inputs, create_graph=True)
    return 0.5 * gamma * grad.flatten(1).pow(2).sum(dim=1).mean()


# --- WGAN-GP with drift (Gulrajani et al. 2017; Karras et al. 2017) ------------------------------------------------

def wgan_g_loss(fake_scores: Tensor) -> Tensor:
    """``-mean(s(G(z)))``"""
    return -fake_scores.mean()


def wgan_d_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """``mean(s(G(z))) - mean(s(x))``"""
    return fake_scores.mean() - real_scores.mean()


def drift_penalty(real_scores: Tensor, epsilon: float = 0.001) -> Tensor:
    """``epsilon * mean(s(x)^2)``: keeps D's output near 0 (PGGAN)."""
    return epsilon * real_scores.pow(2).mean()


def gradient_penalty(critic, real: Tensor, fake: Tensor, weight: float = 10.0,
                     u: Tensor | None = None) -> Tensor:
    """``weight * mean((||grad_x s(x_hat)||_2 - 1)^2)``, ``x_hat = lerp(x, G(z), u)``, ``u ~ U(0, 1)`` per sample.

    ``critic`` maps images to scores. Computed in float32 with autocast off: the double backward of a bf16/fp16 graph
    loses the penalty's precision. ``u`` may be given (tests).
    """
    with torch.autocast(device_type=real.device.type, enabled=False):
        real, fake = real.detach().float(), fake.detach().float()
        if u is None:
            u = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
        x_hat = torch.lerp(real, fake, u).requires_grad_(True)
        scores = critic(x_hat).float()
        (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
        norm = grad.flatten(1).norm(2, dim=1)
        return weight * (norm - 1.0).pow(2).mean()


# --- SelfGAN (Wu 2019) -----------------------------------------------------------------------------------------------

SELFGAN_WEIGHTINGS = ("gpu", "tpu")
SELFGAN_WEIGHTS = ("loss", "probability")


def selfgan_loss(real_logits: Tensor, gen_logits: Tensor, last_logits: Tensor, weighting: str = "gpu",
                 weights: str = "loss") -> Tensor:
    """SelfGAN's single loss over G and D.

    Per sample: ``real = BCE(D(x), 1)``, ``gen = BCE(D(G(z)), 1)``, ``fake = BCE(D(last), 0)`` (``last``: the previous
    step's generated images, detached). Weights: ``weights="loss"`` (the article's text) ``v_r, v_g, v_f`` = batch means
    of real, gen, fake; ``weights="probability"`` (the author's code) ``v_r = 1 - mean D(x)``, ``v_g = 1 - mean D(G(z))``,
    ``v_f = mean D(last)``.
    ``weighting="gpu"``: ``mean((real + 0.1 v_g gen + 0.9 v_f fake) / 2)``;
    ``weighting="tpu"``: ``mean(real v_r + gen v_g + fake v_f) / (v_r + v_g + v_f)``.
    Gradients flow through the weights as in the article and the author's code (nothing is detached), so e.g. the gen
    term contributes ``d(v_g * gen)`` = ``v_g * d gen + gen * d v_g``.
    """
    if weighting not in SELFGAN_WEIGHTINGS or weights not in SELFGAN_WEIGHTS:
        raise ValueError(f"weighting must be one of {SELFGAN_WEIGHTINGS} and weights one of {SELFGAN_WEIGHTS}")
    real = F.softplus(-real_logits)  # (N,) -log D(x)
    gen = F.softplus(-gen_logits)  # (N,) -log D(G(z))
    fake = F.softplus(last_logits)  # (N,) -log(1 - D(last))
    if weights == "loss":
        v_r, v_g, v_f = real.mean(), gen.mean(), fake.mean()
    else:
        v_r = 1.0 - torch.sigmoid(real_logits).mean()
        v_g = 1.0 - torch.sigmoid(gen_logits).mean()
        v_f = torch.sigmoid(last_logits).mean()
    if weighting == "gpu":
        return ((real + 0.1 * v_g * gen + 0.9 * v_f * fake) / 2).mean()
    return (real * v_r + gen * v_g + fake * v_f).mean() / (v_r + v_g + v_f)


# --- Semi-supervised GAN (Odena 2016; Salimans et al. 2016) ---------------------------------------------------------
# Odena: K + 1 logits, the last one "fake". Salimans: K logits, the fake logit fixed at 0, so with
# Z = sum_k exp(l_k): D(x) = Z / (Z + 1), log D(x) = LSE(l) - softplus(LSE(l)), log(1 - D(x)) = -softplus(LSE(l)).

def odena_log_real(logits: Tensor) -> Tensor:
    """``log(1 - p_fake(x))`` per sample for K + 1 logits: ``LSE(l[:K]) - LSE(l)``."""
    return torch.logsumexp(logits[:, :-1], 1) - torch.logsumexp(logits, 1)


def odena_d_loss(lab_logits: Tensor, labels: Tensor, unl_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """(supervised, unsupervised) D losses, K + 1 form.

    supervised ``CE(l_lab, y)``; unsupervised ``-mean log(1 - p_fake(x_unl)) - mean log p_fake(G(z))``.
    ``cross_entropy`` takes raw logits: no softmax before it.
    """
    sup = F.cross_entropy(lab_logits, labels)
    log_p_fake = torch.log_softmax(fake_logits, 1)[:, -1]
    unsup = -odena_log_real(unl_logits).mean() - log_p_fake.mean()
    return sup, unsup


def odena_g_loss(fake_logits: Tensor) -> Tensor:
    """``-mean log(1 - p_fake(G(z)))`` (non-saturating)."""
    return -odena_log_real(fake_logits).mean()


def salimans_d_loss(lab_logits: Tensor, labels: Tensor, unl_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """(supervised, unsupervised) D losses, K-logit form.

    ``L_unl = -0.5 mean LSE(l_real) + 0.5 mean softplus(LSE(l_real)) + 0.5 mean softplus(LSE(l_fake))``.
    """
    sup = F.cross_entropy(lab_logits, labels)
    lse_r, lse_f = torch.logsumexp(unl_logits, 1), torch.logsumexp(fake_logits, 1)
    unsup = -0.5 * lse_r.mean() + 0.5 * F.softplus(lse_r).mean() + 0.5 * F.softplus(lse_f).mean()
    return sup, unsup


def salimans_ns_g_loss(fake_logits: Tensor) -> Tensor:
    """``-mean log D(G(z))`` with ``D = Z / (Z + 1)``: ``mean(softplus(LSE(l)) - LSE(l))`` = ``mean softplus(-LSE)``."""
    return F.softplus(-torch.logsumexp(fake_logits, 1)).mean()


def feature_matching_loss(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """``|| mean f(x) - mean f(G(z)) ||^2`` on D's last hidden layer (real features detached by the caller)."""
    return (real_features.mean(0) - fake_features.mean(0)).pow(2).sum()


# --- BiGAN (Donahue et al. 2016) and BigBiGAN (Donahue & Simonyan 2019) ------------------------------------------------
# Encoder pairs (x, E(x)) play "real", generator pairs (G(z), z) play "fake". Scores come as (s_x, s_z, s_xz) tuples;
# a missing unary score is None (BiGAN's joint discriminator), which makes the BigBiGAN losses the joint term alone.

Scores = tuple  # (s_x | None, s_z | None, s_xz)


def bigan_d_loss(enc: Scores, gen: Scores) -> Tensor:
    """BiGAN discriminator BCE per score, summed over the scores present:
    ``sum_s -mean log D_s(x, E(x)) - mean log(1 - D_s(G(z), z))`` with ``D_s = sigmoid(s)``."""
    terms = [F.softplus(-se).mean() + F.softplus(sg).mean() for se, sg in zip(enc, gen) if se is not None]
    return torch.stack(terms).sum()


def bigan_eg_loss(enc: Scores, gen: Scores) -> Tensor:
    """BiGAN encoder + generator loss, flipped labels (non-saturating), per score, summed:
    ``sum_s -mean log(1 - D_s(x, E(x))) - mean log D_s(G(z), z)``."""
    terms = [F.softplus(se).mean() + F.softplus(-sg).mean() for se, sg in zip(enc, gen) if se is not None]
    return torch.stack(terms).sum()


def bigbigan_d_loss(enc: Scores, gen: Scores) -> Tensor:
    """BigBiGAN discriminator: a hinge per score, summed over the scores present:
    ``sum_s mean relu(1 - s[enc]) + mean relu(1 + s[gen])``."""
    terms = [F.relu(1.0 - se).mean() + F.relu(1.0 + sg).mean() for se, sg in zip(enc, gen) if se is not None]
    return torch.stack(terms).sum()


def bigbigan_eg_loss(enc: Scores, gen: Scores) -> Tensor:
    """BigBiGAN encoder + generator loss: ``mean(s_x + s_z + s_xz)[enc] - mean(s_x + s_z + s_xz)[gen]``."""
    s_enc = sum(s for s in enc if s is not None)
    s_gen = sum(s for s in gen if s is not None)
    return s_enc.mean() - s_gen.mean()
