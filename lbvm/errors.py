"""Typed errors of the monitor library; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

from lblog.errors import LbvmError, ParseError, SpoolError

__all__ = [
    "ConfigError",
    "ExecutorError",
    "LbvmError",
    "NotFound",
    "ParseError",
    "PlanRejected",
    "SpoolError",
    "StaleData",
    "StoreError",
]


class ConfigError(LbvmError):
    """The configuration file is missing, malformed or inconsistent."""


class StoreError(LbvmError):
    """The database could not be reached or answered unexpectedly."""


class NotFound(LbvmError):
    """An unknown VE, node or pair was named."""


class StaleData(LbvmError):
    """The samples are too old (or missing) to plan on."""


class PlanRejected(LbvmError):
    """The validator refused a plan or a move; ``reasons`` says why."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


class ExecutorError(LbvmError):
    """A move could not be started (bad id, bad template)."""
