"""EGAN and ensemble SGAN: mutation losses, fitness, selection, optimizer-state inheritance; local-pair independence
and messengers."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

import gan_zoo
from gan_zoo.losses import bce_d_loss, mutation_loss, ns_g_loss
from gan_zoo.networks.factory import gan_networks
from tests.helpers import StepRecorder, param_names, random_loader, tiny_trainer

S = torch.tensor([0.4, -1.1, 2.3])


def _toy_loader(n=64, batch_size=16, seed=0):
    from gan_zoo.datamodules.base import ResumableLoader

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return ResumableLoader(n=n, batch_size=batch_size, seed=seed, fetch=lambda idx: {"x": x[idx]})


# --- EGAN ----------------------------------------------------------------------------------------------------------

def test_mutation_losses_match_the_formulas():
    d = [1 / (1 + math.exp(-v)) for v in S.tolist()]
    assert_close(mutation_loss("minimax", S), torch.tensor(sum(math.log(1 - v) for v in d) / 3))
    assert_close(mutation_loss("heuristic", S), torch.tensor(-sum(math.log(v) for v in d) / 3))
    assert_close(mutation_loss("least_squares", S), torch.tensor(sum((v - 1) ** 2 for v in d) / 3))
    with pytest.raises(ValueError, match="heuristic"):
        mutation_loss("wasserstein", S)


def _egan(**kw):
    torch.manual_seed(0)
    return gan_zoo.get_model("egan", data_dim=2, latent_dim=4, hidden=16, **kw)


def test_fitness_matches_the_formula_and_leaves_d_unchanged():
    model = _egan()
    d = model.discriminator
    real, z = torch.randn(8, 2), torch.randn(8, 4)
    before = {k: v.clone() for k, v in d.state_dict().items()}
    f_q, f_d = model.fitness(model.generator, real, z)
    for k, v in d.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in d.parameters())
    # by hand: F_q = mean sigmoid(s(G(z))), F_d = -log ||grad_D (BCE(real) + BCE(fake))||
    with torch.no_grad():
        fake = model.generator(z)
    assert_close(f_q, torch.sigmoid(d(fake)).mean())
    loss = bce_d_loss(d(real), d(fake))
    loss.backward()
    norm = math.sqrt(sum(float(p.grad.pow(2).sum()) for p in d.parameters()))
    assert_close(f_d, torch.tensor(-math.log(norm)))


def test_children_start_from_the_parents_weights_and_adam_state_and_the_fittest_survives(monkeypatch):
    model = _egan(d_steps=1, gamma=0.5)
    starts, stepped = [], []
    orig_fitness = model.fitness
    fits = iter([(torch.tensor(0.1), torch.tensor(0.0)), (torch.tensor(0.2), torch.tensor(1.0)),
                 (torch.tensor(0.9), torch.tensor(-1.0))] * 4)  # fitness 0.1, 0.7, 0.4: heuristic wins

    def fitness(child, real, z, *rest):
        orig_fitness(child, real, z, *rest)
        stepped.append({k: v.clone() for k, v in child.state_dict().items()})
        return next(fits)

    monkeypatch.setattr(model, "fitness", fitness)
    g = model.generator.members[0]
    rec = StepRecorder()

    def record_start(opt):  # records the weights and Adam state each child's step starts from
        inner = getattr(opt, "optimizer", opt)
        orig = inner.step

        def step(*a, **k):
            starts.append(({n: p.detach().clone() for n, p in g.named_parameters()},
                           [{kk: vv.clone() for kk, vv in inner.state[p].items()} for p in g.parameters()]))
            return orig(*a, **k)

        inner.step = step

    import lightning as L

    class Install(L.Callback):
        def on_train_start(self, trainer, pl_module):
            record_start(trainer.optimizers[0])

    tiny_trainer(2, callbacks=[Install(), rec]).fit(model, _toy_loader())
    # 2 generations x 3 children; within a generation every child starts from the same parent weights and state
    assert len(starts) == 6
    for gen in (starts[:3], starts[3:]):
        for w, st in gen[1:]:
            assert all(torch.equal(w[n], gen[0][0][n]) for n in w)
            assert all(torch.equal(a[k], b[k]) for a, b in zip(st, gen[0][1]) for k in a)
    # generation 2 starts from the survivor of generation 1: the heuristic child (index 1), weights and Adam state
    surv = stepped[1]
    assert all(torch.equal(starts[3][0][n], surv[n]) for n in starts[3][0])
    assert all(int(s["step"]) == 1 for s in starts[3][1])  # Adam state of a child that took one step
    assert model.last_choice == [1]


def test_generation_logs_the_winning_mutation_and_d_steps_move_only_d():
    model = _egan(d_steps=2)
    rec = StepRecorder()
    logged = []
    orig = model.write_train_logs
    model.write_train_logs = lambda metrics, shown: logged.append(dict(metrics)) or orig(metrics, shown)
    tiny_trainer(4, callbacks=[rec], log_every_n_steps=1).fit(model, _toy_loader())
    d_names = param_names(model.discriminator, "discriminator")
    g_names = param_names(model.generator, "generator")
    d_idx = len(model.generator.members)
    for i, changed in rec.steps:
        assert changed <= (d_names if i == d_idx else g_names) and changed
    assert [i for i, _ in rec.steps] == [1, 1, 0, 0, 0, 1, 1, 0, 0, 0]  # n_D = 2 D steps, then 3 children
    gens = [d for d in logged if "egan/fitness" in d]
    assert len(gens) == 2
    assert all(sum(d[f"egan/win_{k}"] for k in ("minimax", "heuristic", "least_squares")) == 1 for d in gens)


def test_egan_instance_noise_reaches_d_steps_and_children_not_the_fitness():
    model = _egan(d_steps=1, instance_noise=0.4, instance_noise_images=64)  # batches of 16: 0.4, 0.3, 0.2, 0.1
    calls = []
    noisy = model.noise.apply

    def recording(x, sigma):
        calls.append(sigma)
        return noisy(x, sigma)

    fitness_inputs = []
    fitness = model.fitness

    def recording_fitness(child, real, z_eval, real_grads=None):
        fitness_inputs.append(len(calls))  # no noise drawn inside the fitness: the count does not move during it
        out = fitness(child, real, z_eval, real_grads)
        assert len(calls) == fitness_inputs[-1]
        return out

    model.noise.apply, model.fitness = recording, recording_fitness
    tiny_trainer(4).fit(model, _toy_loader())
    # per batch: real and fake in the D step, then one child per mutation (3)
    assert_close(calls, [s for s in (0.4, 0.3, 0.2, 0.1) for _ in range(5)])
    assert len(fitness_inputs) == 12
    with pytest.raises(ValueError, match="instance_noise and instance_noise_images must be >= 0"):
        _egan(instance_noise_images=-1)


def test_with_gamma_0_the_fitness_is_the_quality_alone_and_d_gradients_are_skipped(monkeypatch):
    model = _egan(d_steps=1, gamma=0.0)
    qualities, full = [], []
    quality, fitness = model.quality, model.fitness

    def recording_quality(child, z_eval):
        f_q = quality(child, z_eval)
        with torch.no_grad():
            d_before = [p.clone() for p in model.discriminator.parameters()]
        full_q, full_d = fitness(child, None, z_eval, [torch.zeros_like(p) for p in model.discriminator.parameters()])
        assert all(torch.equal(a, b) for a, b in zip(d_before, model.discriminator.parameters()))
        qualities.append(f_q)
        full.append(full_q)
        return f_q

    monkeypatch.setattr(model, "quality", recording_quality)
    monkeypatch.setattr(model, "real_grads", lambda real: pytest.fail("real_grads computed with gamma 0"))
    logged = []
    orig = model.write_train_logs
    model.write_train_logs = lambda metrics, shown: logged.append(dict(metrics)) or orig(metrics, shown)
    tiny_trainer(2, log_every_n_steps=1).fit(model, _toy_loader())
    assert len(qualities) == 6  # 2 generations x 3 children
    assert_close(torch.stack(qualities), torch.stack(full), rtol=0, atol=0)  # the same F_q as the full fitness
    gens = [d for d in logged if "egan/fitness" in d]
    assert gens and all("egan/f_d" not in d and d["egan/fitness"] == d["egan/f_q"] for d in gens)


def test_egan_population_samples_from_every_parent():
    model = _egan(mu=2, mutations="heuristic,least_squares", ema_decay=0)
    assert len(model.generator.members) == 2
    x = model.sample(10, seed=0)
    z = model.sample_latent(10, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expect = torch.cat([model.generator.members[0](z[:5]), model.generator.members[1](z[5:])])
    model.generator.eval()
    assert_close(x, expect)


def test_egan_samples_one_parent_of_its_ema_population_with_member():
    model = _egan(mu=3)
    with torch.no_grad():  # the EMA population differs from the trained one, so it is visible which one is sampled
        for p in model.generator.parameters():
            p.add_(0.5)
    z = model.sample_latent(6, generator=torch.Generator().manual_seed(2))
    for i in (1, 2, 3):
        with torch.no_grad():
            expect = model.generator_ema.members[i - 1](z)
        assert_close(model.sample(6, seed=2, member=i), expect, rtol=0, atol=0)
        assert_close(model.generate(z, member=i), expect, rtol=0, atol=0)
        assert not torch.equal(expect, model.generator.members[i - 1](z))
    # the population's samples are its parents' samples for their chunks of the latents
    whole = model.sample(6, seed=2)
    parts = [model.generate(z[2 * (i - 1): 2 * i], member=i) for i in (1, 2, 3)]
    assert_close(whole, torch.cat(parts), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"member must be in 1\.\.3 \(this EGAN has 3 parents\), got 0"):
        model.sample(2, member=0)


# --- ensemble SGAN -------------------------------------------------------------------------------------------------

def _sgan(**kw):
    torch.manual_seed(0)
    return gan_zoo.get_model("ensemble_sgan", data_dim=2, latent_dim=4, hidden=16, n_pairs=2, pair_seed=3, **kw)


def _local_pair_alone(i, data_batches, pair_seed=3, lr=2e-4, betas=(0.5, 0.999), n_pairs=2, noise=(0.0, 1), r1=0.0):
    """Local pair i of SGAN trained alone, in plain PyTorch: same seed, same chunk of each batch, same latents; with
    ``noise = (sigma0, images)`` instance noise annealed over the images seen, drawn from the same stream; with ``r1``
    the R1 penalty, written out here, on D's real inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(pair_seed * 1000 + i)
        g, d = gan_networks(channels=0, resolution=0, data_dim=2, latent_dim=4, hidden=16)
    zs = torch.Generator().manual_seed(pair_seed * 1000 + i + 7919)
    from gan_zoo.base import adam_impl

    kw = dict(lr=lr, betas=betas, **adam_impl())  # the zoo's Adam
    og, od = torch.optim.Adam(g.parameters(), **kw), torch.optim.Adam(d.parameters(), **kw)
    seen = 0
    for batch in data_batches:
        x = batch.tensor_split(n_pairs)[i]
        sigma = noise[0] * max(0.0, 1 - seen / noise[1])
        seen += batch.shape[0]

        def noisy(t):
            return t + sigma * torch.randn(t.shape, generator=zs) if sigma > 0 else t

        fake = g(torch.randn(x.shape[0], 4, generator=zs))
        od.zero_grad()
        x_in = noisy(x).requires_grad_(r1 > 0)
        fake_in = noisy(fake.detach())
        s_real = d(x_in)
        loss = bce_d_loss(s_real, d(fake_in))
        if r1 > 0:
            (grad,) = torch.autograd.grad(s_real.sum(), x_in, create_graph=True)
            loss = loss + r1 / 2 * grad.pow(2).sum(dim=1).mean()
        loss.backward()
        od.step()
        d.requires_grad_(False)
        og.zero_grad()
        ns_g_loss(d(noisy(fake))).backward()
        og.step()
        d.requires_grad_(True)
    return g, d


