"""EGAN, evolutionary GAN (Wang, Xu, Yao & Tao, "Evolutionary Generative Adversarial Networks", 2018): a population
of generators evolved against one D.

Every batch takes one D step (BCE) on real versus samples of the parents. Every ``d_steps``-th batch is followed by
one generation: each of the ``mu`` parents makes one child per mutation, each child starting from a copy of the
parent's weights **and Adam state** and taking one G step against the current D with its mutation loss

    minimax        mean log(1 - D(G(z)))            = -mean softplus(s)
    heuristic      -mean log D(G(z))                = mean softplus(-s)
    least_squares  mean (D(G(z)) - 1)^2             = mean (sigmoid(s) - 1)^2

then is scored by ``F = F_q + gamma * F_d`` on an evaluation batch: ``F_q = mean D(G_child(z))`` and
``F_d = -log ||grad_D L_D||`` with ``L_D`` D's BCE loss on the real batch versus the child's samples, taken with
``torch.autograd.grad`` at the pre-update D (D is never stepped nor its ``.grad`` touched; the real half of the
gradient is computed once per generation). The ``mu`` fittest
children (weights and Adam state) become the parents. That is the paper's Algorithm 1 loop: ``n_D`` D steps, then one
generation. Under DDP the fitness is averaged over ranks before the choice, so every rank keeps the same children.

With ``instance_noise`` (Sønderby et al., "Amortised MAP Inference for Image Super-resolution", 2016) D sees real
data and samples through Gaussian noise annealed to 0, in its steps and in the children's G steps; the fitness is
taken on the samples as they are.

The paper keeps one parent (``mu`` 1). ``configs/egan_grid25.yaml`` is the recipe for the 2D grid: four parents,
quality fitness only (``gamma`` 0), one D step per generation and instance noise 0.5 (measured in BENCHMARKS.md,
"Mode coverage on the 2D toys").

``sample()`` draws from the whole (EMA) population, the ``i``-th chunk of the latents from parent ``i``;
``sample(n, member=i)`` draws from parent ``i`` alone (1-based).
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_zoo.base import GANModule, MemberSampling
from gan_zoo.datamodules.base import Batch
from gan_zoo.losses import EGAN_MUTATIONS as MUTATIONS
from gan_zoo.losses import bce_d_loss, mutation_loss
from gan_zoo.networks.factory import gan_networks
from gan_zoo.registry import register_model
from gan_zoo.regularizers import InstanceNoise


class Population(nn.Module):
    """``mu`` generators sampled as one: ``forward(z)`` gives member ``i`` the ``i``-th chunk of ``z``."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, z: Tensor) -> Tensor:
        if len(self.members) == 1:
            return self.members[0](z)
        chunks = z.tensor_split(len(self.members))
        return torch.cat([g(c) for g, c in zip(self.members, chunks) if len(c)])


class Snapshot(NamedTuple):
    """A generator's weights (parameters and buffers) and its Adam state, copied: a parent or a child of a
    generation."""

    tensors: list[Tensor]  # parameters, then buffers, in module order
    opt_state: list[dict]  # the optimizer's per-parameter state (Adam: step, exp_avg, exp_avg_sq), in parameter order


def _tensors(g: nn.Module) -> list[Tensor]:
    return [*g.parameters(), *g.buffers()]


@torch.no_grad()
def snapshot(g: nn.Module, opt) -> Snapshot:
    """A copy of ``g``'s weights and of ``opt``'s state for ``g``'s parameters."""
    state = [{k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()} for p in g.parameters()]
    return Snapshot([t.detach().clone() for t in _tensors(g)], state)


@torch.no_grad()
def restore(g: nn.Module, opt, snap: Snapshot) -> None:
    """Put ``snap`` back into ``g`` and ``opt``, copying into the tensors they hold (the snapshot stays usable)."""
    torch._foreach_copy_(_tensors(g), snap.tensors)
    for p, saved in zip(g.parameters(), snap.opt_state):
        live = opt.state.get(p)
        if live and live.keys() == saved.keys() and all(torch.is_tensor(v) for v in saved.values()):
            torch._foreach_copy_(list(live.values()), [saved[k] for k in live])
        else:  # no state yet (a parent that never stepped) or a different layout: fresh copies
            opt.state[p] = {k: v.clone() if torch.is_tensor(v) else v for k, v in saved.items()}


