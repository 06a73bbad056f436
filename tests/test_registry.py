import pytest

import gan_zoo
from gan_zoo.registry import UnknownNameError, register_model


def test_list_models_has_the_foundation_models():
    names = gan_zoo.list_models()
    assert {"dcgan", "lsgan"} <= set(names)
    assert names == sorted(names)
    assert gan_zoo.list_models(include="*gan", exclude="ls*") == [n for n in names if n.endswith("gan")
                                                                   and not n.startswith("ls")]


def test_get_model_is_case_insensitive_and_passes_hparams():
    m = gan_zoo.get_model("DCGAN", resolution=28, latent_dim=16)
    assert type(m).__name__ == "DCGAN" and m.hparams.latent_dim == 16 and m.hparams.resolution == 28


def test_unknown_model_lists_valid_names():
    with pytest.raises(UnknownNameError) as e:
        gan_zoo.get_model("stylegan9")
    msg = str(e.value)
    assert "stylegan9" in msg and all(n in msg for n in gan_zoo.list_models())


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        register_model("DCGAN")(type("Other", (), {}))
