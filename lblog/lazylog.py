"""Loggers that import ``logging`` only when something is logged.

A normal agent run logs nothing, and importing ``logging`` (which pulls in traceback,
threading and string) costs several milliseconds of a run measured in tens. Modules write
``log = get_logger(__name__)`` and use it like any ``logging.Logger``; an entry point that
wants handlers registers a ``setup`` function, called once, just before the first record.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import logging
    from collections.abc import Callable
    from typing import Any

_setup: list[Callable[[], None]] = []


def on_first_use(setup: Callable[[], None] | None) -> None:
    """Call ``setup`` before the next record is logged (None: forget a pending one)."""
    _setup.clear()
    if setup is not None:
        _setup.append(setup)


class _LazyLogger:
    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> Any:
        import logging

        while _setup:
            _setup.pop()()
        return getattr(logging.getLogger(self.name), attr)


def get_logger(name: str) -> logging.Logger:
    """A stand-in for ``logging.getLogger(name)`` that defers the import."""
    logger: logging.Logger = _LazyLogger(name)  # type: ignore[assignment]
    return logger
