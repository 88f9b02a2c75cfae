"""Strict parsers for cgroup v1 and v2 interface files (text in, typed values out).

Every parser takes the file's text and its path, and either returns values or raises
``ParseError(path, line, message)``; nothing is guessed. Numbers must be plain ASCII
decimals that fit in 64 bits, the way the kernel prints them. No I/O happens here: the
caller reads the file (see ``lblog.cgroup``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from lblog.errors import ParseError

U64_MAX = 2**64 - 1
_UINT = re.compile(r"[0-9]{1,20}")
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,9})?")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_DEVICE = re.compile(r"[0-9]{1,10}:[0-9]{1,10}")
_BLKIO_OPS = ("Read", "Write", "Sync", "Async", "Discard", "Total")
_IO_KEYS = ("rbytes", "wbytes", "rios", "wios", "dbytes", "dios")


@dataclass(frozen=True)
class IoCounters:
    """Cumulative block I/O of a cgroup, summed over devices (bytes; ios None in v1)."""

    read_bytes: int
    write_bytes: int
    discard_bytes: int
    total_bytes: int
    read_ios: int | None = None
    write_ios: int | None = None


@dataclass(frozen=True)
class PressureLine:
    """One PSI line: share of wall time stalled (percent) over 10/60/300 s, total usec."""

    avg10: float
    avg60: float
    avg300: float
    total_usec: int


@dataclass(frozen=True)
class Pressure:
    """A ``*.pressure`` file: ``some`` always, ``full`` where the kernel prints it."""

    some: PressureLine
    full: PressureLine | None


def decode(data: bytes, path: str) -> str:
    """Kernel interface files are ASCII; anything else is garbage, reported by line."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(path, line, "not ASCII text") from None


def _lines(text: str, path: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, line); one final newline is allowed, blank lines are not."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise ParseError(path, number, "blank line")
        yield number, line


def uint(token: str, path: str, line: int, what: str) -> int:
    """A non-negative decimal that fits in 64 bits, else ParseError naming ``what``."""
    if not _UINT.fullmatch(token) or int(token) > U64_MAX:
        raise ParseError(path, line, f"{what}: expected an unsigned integer, got {token!r}")
    return int(token)


def _decimal(token: str, path: str, line: int, what: str) -> float:
    if not _DECIMAL.fullmatch(token):
        raise ParseError(path, line, f"{what}: expected a decimal number, got {token!r}")
    return float(token)


def single_int(text: str, path: str) -> int:
    """A file holding one unsigned integer (``memory.current``, ``cpuacct.usage``, ...)."""
    return uint(_single_token(text, path), path, 1, "value")


def int_or_max(text: str, path: str) -> int | None:
    """``memory.max`` and the like: an integer, or the word ``max`` (returned as None)."""
    token = _single_token(text, path)
    return None if token == "max" else uint(token, path, 1, "value")


def _single_token(text: str, path: str) -> str:
    lines = list(_lines(text, path))
    if not lines:
        raise ParseError(path, 1, "empty file, expected one value")
    if len(lines) > 1:
        raise ParseError(path, lines[1][0], "expected one value, found more lines")
    return lines[0][1].strip()


def cpu_max(text: str, path: str) -> float | None:
    """cgroup v2 ``cpu.max`` (``$MAX $PERIOD``) as a limit in cores; None for ``max``."""
    fields = _single_token(text, path).split()
    if len(fields) != 2:
        raise ParseError(path, 1, f"expected '$MAX $PERIOD', got {' '.join(fields)!r}")
    period = uint(fields[1], path, 1, "period")
    if period == 0:
        raise ParseError(path, 1, "period is 0")
    return None if fields[0] == "max" else uint(fields[0], path, 1, "max") / period


def flat_keyed(text: str, path: str) -> dict[str, int]:
    """``key value`` per line (``cpu.stat``, ``memory.stat``, ``memory.events``)."""
    values: dict[str, int] = {}
    for number, line in _lines(text, path):
        fields = line.split()
        if len(fields) != 2 or not _KEY.fullmatch(fields[0]):
            raise ParseError(path, number, f"expected 'key value', got {line!r}")
        key, token = fields
        if key in values:
            raise ParseError(path, number, f"key {key!r} repeated")
        values[key] = uint(token, path, number, key)
    return values


