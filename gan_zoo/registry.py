"""Model registry: names map to LightningModule classes.

Names are case-insensitive (stored lower-case); registering a name twice raises so two models can never shadow
each other silently.
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

_MODELS: dict[str, type] = {}


class UnknownNameError(KeyError):
    """An unknown model or data set name. The message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable on one line
        return str(self.args[0]) if self.args else ""


def register_model(name: str | None = None) -> Callable[[T], T]:
    """Class decorator that registers a GAN under ``name`` (default: the class name, lower-cased)."""

    def wrap(cls: T) -> T:
        key = (name or cls.__name__).lower()
        if key in _MODELS:
            raise ValueError(f"model name {key!r} is already registered by {_MODELS[key].__module__}")
        _MODELS[key] = cls
        cls.model_name = key
        return cls

    return wrap


def _ensure_loaded() -> None:
    # Importing the models package runs every @register_model decorator.
    import gan_zoo.models  # noqa: F401


def list_models(include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by fnmatch patterns."""
    _ensure_loaded()
    names = sorted(_MODELS)
    if include is not None:
        pats = [include] if isinstance(include, str) else list(include)
        names = [n for n in names if any(fnmatch.fnmatch(n, p.lower()) for p in pats)]
    if exclude is not None:
        pats = [exclude] if isinstance(exclude, str) else list(exclude)
        names = [n for n in names if not any(fnmatch.fnmatch(n, p.lower()) for p in pats)]
    return names


def get_model_class(name: str) -> type:
    """The registered class for ``name`` (case-insensitive); an unknown name lists the valid ones."""
    _ensure_loaded()
    key = str(name).lower()
    if key not in _MODELS:
        raise UnknownNameError(f"unknown model {name!r}; valid models: {', '.join(sorted(_MODELS))}")
    return _MODELS[key]


def get_model(name: str, **hparams):
    """Build the model registered as ``name`` with the given hyperparameters."""
    return get_model_class(name)(**hparams)
