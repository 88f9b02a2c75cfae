"""Errors shared by the agent and the monitor (standard library only)."""

from __future__ import annotations


class LbvmError(Exception):
    """Root of every error LBVM raises on purpose; entry points turn it into one clear line."""


class ParseError(LbvmError):
    """A file could not be understood; names the file and, where known, the line."""

    def __init__(self, path: str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.message = message
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class SpoolError(LbvmError):
    """The spool could not be written or read."""