NOISE_ALL = {"instance_noise": 0.5, "instance_noise_images": 48, "instance_noise_on": "all"}


@pytest.mark.parametrize("noise", [{}, NOISE_ALL, {**NOISE_ALL, "r1": 0.5}],
                         ids=["plain", "instance-noise-all", "noise-and-r1"])
def test_local_pairs_are_bitwise_the_pairs_trained_alone(noise):
    model = _sgan(**noise)
    loader = _toy_loader(n=64, batch_size=16)
    batches = [b["x"] for b in loader]
    tiny_trainer(4).fit(model, _toy_loader(n=64, batch_size=16))
    for i in range(2):
        g, d = _local_pair_alone(i, batches,
                                 noise=(noise.get("instance_noise", 0.0), noise.get("instance_noise_images", 1)),
                                 r1=noise.get("r1", 0.0))
        for a, b in zip(g.state_dict().values(), model.local_generators[i].state_dict().values()):
            assert torch.equal(a, b)
        for a, b in zip(d.state_dict().values(), model.local_discriminators[i].state_dict().values()):
            assert torch.equal(a, b)


def test_local_streams_resume_their_state_on_the_same_kind_of_device_and_restart_on_another():
    model = _sgan()
    tiny_trainer(2).fit(model, _toy_loader())
    ckpt = {"gan_zoo": {}}
    model.on_save_checkpoint(ckpt)
    state = ckpt["gan_zoo"]["sgan"]
    assert state["z_device"] == "cpu" and state["iterations"] == 2
    expect = [model.local_latent(i, 3, "cpu") for i in range(2)]  # the streams go on from where they were

    same = _sgan()
    same.on_load_checkpoint(ckpt)
    for i in range(2):
        assert_close(same.local_latent(i, 3, "cpu"), expect[i], rtol=0, atol=0)
        assert same.local_stream(i).device.type == "cpu"

    other = _sgan()  # a state saved on another kind of device cannot be set on this one's generators
    other.on_load_checkpoint({"gan_zoo": {**ckpt["gan_zoo"], "sgan": {**state, "z_device": "cuda"}}})
    with pytest.warns(UserWarning, match="saved on cuda and this run is on cpu: they restart from their seeds"):
        restarted = [other.local_latent(i, 3, "cpu") for i in range(2)]
    for i in range(2):  # from the pair's seed offset by the 2 iterations done: not the saved nor the first numbers
        seed = other.pair_seed_of(3, i) + 7919 + 104_729 * 2
        assert_close(restarted[i], torch.randn(3, 4, generator=torch.Generator().manual_seed(seed)), rtol=0, atol=0)
        assert not torch.equal(restarted[i], expect[i])


