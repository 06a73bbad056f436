"""Every registered GAN's training step written out as a plain PyTorch loop: no Trainer, no ``self.log``, no callbacks.

Each loop trains the model's own networks (``model.generator``, ``model.discriminator``, ``model.encoder``, EGAN's
population, SGAN's local pairs / messengers / global pair, PGGAN's staged networks) with optimizers of its own built
from ``model.hparams``, the losses of ``gan_zoo.losses``, the same number of D / G steps per batch, the same EMA
updates (``model.update_ema()``, ``gan_zoo.base.ema_step_``) and the same images-seen accounting as the model's
``training_step`` under a Trainer on one device. Random numbers are drawn in the same order as ``training_step``
draws them, so from the same seed and initial weights both paths end with the same weights
(``tests/test_plain_loops.py`` checks it bitwise). ``benchmarks/benchmark.py`` times the two paths against each other.

Interface: ``PLAIN_LOOPS[name](model, loader, warmup, steps, precision="32-true") -> seconds``: trains ``warmup + steps`` batches of
``loader`` and returns the wall time of the last ``steps`` (measured like the benchmark's Lightning timer: from the
start of batch ``warmup``, after it was fetched, to the end of the last batch). Loops expect a freshly built model
(state such as EGAN's Adam states or SGAN's latent streams starts where a new ``trainer.fit`` starts) on the CPU or
one device, in float32 or (``precision="bf16-mixed"``) under bf16 autocast.

The model's pure-tensor helpers that describe its algorithm are reused where they are not Lightning machinery:
PGGAN's ``schedule`` / ``set_stage`` / ``real_at``, the alternating models' ``balance`` policy, EGAN's
``mutation_loss``, ``quality`` and the ``snapshot`` / ``restore`` of a child's weights and Adam state. Everything
that runs through Lightning (``optimizers()``, ``manual_backward``, ``log_train``, ``count_images``, the DDP
reduction) is replaced by its plain equivalent.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gan_zoo.base import adam_impl, ema_step_
from gan_zoo.losses import (LSGAN_CODINGS, bce_d_loss, bce_errors, bigan_d_loss, bigan_eg_loss, bigbigan_d_loss,
                            bigbigan_eg_loss, drift_penalty, feature_matching_loss, gradient_penalty, lsgan_d_loss,
                            lsgan_g_loss, mutation_loss, ns_g_loss, odena_d_loss, odena_g_loss, salimans_d_loss,
                            salimans_ns_g_loss, selfgan_loss, wgan_d_loss, wgan_g_loss)
from gan_zoo.models.egan import restore, snapshot
from gan_zoo.models.pggan import _as_float32

StepFn = Callable[[int, dict], None]


# --- shared pieces ------------------------------------------------------------------------------------------------

def _betas(hp) -> tuple[float, float]:
    return float(hp.beta1), float(hp.beta2)  # floats: torch rejects an int 0 in betas


def _adam(params, hp, lr: float | None = None) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=hp.lr if lr is None else lr, betas=_betas(hp), **adam_impl())


def _lr_d(hp) -> float:
    return hp.lr_d if hp.get("lr_d") is not None else hp.lr


def _randn(model, n: int, like: Tensor) -> Tensor:
    # GANModule.sample_latent without a generator: standard normal from the global RNG, on the batch's device
    return torch.randn(n, model.latent_dim, device=like.device)


PRECISIONS = ("32-true", "bf16-mixed")


def _to_device(batch: dict, device: torch.device) -> dict:
    if device.type == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(model: nn.Module, loader, warmup: int, steps: int, step: StepFn, precision: str = "32-true") -> float:
    """Train ``warmup + steps`` batches with ``step(batch_idx, batch)``; the seconds of the last ``steps``.

    The model's device (where its parameters are) is where batches go and where the steps run; ``precision``
    ``"bf16-mixed"`` runs each whole step under ``torch.autocast(<device>, torch.bfloat16, cache_enabled=False)``,
    which is what Lightning's ``bf16-mixed`` precision does around a manual-optimization ``training_step`` (backward
    and optimizer steps included).
    On CUDA the device is synchronised before the clock starts and before it stops."""
    if warmup < 0 or steps < 1:
        raise ValueError(f"need warmup >= 0 and steps >= 1, got warmup={warmup}, steps={steps}")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    device = next(model.parameters()).device
    total = warmup + steps
    model.train()
    t0 = None
    done = 0
    with torch.enable_grad():
        for i, batch in enumerate(loader):
            batch = _to_device(batch, device)
            if i == warmup:
                _sync(device)
                t0 = time.perf_counter()
            if precision == "bf16-mixed":
                # no cast cache: the step updates weights inside the region, and a cached bf16 copy would be stale
                with torch.autocast(device.type, dtype=torch.bfloat16, cache_enabled=False):
                    step(i, batch)
            else:
                step(i, batch)
            done += 1
            if done == total:
                break
    _sync(device)
    t1 = time.perf_counter()
    if done < total:
        raise ValueError(f"the loader gave {done} batches, fewer than warmup + steps = {total}")
    return t1 - t0


# --- DCGAN, LSGAN (gan_zoo/models/alternating.py) ---------------------------------------------------------------

def alternating_step(model, d_loss_fn, g_loss_fn) -> tuple[StepFn, dict[str, torch.optim.Optimizer]]:
    """The DCGAN / LSGAN training step as a plain function ``step(batch_idx, batch)`` on ``model``'s networks, with
    the optimizers it steps (``{"g": ..., "d": ...}``, for a checkpoint of a loop that runs it)."""
    hp = model.hparams
    G, D, balance = model.generator, model.discriminator, model.balance
    opt_g = _adam(G.parameters(), hp)
    opt_d = _adam(D.parameters(), hp, _lr_d(hp))
    sigma0, horizon = hp.instance_noise, hp.instance_noise_images

    def noisy(x: Tensor, sigma: float) -> Tensor:
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def step(i: int, batch: dict) -> None:
        real = batch["x"]
        n = real.shape[0]
        sigma = 0.0 if sigma0 == 0 or horizon == 0 else sigma0 * max(0.0, 1.0 - model.images_seen / horizon)
        fake = G(_randn(model, n, real))

        s_real = D(noisy(real, sigma))
        s_fake = D(noisy(fake.detach(), sigma))
        loss_d = d_loss_fn(s_real, s_fake)
        penalty = balance.d_penalty(D.parameters())
        if penalty is not None:
            loss_d = loss_d + penalty
        update_d, update_g = True, True
        if balance.needs_errors:
            update_d, update_g = balance.decide(*bce_errors(s_real.detach(), s_fake.detach()))
        if update_d:
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

        D.requires_grad_(False)
        loss_g = g_loss_fn(D(noisy(fake, sigma)))
        if update_g:
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            model.update_ema()
        D.requires_grad_(True)
        balance.observe_g_loss(loss_g)
        model.images_seen += n

    return step, {"g": opt_g, "d": opt_d}


def _alternating(model, loader, warmup: int, steps: int, d_loss_fn, g_loss_fn, precision: str = "32-true") -> float:
    step, _ = alternating_step(model, d_loss_fn, g_loss_fn)
    return _run(model, loader, warmup, steps, step, precision)


def dcgan_step(model) -> tuple[StepFn, dict[str, torch.optim.Optimizer]]:
    """DCGAN's step (BCE for D with ``label_smoothing``, the non-saturating loss for G): ``alternating_step``."""
    real_target = 1.0 - model.hparams.label_smoothing
    return alternating_step(model, lambda r, f: bce_d_loss(r, f, real_target), ns_g_loss)


