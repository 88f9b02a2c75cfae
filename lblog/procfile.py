"""Small helpers shared by the /proc parsers: reading a file as text, strict integers.

Parsers number lines by ``\\n`` only (what an editor shows), so a ParseError's line is the
line an operator finds when opening the file.
"""

from __future__ import annotations

import os

from lblog.errors import ParseError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from os import PathLike

    StrPath = str | PathLike[str]


def read_text(path: StrPath) -> str | None:
    """The file's text, or None when it does not exist (a VE or module that went away).

    Other OSErrors (permissions, I/O) propagate: they are not "absent", they are a fault.
    Bytes that are not UTF-8 raise ParseError naming the file.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ParseError(os.fspath(path), line, "not UTF-8 text") from None


def uint(token: str, path: str, line: int, what: str) -> int:
    """``token`` as a non-negative integer, else ParseError naming ``what``."""
    try:
        value = int(token)
    except ValueError:
        raise ParseError(path, line, f"{what}: {token[:40]!r} is not an integer") from None
    if value < 0:
        raise ParseError(path, line, f"{what}: {value} is negative")
    return value


def uints(tokens: list[str], path: str, line: int, what: str) -> tuple[int, ...]:
    """All ``tokens`` as non-negative integers (one conversion pass, then one check)."""
    try:
        values = tuple(map(int, tokens))
    except ValueError:
        raise ParseError(path, line, f"{what}: expected integers, got {tokens!r}"[:160]) from None
    if values and min(values) < 0:
        raise ParseError(path, line, f"{what}: negative counter in {tokens!r}"[:160])
    return values
