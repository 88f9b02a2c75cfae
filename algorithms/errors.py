"""Errors raised by the algorithm registry.

``algorithms`` may not import ``lbvm``, so these subclass plain exceptions; the CLI maps
them to its own messages and exit codes.
"""

from __future__ import annotations


class AlgorithmError(Exception):
    """Root of the registry's errors."""


class UnknownAlgorithm(AlgorithmError, LookupError):
    """No algorithm of that name is registered; the message lists the ones that are."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        names = ", ".join(available) if available else "none"
        super().__init__(f"unknown algorithm {name!r} (available: {names})")


class BadAlgorithm(AlgorithmError, TypeError):
    """A registered entry point could not be loaded or does not name a valid algorithm."""

    def __init__(self, name: str, target: str, problem: str) -> None:
        self.name = name
        self.target = target
        super().__init__(f"algorithm {name!r} ({target}): {problem}")
