import pytest
import torch

from gan_zoo.networks import DCGANDiscriminator, DCGANGenerator
from gan_zoo.networks.blocks import base_resolution


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", [16, 28, 32, 64, 128])
@pytest.mark.parametrize("upsample", ["deconv", "nearest"])
def test_dcgan_shapes(channels, resolution, upsample):
    g = DCGANGenerator(latent_dim=8, channels=channels, resolution=resolution, ngf=4, upsample=upsample)
    d = DCGANDiscriminator(channels=channels, resolution=resolution, ndf=4, minibatch_kernels=3)
    x = g(torch.randn(2, 8))
    assert x.shape == (2, channels, resolution, resolution)
    assert x.min() >= -1 and x.max() <= 1
    assert d(x).shape == (2,)


def test_base_resolution_and_bad_resolution():
    assert base_resolution(28) == (7, 2)
    assert base_resolution(32) == (4, 3)
    assert base_resolution(1024) == (4, 8)
    for bad in (30, 8 * 9, 3, 4):
        with pytest.raises(ValueError, match="not supported"):
            base_resolution(bad)


def test_canonical_dcgan_64_parameter_count():
    # The reference DCGAN (nz 100, ngf = ndf = 64, 64x64 RGB): G 3,576,704 params, D 2,765,568.
    g = DCGANGenerator(100, 3, 64, 64)
    d = DCGANDiscriminator(3, 64, 64)
    assert sum(p.numel() for p in g.parameters()) == 3_576_704
    assert sum(p.numel() for p in d.parameters()) == 2_765_568


def test_dcgan_init_statistics():
    torch.manual_seed(0)
    g = DCGANGenerator(100, 3, 64, 64)
    w = g.net[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002
    bn = g.net[1]
    assert abs(bn.weight.mean().item() - 1.0) < 0.01