def test_global_pair_never_moves_a_local_pair():
    model = _sgan()
    rec = StepRecorder()
    tiny_trainer(2, callbacks=[rec]).fit(model, _toy_loader())
    n = 2
    groups = ([param_names(g, f"local_generators.{i}") for i, g in enumerate(model.local_generators)]
              + [param_names(d, f"local_discriminators.{i}") for i, d in enumerate(model.local_discriminators)]
              + [param_names(m, f"messengers.{i}") for i, m in enumerate(model.messengers)]
              + [param_names(model.generator, "generator"), param_names(model.discriminator, "discriminator")])
    for i, changed in rec.steps:
        assert changed and changed <= groups[i]
    # per iteration: D_1, G_1, D_2, G_2, D_0, msg_1, msg_2, G_0
    assert [i for i, _ in rec.steps][:8] == [n, 0, n + 1, 1, 3 * n + 1, 2 * n, 2 * n + 1, 3 * n]


def test_messenger_cadence_defaults_to_the_best_measured_for_the_data_and_is_saved():
    # BENCHMARKS.md: every 100 iterations on images, every 1000 on the 2D toys; an explicit value wins
    assert _sgan().hparams.messenger_sync == 1000
    images = gan_zoo.get_model("ensemble_sgan", resolution=16, ngf=4, ndf=4, latent_dim=4, n_pairs=1)
    assert images.hparams.messenger_sync == 100
    assert _sgan(messenger_sync=7).hparams.messenger_sync == 7
    with pytest.raises(ValueError, match="messenger_sync must be >= 1"):
        _sgan(messenger_sync=0)


