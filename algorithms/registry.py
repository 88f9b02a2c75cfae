"""Discover placement algorithms through the ``lbvm.algorithms`` entry-point group.

Built-in algorithms are registered the same way as third-party ones (see pyproject.toml),
so a separate package adds one without touching LBVM. Nothing is imported until asked for.
"""

from __future__ import annotations

import inspect
from importlib.metadata import EntryPoint, entry_points
from typing import cast

from algorithms.base import Algorithm
from algorithms.errors import BadAlgorithm, UnknownAlgorithm

GROUP = "lbvm.algorithms"

__all__ = ["GROUP", "available", "describe", "load", "load_class"]


def available() -> dict[str, EntryPoint]:
    """Registered algorithms by name, sorted, not loaded."""
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    return dict(sorted(found.items()))


def load_class(name: str) -> type[Algorithm]:
    """Import the class registered as ``name`` and check it has ``name``, ``summary``, ``plan``."""
    registered = available()
    if name not in registered:
        raise UnknownAlgorithm(name, list(registered))
    ep = registered[name]
    try:
        obj = ep.load()
    except Exception as exc:  # any import-time failure of a plugin is reported by name
        raise BadAlgorithm(name, ep.value, f"cannot be loaded: {exc}") from exc
    if not inspect.isclass(obj):
        raise BadAlgorithm(name, ep.value, f"is a {type(obj).__name__}, not a class")
    for attr in ("name", "summary"):
        if not isinstance(getattr(obj, attr, None), str):
            raise BadAlgorithm(name, ep.value, f"class attribute {attr!r} must be a string")
    if not callable(getattr(obj, "plan", None)):
        raise BadAlgorithm(name, ep.value, "has no plan(problem) method")
    return cast("type[Algorithm]", obj)


def load(name: str) -> Algorithm:
    """An instance of the algorithm registered as ``name``.

    Raises UnknownAlgorithm (listing the available names) or BadAlgorithm.
    """
    cls = load_class(name)
    try:
        return cls()
    except Exception as exc:
        raise BadAlgorithm(name, available()[name].value, f"cannot be created: {exc}") from exc


def describe() -> list[tuple[str, str]]:
    """(name, summary) of every registered algorithm; a broken one says why instead."""
    out = []
    for name in available():
        try:
            summary = load_class(name).summary
        except BadAlgorithm as exc:
            summary = f"unavailable: {exc}"
        out.append((name, summary))
    return out