@register_model("egan")
class EGAN(MemberSampling, GANModule):
    """EGAN (Wang, Xu, Yao & Tao, 2018): ``mu`` parent generators, one child per mutation per parent, each child
    scored on quality and diversity against one discriminator; the fittest ``mu`` children become the parents.

    Args:
        channels: image channels (images).
        resolution: image side (images).
        data_dim: dimension of vector data (the 2D toys: MLP networks); 0 for images.
        latent_dim: size of z.
        ngf: generator width (images).
        ndf: discriminator width (images).
        hidden: MLP width (vector data).
        mu: number of parents (survivors per generation), >= 1 (the paper: 1).
        mutations: comma list of mutations, from minimax, heuristic, least_squares.
        gamma: weight of the diversity fitness F_d in F = F_q + gamma * F_d (0: quality only).
        d_steps: D steps (batches) per generation, >= 1 (the paper's n_D).
        instance_noise: std of the instance noise on D's inputs at the start (in D's steps and the children's G
            steps, not in the fitness), >= 0 (0 = off).
        instance_noise_images: images seen over which the instance noise anneals linearly to 0, >= 0.
        lr: Adam learning rate of G (and of D unless lr_d is set).
        lr_d: Adam learning rate of D (default: lr).
        beta1: Adam beta1.
        beta2: Adam beta2.
        ema_decay: decay of the EMA of the population used for sampling (0 = off).
        n_fixed_samples: number of fixed latents for sample grids.
    """

    supports_vectors = True
    member_noun = "parents"  # sample(n, member=i)

    def __init__(self, channels: int = 1, resolution: int = 32, data_dim: int = 0, latent_dim: int = 100,
                 ngf: int = 64, ndf: int = 64, hidden: int = 128, mu: int = 1,
                 mutations: str = "minimax,heuristic,least_squares", gamma: float = 0.1, d_steps: int = 2,
                 instance_noise: float = 0.0, instance_noise_images: int = 100_000, lr: float = 2e-4,
                 lr_d: float | None = None, beta1: float = 0.5, beta2: float = 0.999, ema_decay: float = 0.999,
                 n_fixed_samples: int = 64):
        self.mutations = tuple(m.strip() for m in mutations.split(",") if m.strip())
        bad = [m for m in self.mutations if m not in MUTATIONS]
        if bad or not self.mutations:
            raise ValueError(f"unknown mutation(s) {bad or mutations!r}; valid: {', '.join(MUTATIONS)}")
        if mu < 1 or d_steps < 1:
            raise ValueError("mu and d_steps must be >= 1")
        noise = InstanceNoise(instance_noise, instance_noise_images)
        super().__init__(latent_dim=latent_dim, ema_decay=ema_decay, n_fixed_samples=n_fixed_samples)
        self.noise = noise  # on D's inputs in its steps and the children's G steps, not in the fitness
        nets = [gan_networks(channels=channels, resolution=resolution, data_dim=data_dim, latent_dim=latent_dim,
                             ngf=ngf, ndf=ndf, hidden=hidden) for _ in range(mu)]
        self.generator = Population([g for g, _ in nets])
        self.discriminator = nets[0][1]
        self.clamp_output = not data_dim
        self.last_choice: list[int] = []  # indices (parent * len(mutations) + mutation) of the last survivors
        self.init_ema()
        self.save_hyperparameters()

    def member_generators(self) -> list[nn.Module]:
        """The parents as sampled (the EMA population's members where there is one): ``sample(n, member=i)``."""
        return list(self.sampling_generator.members)

    def trained_networks(self) -> dict[str, nn.Module]:
        # the population's members are called one by one in a generation: compile them, not the Population wrapper
        nets = {f"generator.members.{i}": g for i, g in enumerate(self.generator.members)}
        return {**nets, "discriminator": self.discriminator}

    # --- one generation ----------------------------------------------------------------------------------------------

    def _d_grads(self, loss_fn, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        # (D's scores on x, gradient of loss_fn(scores) w.r.t. D's parameters); D's buffers and .grad untouched
        d = self.discriminator
        with self._d_buffers_kept():
            scores = d(x)
            grads = torch.autograd.grad(loss_fn(scores), [p for p in d.parameters() if p.requires_grad])
        return scores.detach(), list(grads)

    @contextlib.contextmanager
    def _d_buffers_kept(self):
        # D's buffers (batch-norm statistics) as they were before the block: scoring a child never changes D
        saved = [b.clone() for b in self.discriminator.buffers()]
        yield
        with torch.no_grad():
            for b, kept in zip(self.discriminator.buffers(), saved):
                b.copy_(kept)

    @torch.no_grad()
    def quality(self, child: nn.Module, z_eval: Tensor) -> Tensor:
        """``F_q = mean D(G(z_eval))`` of a child at the current D, without D's gradient (the fitness when ``gamma``
        is 0); D's buffers stay as they were."""
        with self._d_buffers_kept():
            return torch.sigmoid(self.discriminator(child(z_eval))).mean()

    def real_grads(self, real: Tensor) -> list[Tensor]:
        """Gradient of the real half of D's BCE loss, ``-mean log D(x)``: the same for every child of a generation."""
        return self._d_grads(lambda s: F.softplus(-s).mean(), real)[1]

    def fitness(self, child: nn.Module, real: Tensor, z_eval: Tensor,
                real_grads: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``(F_q, F_d)`` of a child at the current (pre-update) D: ``F_q = mean D(G(z))``, ``F_d = -log ||grad_D
        L_D||`` with ``L_D = -mean log D(x) - mean log(1 - D(G(z)))``. The real half's gradient does not depend on the
        child: pass ``real_grads`` to reuse it. Leaves D's parameters, ``.grad`` and buffers as they were."""
        if real_grads is None:
            real_grads = self.real_grads(real)
        with torch.no_grad():
            fake = child(z_eval)
        s_fake, fake_grads = self._d_grads(lambda s: F.softplus(s).mean(), fake)
        f_q = torch.sigmoid(s_fake).mean()
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a + b)
                                                     for a, b in zip(real_grads, fake_grads)]))
        return f_q, -torch.log(norm)

    def _reduce_mean(self, t: Tensor) -> Tensor:
        if self._trainer is not None and self.trainer.world_size > 1:
            return self.trainer.strategy.reduce(t, reduce_op="mean")
        return t

    def generation(self, real: Tensor, opt_gs: list) -> dict:
        """Make, train and score every child; keep the fittest ``mu`` as parents. Returns what to log.

        With ``gamma`` 0 the fitness is ``F_q`` alone: ``F_d`` and the gradients of D it needs are not computed."""
        n = real.shape[0]
        hp = self.hparams
        diversity = hp.gamma != 0
        members = self.generator.members
        children = []  # [F_q, F_d, mutation, snapshot, mutation loss]
        z_eval = self.sample_latent(n, device=real.device)
        # D is the same for every child: its real-data gradient once per generation
        g_real = self.real_grads(real) if diversity else None
        sigma = self.noise.sigma(self.images_seen)
        for g, opt in zip(members, opt_gs):
            inner = getattr(opt, "optimizer", opt)
            parent = snapshot(g, inner)
            for kind in self.mutations:
                restore(g, inner, parent)
                self.discriminator.requires_grad_(False)
                fake = self.noise.apply(g(self.sample_latent(n, device=real.device)), sigma)
                loss = mutation_loss(kind, self.discriminator(fake))
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                opt.step()
                self.discriminator.requires_grad_(True)
                if diversity:
                    f_q, f_d = self.fitness(g, real, z_eval, g_real)
                else:
                    f_q, f_d = self.quality(g, z_eval), None
                children.append([f_q, f_d, kind, snapshot(g, inner), loss.detach()])
        # the choice: fitness averaged over ranks so that every rank keeps the same children
        f_q = self._reduce_mean(torch.stack([c[0] for c in children]))
        fit = f_q
        if diversity:
            f_d = self._reduce_mean(torch.stack([c[1] for c in children]))
            fit = f_q + hp.gamma * f_d
        order = torch.argsort(fit, descending=True, stable=True)[: hp.mu].tolist()
        for g, opt, idx in zip(members, opt_gs, order):
            restore(g, getattr(opt, "optimizer", opt), children[idx][3])
        self.update_ema()
        self.last_choice = order
        best = order[0]
        logs = {f"egan/win_{kind}": float(sum(children[i][2] == kind for i in order)) for kind in self.mutations}
        logs.update({"egan/fitness": fit[best], "egan/f_q": f_q[best], "loss/g": children[best][4]})
        if diversity:
            logs["egan/f_d"] = f_d[best]
        return logs

    # --- the loop ----------------------------------------------------------------------------------------------------

    def training_step(self, batch: Batch, batch_idx: int) -> dict:
        real = batch["x"]
        n = real.shape[0]
        *opt_gs, opt_d = self.optimizers()
        with torch.no_grad():
            fake = self.generator(self.sample_latent(n, device=real.device))  # the parents' samples
        sigma = self.noise.sigma(self.images_seen)
        s_real = self.discriminator(self.noise.apply(real, sigma))
        s_fake = self.discriminator(self.noise.apply(fake, sigma))
        loss_d = bce_d_loss(s_real, s_fake)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()
        logs = {"loss/d": loss_d.detach(), "d/real_score": s_real.detach().mean(),
                "d/fake_score": s_fake.detach().mean()}
        if sigma > 0:
            logs["train/instance_noise"] = sigma
        if (batch_idx + 1) % self.hparams.d_steps == 0:
            logs.update(self.generation(real, opt_gs))
        self.count_images(n)
        self.log_train(logs, {"d": "loss/d"})
        return {"loss_d": logs["loss/d"]}

    def configure_optimizers(self):
        return [*(self.adam(g.parameters()) for g in self.generator.members),
                self.adam(self.discriminator.parameters(), d=True)]