def plain_dcgan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    return _run(model, loader, warmup, steps, dcgan_step(model)[0], precision)


def plain_lsgan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    a, b, c = LSGAN_CODINGS[model.hparams.coding]
    return _alternating(model, loader, warmup, steps, lambda r, f: lsgan_d_loss(r, f, a, b),
                        lambda f: lsgan_g_loss(f, c), precision)


# --- PGGAN (gan_zoo/models/pggan.py) ----------------------------------------------------------------------------

def plain_pggan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    """WGAN-GP + drift, one D then one G step per batch; the stage follows ``images_seen``; Adam's state is cleared
    at every phase change (``model.phase_index`` is the phase of the last step, as in ``training_step``)."""
    hp = model.hparams
    G, D, schedule = model.generator, model.discriminator, model.schedule
    kw = dict(lr=hp.lr, betas=_betas(hp), eps=hp.adam_eps, **adam_impl())
    opt_g = torch.optim.Adam(G.parameters(), **kw)
    opt_d = torch.optim.Adam(D.parameters(), **kw)

    def step(i: int, batch: dict) -> None:
        stage = schedule.at(model.images_seen)
        if stage.phase != model.phase_index:
            opt_g.state.clear()
            opt_d.state.clear()
            model.phase_index = stage.phase
        model.set_stage(stage)
        bs = schedule.batch_size(stage.level)
        real = batch["x"]
        if bs is not None:
            if bs > real.shape[0]:
                raise ValueError(f"batch size {bs} at {stage.resolution}x{stage.resolution} exceeds the loader's "
                                 f"{real.shape[0]}")
            real = real[:bs]
        real = model.real_at(real, stage)
        n = real.shape[0]
        level, alpha = stage.level, stage.alpha

        def critic(x):
            return D(x, level, alpha)

        # level and alpha passed as numbers, as the model does (G reading its buffers would sync the GPU twice a step:
        # benchmarks/gpu_syncs.py found it)
        fake = G(_randn(model, n, real), level, _as_float32(alpha))
        s_real = critic(real)
        s_fake = critic(fake.detach())
        loss_d = wgan_d_loss(s_real, s_fake) + gradient_penalty(critic, real, fake, hp.gp_weight) \
            + drift_penalty(s_real, hp.drift)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        D.requires_grad_(False)
        loss_g = wgan_g_loss(critic(fake))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        D.requires_grad_(True)
        model.update_ema()
        model.images_seen += n

    return _run(model, loader, warmup, steps, step, precision)


