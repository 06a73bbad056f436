"""gan_zoo: generative adversarial networks as PyTorch Lightning modules.

Public API::

    gan_zoo.list_models()                 # registered model names
    gan_zoo.get_model("dcgan", **hparams)  # a LightningModule ready to fit
    gan_zoo.list_pretrained()             # the zoo: pretrained entries (and the metric extractors)
    gan_zoo.load_pretrained("dcgan.fmnist32").sample(64, seed=0)
"""

import ctypes as _ctypes
import os as _os
from pathlib import Path as _Path

if not (_Path(__file__).parent / "datamodules").is_dir():
    # A source checkout: the data modules live in the repository's top-level datamodules/ folder, which the wheel
    # installs as gan_zoo/datamodules (pyproject.toml); make them gan_zoo.datamodules here too.
    __path__.append(str(_Path(__file__).resolve().parent.parent))  # noqa: F821  (a package's __path__)

import gan_zoo.strategies  # noqa: F401  (registers the "gan_ddp" strategy with Lightning)


def _drop_futile_nvml_check() -> None:
    """Unset ``PYTORCH_NVML_BASED_CUDA_CHECK`` where NVML cannot be loaded.

    Importing Lightning sets it to 1, so that asking whether CUDA is available does not initialise CUDA (a process
    that has initialised CUDA cannot fork workers that use it). Until CUDA is initialised, torch then loads NVML
    (``libnvidia-ml.so.1``) on every ``torch.cuda.is_available()``, and ``torch.optim.Adam.step`` asks that at every
    step. Where the NVIDIA driver is absent the load fails each time (about 0.2 ms a step on the dev VM, 45 % of a
    fused Adam step on a toy MLP, BENCHMARKS.md) and torch falls back to the CUDA runtime's count, which is what it
    asks without the flag: the answer is the same, without the failed load. Where NVML loads, the flag stays."""
    if _os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK") != "1":
        return
    try:
        _ctypes.CDLL("libnvidia-ml.so.1")  # the library torch.cuda loads for the check
    except OSError:
        del _os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"]


_drop_futile_nvml_check()
from gan_zoo.pretrained import list_pretrained, load_pretrained
from gan_zoo.models import get_model, list_models

__all__ = ["list_models", "get_model", "list_pretrained", "load_pretrained"]
__version__ = "0.1.0"