def test_messenger_batch_defaults_to_the_best_measured_for_the_data_and_is_saved():
    # BENCHMARKS.md, "Mode coverage on the 2D toys": the whole batch on the 2D toys; images keep the chunk (the whole batch not measured)
    assert _sgan().hparams.messenger_batch == "whole"
    images = gan_zoo.get_model("ensemble_sgan", resolution=16, ngf=4, ndf=4, latent_dim=4, n_pairs=1)
    assert images.hparams.messenger_batch == "chunk"
    assert _sgan(messenger_batch="chunk").hparams.messenger_batch == "chunk"


def test_messengers_equal_their_local_d_right_after_a_sync_and_follow_the_cadence():
    model = _sgan(messenger_sync=2)
    syncs = []
    orig = model.sync_messengers

    def sync():
        orig()
        syncs.append(model.iterations)
        for m, d in zip(model.messengers, model.local_discriminators):
            for a, b in zip(m.state_dict().values(), d.state_dict().values()):
                assert torch.equal(a, b)

    model.sync_messengers = sync
    tiny_trainer(4).fit(model, _toy_loader())
    assert syncs == [0, 2]
    # after the messenger steps they have moved away from the local discriminators
    m, d = model.messengers[0], model.local_discriminators[0]
    assert not all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), d.state_dict().values()))