# --- SelfGAN (gan_zoo/models/selfgan.py) ------------------------------------------------------------------------

def plain_selfgan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    """One Adam over G and D, one backward per batch, the previous batch's fakes replayed as "fake"."""
    hp = model.hparams
    G, D = model.generator, model.discriminator
    opt = _adam(list(G.parameters()) + list(D.parameters()), hp)

    def step(i: int, batch: dict) -> None:
        real = batch["x"]
        n = real.shape[0]
        fake = G(_randn(model, n, real))
        last = model.last_fake
        last = torch.zeros_like(fake) if last is None or last.shape != fake.shape else last.to(fake.device)
        s_real, s_gen, s_last = D(real), D(fake), D(last)
        loss = selfgan_loss(s_real, s_gen, s_last, hp.weighting, hp.weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.update_ema()
        model.last_fake = fake.detach()
        model.images_seen += n

    return _run(model, loader, warmup, steps, step, precision)


# --- the semi-supervised GAN (gan_zoo/models/semisup.py) --------------------------------------------------------

def plain_semisupgan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    """D step on the labeled batch (supervised) plus unlabeled real vs fake (unsupervised), EMA of D; then the G
    step (feature matching or non-saturating) and the G EMA. ``supervised_only``: the D step on the labeled batch."""
    hp = model.hparams
    G, D = model.generator, model.discriminator
    opt_g = _adam(G.parameters(), hp)
    opt_d = _adam(D.parameters(), hp)  # the semi-supervised GAN has no lr_d
    d_loss_fn = odena_d_loss if hp.form == "odena" else salimans_d_loss

    def step(i: int, batch: dict) -> None:
        x_unl, x_lab, y_lab = batch["x"], batch["x_lab"], batch["y_lab"]
        n = x_unl.shape[0]
        fake = None if hp.supervised_only else G(_randn(model, n, x_unl))
        lab_logits = D(x_lab)
        if fake is None:
            loss_d = F.cross_entropy(lab_logits, y_lab) + hp.unsup_weight * 0.0
        else:
            sup, unsup = d_loss_fn(lab_logits, y_lab, D(x_unl), D(fake.detach()))
            loss_d = sup + hp.unsup_weight * unsup
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        ema_step_(model.discriminator_ema, D, hp.d_ema_decay, model.d_ema_updates)
        model.d_ema_updates += 1
        if fake is not None:
            D.requires_grad_(False)
            if hp.g_loss == "feature_matching":
                with torch.no_grad():
                    real_f = D.features(x_unl)
                loss_g = feature_matching_loss(real_f, D.features(fake))
            else:
                logits = D(fake)
                loss_g = odena_g_loss(logits) if hp.form == "odena" else salimans_ns_g_loss(logits)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            D.requires_grad_(True)
            model.update_ema()
        model.images_seen += n

    return _run(model, loader, warmup, steps, step, precision)


# --- BiGAN, BigBiGAN (gan_zoo/models/bigan.py) ------------------------------------------------------------------

def _bigan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    """A D step per batch on (x, E(x)) vs (G(z), z) with E and G frozen; every ``d_steps``-th batch an E+G step on
    the same batch and z through the frozen D (one Adam over G and E, E at ``lr * lr_e_mult``)."""
    hp = model.hparams
    G, E, D = model.generator, model.encoder, model.discriminator
    opt_eg = _adam([{"params": G.parameters(), "lr": hp.lr}, {"params": E.parameters(), "lr": hp.lr * hp.lr_e_mult}],
                   hp)
    opt_d = _adam(D.parameters(), hp, _lr_d(hp))
    d_loss_fn, eg_loss_fn = (bigan_d_loss, bigan_eg_loss) if hp.loss == "bce" else (bigbigan_d_loss, bigbigan_eg_loss)

    def step(i: int, batch: dict) -> None:
        real = batch["x"]
        n = real.shape[0]
        z = _randn(model, n, real)
        eg_step = (i + 1) % hp.d_steps == 0
        with torch.set_grad_enabled(eg_step):  # one G and E forward per batch, reused by the E+G step
            fake, z_enc = G(z), E(real)
        enc, gen = D(real, z_enc.detach()), D(fake.detach(), z)
        loss_d = d_loss_fn(enc, gen)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if eg_step:
            D.requires_grad_(False)
            enc = D(real, z_enc)
            gen = D(fake, z)
            loss_eg = eg_loss_fn(enc, gen)
            opt_eg.zero_grad(set_to_none=True)
            loss_eg.backward()
            opt_eg.step()
            D.requires_grad_(True)
            model.update_ema()
        model.images_seen += n

    return _run(model, loader, warmup, steps, step, precision)


plain_bigan = _bigan
plain_bigbigan = _bigan


# --- EGAN (gan_zoo/models/egan.py) ------------------------------------------------------------------------------

def _d_param_grads(D: nn.Module, loss_fn, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """D's scores on ``x`` and the gradient of ``loss_fn(scores)`` w.r.t. D's parameters; D's buffers restored."""
    saved = [b.clone() for b in D.buffers()]
    scores = D(x)
    grads = torch.autograd.grad(loss_fn(scores), [p for p in D.parameters() if p.requires_grad])
    for b, s in zip(D.buffers(), saved):
        b.copy_(s)
    return scores.detach(), grads


def plain_egan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    """A BCE D step per batch against the parents' samples; every ``d_steps``-th batch one generation: per parent
    and mutation a child from the parent's weights and Adam state takes one G step, is scored by ``F_q + gamma F_d``
    at the (pre-update) D, and the ``mu`` fittest children become the parents; then the EMA step."""
    hp = model.hparams
    D, members = model.discriminator, model.generator.members
    opt_gs = [_adam(g.parameters(), hp) for g in members]
    opt_d = _adam(D.parameters(), hp, _lr_d(hp))

    def generation(real: Tensor) -> None:
        n = real.shape[0]
        diversity = hp.gamma != 0  # F_d only where it enters the choice
        children = []  # (F_q, F_d, snapshot: weights and Adam state)
        z_eval = _randn(model, n, real)
        real_grads = _d_param_grads(D, lambda s: F.softplus(-s).mean(), real)[1] if diversity else None
        for g, opt in zip(members, opt_gs):
            parent = snapshot(g, opt)
            for kind in model.mutations:
                restore(g, opt, parent)
                D.requires_grad_(False)
                loss = mutation_loss(kind, D(g(_randn(model, n, real))))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                D.requires_grad_(True)
                if diversity:
                    with torch.no_grad():
                        fake = g(z_eval)
                    s_fake, fake_grads = _d_param_grads(D, lambda s: F.softplus(s).mean(), fake)
                    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(a + b)
                                                                 for a, b in zip(real_grads, fake_grads)]))
                    f_q, f_d = torch.sigmoid(s_fake).mean(), -torch.log(norm)
                else:
                    f_q, f_d = model.quality(g, z_eval), None
                children.append((f_q, f_d, snapshot(g, opt)))
        fit = torch.stack([c[0] for c in children])
        if diversity:
            fit = fit + hp.gamma * torch.stack([c[1] for c in children])
        order = torch.argsort(fit, descending=True, stable=True)[: hp.mu].tolist()
        for g, opt, idx in zip(members, opt_gs, order):
            restore(g, opt, children[idx][2])
        model.update_ema()
        model.last_choice = order

    def step(i: int, batch: dict) -> None:
        real = batch["x"]
        n = real.shape[0]
        with torch.no_grad():
            fake = model.generator(_randn(model, n, real))
        loss_d = bce_d_loss(D(real), D(fake))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if (i + 1) % hp.d_steps == 0:
            generation(real)
        model.images_seen += n

    return _run(model, loader, warmup, steps, step, precision)


