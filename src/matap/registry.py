"""Registries: every cell, encoder, decoder, predictor, objective, objective term, evaluation protocol
and experiment is a name in one of them,
given where the part is defined (a decorator beside it), and nowhere else.

A registry imports the modules that define its parts the first time it is asked for a name
(``providers``: modules, or packages whose every module it imports), so a part in a new file
of such a package needs no other edit. This module imports no model code: the config asks it
whether a name exists. A registry is also a container of its names, so that it can serve as
the ``choices`` of a command-line option without being filled before that option is used."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable, Iterator

from matap.errors import MatapError


class Registry:
    """Names of one kind of part, each with the object that builds or describes it."""

    def __init__(self, kind: str, providers: tuple[str, ...]) -> None:
        self.kind = kind
        self.providers = providers
        self._entries: dict[str, Any] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator: register the decorated class or function under ``name``."""

        def wrap(obj: Any) -> Any:
            self._entries[name] = obj
            return obj

        return wrap

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for provider in self.providers:
            module = importlib.import_module(provider)
            for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
                importlib.import_module(f"{provider}.{info.name}")

    def names(self) -> list[str]:
        """Every registered name, in the order of registration."""
        self._load()
        return list(self._entries)

    def describe(self, name: str) -> str:
        """What the entry does, in a line: its ``scores`` attribute, else the first line of its docstring."""
        entry = self.get(name)
        return getattr(entry, "scores", None) or (entry.__doc__ or "").strip().split("\n")[0]

    def get(self, name: str) -> Any:
        if name not in self:
            raise MatapError(f"unknown {self.kind} {name!r} (known: {', '.join(self.names())})")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


CELLS = Registry("model", ("matap.modules",))
ENCODERS = Registry("encoder", ("matap.modules",))
DECODERS = Registry("decoder", ("matap.modules",))
PREDICTORS = Registry("predictor", ("matap.modules",))
OBJECTIVES = Registry("objective", ("matap.objectives",))
TERMS = Registry("objective term", ("matap.objectives",))
PROTOCOLS = Registry("protocol", ("matap.evaluation",))
EXPERIMENTS = Registry("experiment", ("matap.experiments",))


def register_cell(name: str) -> Callable[[Any], Any]:
    """Register a cell class (or a function that returns a cell) as model ``name``. It is called
    with the keywords of its signature that the model config holds: the keys of ``ModelConfig``
    it names, and its own options, the keywords with defaults that ``ModelConfig`` does not have
    (set as ``model.<option>=value``)."""
    return CELLS.register(name)


def register_part(registry: Registry, name: str) -> Callable[[Any], Any]:
    """Register an encoder, decoder or predictor class under ``name`` in ``registry``; like a cell, it is
    built with the keywords of its signature that the model config holds (its own options included)."""
    return registry.register(name)


def register_term(name: str) -> Callable[[Any], Any]:
    """Register an objective term: a function of one training pass (:class:`matap.objectives.Pass`) that
    returns a scalar tensor. The ``predict`` objective adds it, times ``objective.<name>_weight``, to
    its loss wherever that weight is above 0 (a term's weight without a key of its own is set as
    ``objective.<name>_weight=w`` all the same)."""
    return TERMS.register(name)


__all__ = ["CELLS", "DECODERS", "ENCODERS", "EXPERIMENTS", "OBJECTIVES", "PREDICTORS", "PROTOCOLS", "Registry",
           "TERMS", "register_cell", "register_part", "register_term"]