@pytest.mark.parametrize("messenger_batch", ["chunk", "whole"])
def test_messengers_train_on_their_chunk_or_on_the_whole_batch(messenger_batch):
    model = _sgan(messenger_batch=messenger_batch)
    calls = []
    step = model._d_step

    def recording_step(opt, d, real, fake, backward, sigma=0.0, generator=None):
        calls.append((d, real.clone(), fake.clone()))
        return step(opt, d, real, fake, backward, sigma, generator)

    model._d_step = recording_step
    loader = _toy_loader(n=32, batch_size=16)
    batch = next(iter(loader))["x"]
    tiny_trainer(1).fit(model, loader)
    msg = [(real, fake) for d, real, fake in calls if any(d is m for m in model.messengers)]
    assert len(msg) == 2  # one step per messenger
    d0_real = [real for d, real, _ in calls if d is model.discriminator][0]
    assert torch.equal(d0_real, batch)
    if messenger_batch == "whole":
        for real, fake in msg:
            assert torch.equal(real, batch) and fake.shape == (16, 2)
        assert torch.equal(msg[0][1], msg[1][1])  # every messenger sees all of G_0's samples
    else:
        for i, (real, fake) in enumerate(msg):
            assert torch.equal(real, batch.tensor_split(2)[i]) and fake.shape == (8, 2)
        assert not torch.equal(msg[0][1], msg[1][1])  # each its own half of G_0's samples
    with pytest.raises(ValueError, match="messenger_batch must be one of chunk, whole, not 'all'"):
        _sgan(messenger_batch="all")


def test_sgan_instance_noise_reaches_only_the_messengers_and_g0():
    """Instance noise on G_0's side: the local pairs and D_0 end bitwise as without it, the messengers and G_0 not."""
    plain, noisy = _sgan(), _sgan(instance_noise=0.5, instance_noise_images=10_000)
    for model in (plain, noisy):
        torch.manual_seed(5)
        tiny_trainer(4).fit(model, _toy_loader())

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

    for i in range(2):
        assert same(plain.local_generators[i], noisy.local_generators[i])
        assert same(plain.local_discriminators[i], noisy.local_discriminators[i])
        assert not same(plain.messengers[i], noisy.messengers[i])
    assert same(plain.discriminator, noisy.discriminator)
    assert not same(plain.generator, noisy.generator)