# --- Ensemble SGAN (gan_zoo/models/ensemble_sgan.py) ------------------------------------------------------------

def plain_sgan(model, loader, warmup: int, steps: int, precision: str = "32-true") -> float:
    """Per batch: N local GAN steps on N chunks with per-pair latent streams, a global-D step against the local
    fakes, messengers refreshed every ``messenger_sync`` iterations and stepped on real vs G_0 samples (their chunk or
    the whole batch, as ``messenger_batch`` says), then the global-G step against the frozen messengers and the EMA
    step."""
    hp = model.hparams
    n_pairs = hp.n_pairs
    lgs, lds, msgs = model.local_generators, model.local_discriminators, model.messengers
    G0, D0 = model.generator, model.discriminator
    opt_lg = [_adam(g.parameters(), hp) for g in lgs]
    opt_ld = [_adam(d.parameters(), hp, _lr_d(hp)) for d in lds]
    opt_msg = [_adam(m.parameters(), hp, _lr_d(hp)) for m in msgs]
    opt_g0, opt_d0 = _adam(G0.parameters(), hp), _adam(D0.parameters(), hp, _lr_d(hp))
    # each local pair's latent stream, seeded as EnsembleSGAN.local_latent seeds it on rank 0 of a fresh fit
    streams = [torch.Generator().manual_seed(model.pair_seed_of(hp.pair_seed, j) + 7919) for j in range(n_pairs)]

    def d_step(opt, d: nn.Module, real: Tensor, fake: Tensor) -> None:
        loss = bce_d_loss(d(real), d(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def step(i: int, batch: dict) -> None:
        real = batch["x"]
        n = real.shape[0]
        if n < n_pairs:
            raise ValueError(f"batch of {n} cannot be split over {n_pairs} local pairs")
        chunks = real.tensor_split(n_pairs)
        local_fakes = []
        for j, x in enumerate(chunks):
            g, d = lgs[j], lds[j]
            fake = g(torch.randn(x.shape[0], model.latent_dim, generator=streams[j]).to(x.device))
            d_step(opt_ld[j], d, x, fake.detach())
            d.requires_grad_(False)
            loss = ns_g_loss(d(fake))
            opt_lg[j].zero_grad(set_to_none=True)
            loss.backward()
            opt_lg[j].step()
            d.requires_grad_(True)
            local_fakes.append(fake.detach())

        d_step(opt_d0, D0, real, torch.cat(local_fakes))

        if model.iterations % hp.messenger_sync == 0:
            with torch.no_grad():
                for m, d in zip(msgs, lds):
                    m.load_state_dict(d.state_dict())
        fake0 = G0(_randn(model, n, real))
        if hp.messenger_batch == "whole":  # every messenger on the whole batch and all of G_0's samples
            msg_data = [(real, fake0.detach())] * n_pairs
        else:  # messenger j on chunk j of both
            msg_data = list(zip(chunks, fake0.detach().tensor_split(n_pairs)))
        for j, m in enumerate(msgs):
            d_step(opt_msg[j], m, *msg_data[j])

        msgs.requires_grad_(False)
        loss_g0 = torch.stack([ns_g_loss(m(fake0)) for m in msgs]).mean()
        opt_g0.zero_grad(set_to_none=True)
        loss_g0.backward()
        opt_g0.step()
        msgs.requires_grad_(True)
        model.update_ema()
        model.iterations += 1
        model.images_seen += n

    return _run(model, loader, warmup, steps, step, precision)


PLAIN_LOOPS: dict[str, Callable[..., float]] = {
    "bigan": plain_bigan,
    "bigbigan": plain_bigbigan,
    "dcgan": plain_dcgan,
    "egan": plain_egan,
    "lsgan": plain_lsgan,
    "pggan": plain_pggan,
    "selfgan": plain_selfgan,
    "semisupgan": plain_semisupgan,
    "ensemble_sgan": plain_sgan,
}
