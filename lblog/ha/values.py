"""Numbers inside DRBD status text, checked the same way for DRBD 8 and 9."""

from __future__ import annotations

from lblog.errors import ParseError


def whole(value: str, path: str, line: int | None, key: str) -> int:
    """``key:value`` as a non-negative integer, else ParseError naming file, line and key."""
    if not (value.isascii() and value.isdigit()):
        raise ParseError(path, line, f"{key}:{value[:40]} is not a whole number")
    return int(value)


def percent(value: str, path: str, line: int | None, key: str = "done") -> float:
    """A resync progress in 0..100, else ParseError naming file, line and key."""
    try:
        pct = float(value)
    except ValueError:
        raise ParseError(path, line, f"{key}:{value[:40]} is not a percentage") from None
    if not 0.0 <= pct <= 100.0:
        raise ParseError(path, line, f"{key}:{value[:40]} is outside 0..100")
    return pct
