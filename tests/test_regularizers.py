"""``gan_zoo.regularizers``: instance noise as an object a model owns."""

import pytest
import torch

import gan_zoo
from gan_zoo.regularizers import InstanceNoise


def test_sigma_anneals_linearly_to_zero_and_is_off_at_zero():
    noise = InstanceNoise(0.2, 1000)
    assert [noise.sigma(n) for n in (0, 250, 1000, 5000)] == pytest.approx([0.2, 0.15, 0.0, 0.0])
    assert InstanceNoise(0.0, 1000).sigma(0) == 0.0 and InstanceNoise(0.5, 0).sigma(0) == 0.0


def test_apply_adds_gaussian_noise_from_the_global_rng_or_a_stream():
    x = torch.randn(8, 2)
    torch.manual_seed(3)
    noisy = InstanceNoise.apply(x, 0.25)
    torch.manual_seed(3)
    assert torch.equal(noisy, x + 0.25 * torch.randn(8, 2))
    stream = InstanceNoise().apply(x, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(stream, x + 0.5 * torch.randn(8, 2, generator=torch.Generator().manual_seed(7)))
    state = torch.get_rng_state()
    assert InstanceNoise.apply(x, 0.0) is x and torch.equal(torch.get_rng_state(), state)  # nothing drawn when off


def test_arguments_are_checked():
    for std, images in ((-0.1, 10), (0.1, -1)):
        with pytest.raises(ValueError, match="instance_noise and instance_noise_images must be >= 0"):
            InstanceNoise(std, images)


@pytest.mark.parametrize("name", ["dcgan", "lsgan", "egan", "ensemble_sgan"])
def test_models_own_one_built_from_their_hyperparameters(name):
    kw = dict(data_dim=2, latent_dim=4, hidden=8)
    if name == "ensemble_sgan":
        kw["n_pairs"] = 2
    model = gan_zoo.get_model(name, instance_noise=0.3, instance_noise_images=600, **kw)
    assert isinstance(model.noise, InstanceNoise)
    assert (model.noise.std, model.noise.images) == (0.3, 600)
    with pytest.raises(ValueError, match="instance_noise and instance_noise_images must be >= 0"):
        gan_zoo.get_model(name, instance_noise=-1.0, **kw)