def io_stat(text: str, path: str) -> IoCounters:
    """cgroup v2 ``io.stat``: ``MAJ:MIN key=value ...`` per device, summed over devices.

    Keys other than the six byte/io counters (e.g. ``cost.*`` from io.cost) are checked
    for form and ignored.
    """
    sums = dict.fromkeys(_IO_KEYS, 0)
    devices: set[str] = set()
    for number, line in _lines(text, path):
        device, *pairs = line.split()
        if not _DEVICE.fullmatch(device):
            raise ParseError(path, number, f"expected a MAJ:MIN device, got {device!r}")
        if device in devices:
            raise ParseError(path, number, f"device {device} repeated")
        devices.add(device)
        if not pairs:
            raise ParseError(path, number, f"device {device} has no counters")
        seen: set[str] = set()
        for pair in pairs:
            key, sep, token = pair.partition("=")
            if not sep or not _KEY.fullmatch(key) or key in seen:
                raise ParseError(path, number, f"expected a new 'key=value', got {pair!r}")
            seen.add(key)
            if key in sums:
                sums[key] += uint(token, path, number, key)
            else:
                _decimal(token, path, number, key)
    return IoCounters(
        read_bytes=sums["rbytes"],
        write_bytes=sums["wbytes"],
        discard_bytes=sums["dbytes"],
        total_bytes=sums["rbytes"] + sums["wbytes"] + sums["dbytes"],
        read_ios=sums["rios"],
        write_ios=sums["wios"],
    )


def blkio_bytes(text: str, path: str) -> IoCounters:
    """cgroup v1 ``blkio.throttle.io_service_bytes[_recursive]``, summed over devices.

    Lines are ``MAJ:MIN Op bytes`` for Op in Read/Write/Sync/Async/Discard/Total, then one
    grand ``Total bytes`` line; ``total_bytes`` is the sum of the per-device Total lines.
    """
    sums = dict.fromkeys(_BLKIO_OPS, 0)
    seen: set[tuple[str, str]] = set()
    for number, line in _lines(text, path):
        fields = line.split()
        if len(fields) == 2 and fields[0] == "Total":
            uint(fields[1], path, number, "Total")
            continue
        if len(fields) != 3 or not _DEVICE.fullmatch(fields[0]) or fields[1] not in sums:
            raise ParseError(path, number, f"expected 'MAJ:MIN Op bytes', got {line!r}")
        device, op, token = fields
        if (device, op) in seen:
            raise ParseError(path, number, f"{device} {op} repeated")
        seen.add((device, op))
        sums[op] += uint(token, path, number, op)
    return IoCounters(
        read_bytes=sums["Read"],
        write_bytes=sums["Write"],
        discard_bytes=sums["Discard"],
        total_bytes=sums["Total"],
    )


def pressure(text: str, path: str) -> Pressure:
    """A PSI file (``cpu.pressure``, ``memory.pressure``, ``io.pressure``)."""
    parsed: dict[str, PressureLine] = {}
    for number, line in _lines(text, path):
        kind, *pairs = line.split()
        if kind not in ("some", "full") or kind in parsed:
            raise ParseError(path, number, f"expected a new 'some' or 'full' line, got {kind!r}")
        values: dict[str, str] = {}
        for pair in pairs:
            key, sep, token = pair.partition("=")
            if not sep or key in values:
                raise ParseError(path, number, f"expected a new 'key=value', got {pair!r}")
            values[key] = token
        if sorted(values) != ["avg10", "avg300", "avg60", "total"]:
            raise ParseError(path, number, "expected avg10, avg60, avg300 and total")
        parsed[kind] = PressureLine(
            avg10=_decimal(values["avg10"], path, number, "avg10"),
            avg60=_decimal(values["avg60"], path, number, "avg60"),
            avg300=_decimal(values["avg300"], path, number, "avg300"),
            total_usec=uint(values["total"], path, number, "total"),
        )
    if "some" not in parsed:
        raise ParseError(path, None, "no 'some' line")
    return Pressure(some=parsed["some"], full=parsed.get("full"))
