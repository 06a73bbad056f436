"""``--compile``: the trained networks compiled in place train the same weights and keep checkpoints unchanged."""

import pytest
import torch

from tests.helpers import tiny_trainer
from tests.test_all_models import TINY, build, tiny_loader

K = 3  # training batches


def _train(name: str, backend: str | None) -> dict[str, torch.Tensor]:
    torch._dynamo.reset()
    model = build(name)
    if backend:
        compiled = model.compile_networks(backend)
        assert compiled == [k for k in model.trained_networks() if k not in model.compile_skip]
    torch.manual_seed(1)
    tiny_trainer(K).fit(model, tiny_loader())
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", sorted(TINY))
def test_compiled_networks_train_the_same_weights(name):
    # the "eager" backend traces every network with TorchDynamo and runs the captured graphs op by op: the same
    # arithmetic in the same order, so the weights must match bitwise; the state dict keeps its keys (no _orig_mod)
    eager = _train(name, None)
    compiled = _train(name, "eager")
    assert compiled.keys() == eager.keys()
    assert not any("_orig_mod" in k for k in compiled)
    for k in eager:
        assert torch.equal(compiled[k], eager[k]), k


def test_trained_networks_cover_every_trained_parameter():
    # compiling misses no network: every parameter that trains belongs to one of trained_networks()
    for name in sorted(TINY):
        model = build(name)
        covered = {id(p) for net in model.trained_networks().values() for p in net.parameters()}
        trained = {n for n, p in model.named_parameters() if p.requires_grad and id(p) not in covered}
        assert not trained, (name, sorted(trained)[:5])


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown torch.compile backend 'nope'; valid: .*inductor"):
        build("dcgan").compile_networks("nope")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dcgan", "pggan"])
def test_inductor_compiled_networks_train_close_to_eager(name):
    # the real compiler (C++ kernels on the CPU): fused kernels sum in another order, so close, not bitwise.
    # PGGAN: its generator compiled, its critic (double backward in the gradient penalty) left eager
    eager = _train(name, None)
    compiled = _train(name, "inductor")
    for k in eager:
        torch.testing.assert_close(compiled[k], eager[k], rtol=1e-5, atol=1e-6, msg=k)