def test_sgan_instance_noise_is_annealed_and_added_to_real_and_fake():
    model = _sgan(instance_noise=0.4, instance_noise_images=64)  # batches of 16: sigma 0.4, 0.3, 0.2, 0.1
    sigmas = []
    step = model._d_step

    def recording_step(opt, d, real, fake, backward, sigma=0.0, generator=None):
        sigmas.append((any(d is m for m in model.messengers), sigma))
        return step(opt, d, real, fake, backward, sigma, generator)

    model._d_step = recording_step
    tiny_trainer(4).fit(model, _toy_loader())
    assert [s for is_msg, s in sigmas if not is_msg] == [0.0] * 12  # 2 local D steps and D_0, 4 iterations
    assert_close([s for is_msg, s in sigmas if is_msg], [0.4, 0.4, 0.3, 0.3, 0.2, 0.2, 0.1, 0.1])
    x = torch.randn(8, 2)
    torch.manual_seed(3)
    noisy = model.noise.apply(x, 0.25)
    torch.manual_seed(3)
    assert_close(noisy, x + 0.25 * torch.randn(8, 2), rtol=0, atol=0)
    assert model.noise.apply(x, 0.0) is x
    with pytest.raises(ValueError, match="instance_noise and instance_noise_images must be >= 0"):
        _sgan(instance_noise=-0.1)
    with pytest.raises(ValueError, match="instance_noise_on must be one of global, all, not 'local'"):
        _sgan(instance_noise_on="local")


def test_sgan_instance_noise_on_all_reaches_every_discriminator():
    """With instance_noise_on="all" the local pairs and D_0 see the noise too (each local pair from its own stream)."""
    model = _sgan(instance_noise=0.4, instance_noise_images=64, instance_noise_on="all")
    seen = []
    step = model._d_step

    def recording_step(opt, d, real, fake, backward, sigma=0.0, generator=None):
        local = [j for j, ld in enumerate(model.local_discriminators) if d is ld]
        seen.append(("local" if local else "msg" if any(d is m for m in model.messengers) else "d0", sigma,
                     generator is model.local_stream(local[0]) if local else generator is None))
        return step(opt, d, real, fake, backward, sigma, generator)

    model._d_step = recording_step
    tiny_trainer(2).fit(model, _toy_loader())
    # per iteration: D_1, D_2 (own streams), D_0, msg_1, msg_2 (global RNG); sigma 0.4 then 0.3
    assert [(who, own) for who, _, own in seen] == [("local", True)] * 2 + [("d0", True)] + [("msg", True)] * 2 \
        + [("local", True)] * 2 + [("d0", True)] + [("msg", True)] * 2
    assert_close([s for _, s, _ in seen], [0.4] * 5 + [0.3] * 5)


def test_sgan_samples_global_and_members():
    model = _sgan()
    assert model.sample(5, seed=1).shape == (5, 2)
    assert torch.equal(model.sample(5, seed=1), model.sample(5, seed=1))
    a, b = model.sample(5, seed=1, member=1), model.sample(5, seed=1, member=2)
    assert a.shape == (5, 2) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="1..2"):
        model.sample(5, member=3)
    # a member's samples are its local generator's output for the same latents, in eval mode
    z = model.sample_latent(5, generator=torch.Generator().manual_seed(1))
    model.local_generators[1].eval()
    assert_close(b, model.local_generators[1](z), rtol=0, atol=0)
    model.local_generators[1].train()
    assert_close(model.generate(z, member=2), b, rtol=0, atol=0)
    assert model.local_generators[1].training  # its mode is restored


def test_egan_and_sgan_run_on_images():
    for name, kw in (("egan", {}), ("ensemble_sgan", {"n_pairs": 2})):
        torch.manual_seed(0)
        model = gan_zoo.get_model(name, channels=1, resolution=16, ngf=8, ndf=8, latent_dim=8, **kw)
        tiny_trainer(2).fit(model, random_loader(1, 16))
        assert model.sample(4, seed=0).shape == (4, 1, 16, 16)
        assert model.images_seen == 16


def test_bad_options_end_in_one_clear_line(tmp_path, capsys):
    from gan_zoo.fit import cli

    base = ["--data", "ring8", "--max-images", "64", "--logger", "none", "--no-progress-bar", "--out", str(tmp_path)]
    assert cli(["--model", "egan", "--mutations", "minimax,wasserstein", *base]) == 2
    err = capsys.readouterr().err
    assert "wasserstein" in err and "least_squares" in err and "Traceback" not in err
    assert cli(["--model", "ensemble_sgan", "--n-pairs", "0", *base]) == 2
    assert "n_pairs" in capsys.readouterr().err
    assert cli(["--model", "ensemble_sgan", "--messenger-batch", "all", *base]) == 2
    err = capsys.readouterr().err
    assert "messenger_batch must be one of chunk, whole, not 'all'" in err and "Traceback" not in err
