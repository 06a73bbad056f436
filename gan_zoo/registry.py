"""Registries: names map to classes (models, data sets).

A ``Registry`` knows only names and classes. Names are case-insensitive (stored lower-case); registering a name twice
raises so two classes can never shadow each other silently; an alias is another name for a registered class, accepted
by ``get`` but never listed. The lookups that need every class registered first (``gan_zoo.models.get_model``,
``gan_zoo.datamodules.get_datamodule``) live in the packages that import them all.
"""

from __future__ import annotations

import fnmatch
from typing import Callable, Iterable, TypeVar

from gan_zoo.errors import UnknownNameError

__all__ = ["MODELS", "Registry", "UnknownNameError", "register_model"]

T = TypeVar("T")


class Registry:
    """Classes by name.

    Args:
        kind: what the classes are, for messages ("model", "data set").
        attribute: the class attribute that receives its registered name (``model_name``, ``name``).
    """

    def __init__(self, kind: str, attribute: str):
        self.kind, self.attribute = kind, attribute
        self._classes: dict[str, type] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str | None = None, aliases: Iterable[str] = ()) -> Callable[[T], T]:
        """Class decorator: register under ``name`` (default: the class name, lower-cased) and ``aliases``."""

        def wrap(cls: T) -> T:
            key = (name or cls.__name__).lower()
            for k in (key, *(a.lower() for a in aliases)):
                if k in self._classes or k in self._aliases:
                    owner = self._classes.get(k) or self._classes[self._aliases[k]]
                    raise ValueError(f"{self.kind} name {k!r} is already registered by {owner.__module__}")
            self._classes[key] = cls
            self._aliases.update({a.lower(): key for a in aliases})
            setattr(cls, self.attribute, key)
            return cls

        return wrap

    def names(self, include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
        """Sorted registered names (aliases excluded), optionally filtered by fnmatch patterns."""
        names = sorted(self._classes)
        if include is not None:
            pats = [include] if isinstance(include, str) else list(include)
            names = [n for n in names if any(fnmatch.fnmatch(n, p.lower()) for p in pats)]
        if exclude is not None:
            pats = [exclude] if isinstance(exclude, str) else list(exclude)
            names = [n for n in names if not any(fnmatch.fnmatch(n, p.lower()) for p in pats)]
        return names

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` or one of its aliases; an unknown name lists the valid ones."""
        key = str(name).lower()
        key = self._aliases.get(key, key)
        if key not in self._classes:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}")
        return key

    def get(self, name: str) -> type:
        """The class registered as ``name`` (or an alias of it)."""
        return self._classes[self.canonical(name)]

    def same(self, name: str, other: str) -> bool:
        """Whether ``name`` and ``other`` are the same registered name, either possibly an alias (a checkpoint that
        records a model's old name is that model's); False where either is unknown."""
        if name == other:
            return True
        try:
            return self.canonical(name) == self.canonical(other)
        except UnknownNameError:
            return False


MODELS = Registry("model", "model_name")
register_model = MODELS.register
