"""Turn a chunk of spool files into columns: what ingest's worker processes do.

Only the standard library, numpy, lblog and (when installed) orjson are imported here, so
a worker starts fast and ships plain numpy arrays (cheap to pickle) back to the parent,
never DataFrames. orjson decodes a spool file in about a third of the standard json's
time, half of a worker's work; what it refuses (NaN, integers beyond 64 bits, bad UTF-8)
goes to lblog's decoder, so files load or fail exactly as they would without it. Rows are
transposed with ``zip(*rows)`` per group of files sharing one column layout; each column is
type-checked as a whole (``set(map(type, column))``) and converted in one numpy call. A file
with a bad value is found by retrying its group file by file, and reported with its reason:
nothing is dropped silently.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from lblog import spool as spoolfmt
from lblog.errors import LbvmError, ParseError

try:
    import orjson
except ImportError:  # pragma: no cover - the standard json decoder does the same, slower
    orjson = None  # type: ignore[assignment]

INT_COLUMNS = (
    "cpu_raw",
    "mem_bytes",
    "mem_limit_bytes",
    "swap_bytes",
    "disk_bytes",
    "disk_limit_bytes",
    "failcnt",
)
NODE_INT = ("cpus", "cpu_busy_raw", "cpu_idle_raw", "mem_total_bytes", "mem_available_bytes")
NODE_FLOAT = ("load1", "load5", "load15")
NODE_OPTIONAL = ("disk_total_bytes", "disk_free_bytes")
_INT64_MAX = 2**63 - 1
_INTS = {int, type(None)}
_NUMS = {int, float, type(None)}


@dataclass(frozen=True)
class Column:
    """A nullable column: values (0 / NaN where unknown) and the mask of known values."""

    values: np.ndarray
    known: np.ndarray


@dataclass(frozen=True)
class Parsed:
    """A chunk of files as columns. ``ok`` and ``bad`` hold positions in the chunk given
    to ``parse_files``; every per-file array is aligned with ``ok``, every per-row array
    with the concatenated rows of the ``ok`` files (``counts`` rows each)."""

    ok: np.ndarray  # int64 positions of the files that parsed
    bad: tuple[tuple[int, str], ...]  # (position, reason) of files to quarantine
    vanished: tuple[int, ...]  # positions of files gone before they were read
    node: tuple[str, ...]
    time: np.ndarray  # float64: the node's clock at collection
    written: np.ndarray  # float64: the node's clock at writing (NaN: not in the file)
    mtime: np.ndarray  # float64: the file's mtime, by the shared storage's clock
    cpu_hz: np.ndarray
    jiffies_hz: np.ndarray
    counts: np.ndarray  # VE rows per file
    totals: dict[str, Column]  # node totals, one value per file
    ve: list[str]
    uptime: Column
    ints: dict[str, Column]
    ha: tuple[tuple[int, dict[str, Any]], ...] = field(default=())  # (position, doc with ha)

    @property
    def rows(self) -> int:
        return len(self.ve)


def _bad(path: str, message: str) -> ParseError:
    return ParseError(path, 1, message)


def _is_int(v: object) -> bool:
    return type(v) is int and abs(v) <= _INT64_MAX


def _is_num(v: object) -> bool:
    return (type(v) is float and math.isfinite(v)) or _is_int(v)


def check_header(doc: dict[str, Any], node: str, path: str) -> None:
    """The per-file checks lblog.spool.decode leaves to the reader (cheap: once per file)."""
    if doc["node"] != node:
        raise _bad(path, f"key 'node' is {doc['node']!r} but the file is in incoming/{node}/")
    if not _is_num(doc["time"]) or doc["time"] <= 0:
        raise _bad(path, "key 'time' is not a positive number")
    written = doc.get("written")
    if written is not None and (not _is_num(written) or written <= 0):
        raise _bad(path, "key 'written' is not a positive number")
    for key in ("cpu_hz", "jiffies_hz"):
        if not _is_int(doc[key]) or doc[key] <= 0:
            raise _bad(path, f"key {key!r} is not a positive integer")
    totals = doc["totals"]
    for key in NODE_INT:
        if not _is_int(totals.get(key)):
            raise _bad(path, f"key 'totals.{key}' missing or not an integer")
    for key in NODE_FLOAT:
        if not _is_num(totals.get(key)):
            raise _bad(path, f"key 'totals.{key}' missing or not a number")
    for key in NODE_OPTIONAL:
        if totals.get(key) is not None and not _is_int(totals[key]):
            raise _bad(path, f"key 'totals.{key}' is not an integer")


def read_file(node: str, path: str) -> tuple[dict[str, Any], float]:
    """Read, decode and check one file without following symlinks: (document, mtime).

    Raises LbvmError for bad content, OSError (FileNotFoundError included) for I/O."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        mtime = os.fstat(fh.fileno()).st_mtime
        data = fh.read()
    doc = decode(data, path)
    check_header(doc, node, path)
    return doc, mtime


def decode(data: bytes, path: str) -> dict[str, Any]:
    """lblog.spool.decode, with orjson when installed (see the module docstring)."""
    if orjson is None:
        return spoolfmt.decode(data, path)
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return spoolfmt.decode(data, path)
    return spoolfmt.check(doc, path)


def int_column(values: tuple[Any, ...] | list[Any]) -> Column:
    """Integers or None -> int64 values and a known mask; TypeError/OverflowError if not."""
    n = len(values)
    kinds = set(map(type, values))
    if not kinds <= _INTS:
        wrong = sorted(k.__name__ for k in kinds - _INTS)
        raise TypeError(f"expected integers, found {', '.join(wrong)}")
    if type(None) not in kinds:
        return Column(np.array(values, dtype=np.int64), np.ones(n, dtype=bool))
    arr = np.array(values, dtype=object)
    known = arr != None  # noqa: E711 (elementwise on an object array)
    arr[~known] = 0
    return Column(arr.astype(np.int64), known.astype(bool))


def float_column(values: tuple[Any, ...] | list[Any]) -> Column:
    """Finite numbers or None -> float64 values (NaN unknown) and a known mask."""
    kinds = set(map(type, values))
    if not kinds <= _NUMS:
        wrong = sorted(k.__name__ for k in kinds - _NUMS)
        raise TypeError(f"expected numbers, found {', '.join(wrong)}")
    if type(None) in kinds:
        arr = np.array(values, dtype=object)
        known = (arr != None).astype(bool)  # noqa: E711
        arr[~known] = np.nan
        out = arr.astype(np.float64)
    else:
        out = np.array(values, dtype=np.float64)
        known = np.ones(len(out), dtype=bool)
    if not np.isfinite(out[known]).all():
        raise ValueError("a number is not finite")
    return Column(out, known)


def _group(docs: list[dict[str, Any]]) -> tuple[list[str], Column, dict[str, Column]]:
    """VE columns of files sharing one column layout (raises on a bad value)."""
    columns = docs[0]["columns"]
    width = len(columns)
    # All values end to end; decode checked every row's width, so column j is a slice.
    flat = list(chain.from_iterable(chain.from_iterable(d["rows"] for d in docs)))
    n = len(flat) // width
    by_name = {name: flat[j::width] for j, name in enumerate(columns)}
    ve = by_name["ve"]
    if set(map(type, ve)) - {str} or (n and not all(ve)):
        raise ValueError("a row's 've' is empty or not a string")
    missing: list[None] = [None] * n
    name = "uptime"
    try:
        uptime = float_column(by_name.get(name, missing))
        ints = {}
        for name in INT_COLUMNS:
            ints[name] = int_column(by_name.get(name, missing))
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"column {name!r}: {exc}") from None
    return ve, uptime, ints


def _concat(parts: list[Column]) -> Column:
    return Column(
        np.concatenate([p.values for p in parts]), np.concatenate([p.known for p in parts])
    )


def parse_files(chunk: list[tuple[str, str]]) -> Parsed:
    """Parse ``chunk`` of (node, path); see Parsed. Runs in a worker process."""
    docs: list[dict[str, Any]] = []
    mtimes: list[float] = []
    pos: list[int] = []
    bad: list[tuple[int, str]] = []
    vanished: list[int] = []
    for i, (node, path) in enumerate(chunk):
        try:
            doc, mtime = read_file(node, path)
        except FileNotFoundError:
            vanished.append(i)
            continue
        except LbvmError as error:
            bad.append((i, str(error)))
            continue
        except OSError as error:
            bad.append((i, f"{path}: cannot read ({error.strerror or error})"))
            continue
        docs.append(doc)
        mtimes.append(mtime)
        pos.append(i)
    groups: dict[tuple[str, ...], list[int]] = {}
    for j, d in enumerate(docs):
        groups.setdefault(tuple(d["columns"]), []).append(j)
    keep: list[int] = []  # indices into docs, in output order
    ves: list[str] = []
    uptimes: list[Column] = []
    ints: dict[str, list[Column]] = {k: [] for k in INT_COLUMNS}
    for members in groups.values():
        try:
            parts = [(members, _group([docs[j] for j in members]))]
        except (TypeError, ValueError, OverflowError):
            parts = []
            for j in members:  # slow path, only when a value is bad: find the culprit files
                try:
                    parts.append(([j], _group([docs[j]])))
                except (TypeError, ValueError, OverflowError) as exc:
                    why = f"a VE row has a value of the wrong type ({exc})"
                    bad.append((pos[j], f"{chunk[pos[j]][1]}: {why}"))
        for js, (ve, up, cols) in parts:
            keep += js
            ves += ve
            uptimes.append(up)
            for k in INT_COLUMNS:
                ints[k].append(cols[k])
    ok = [docs[j] for j in keep]
    if not uptimes:
        empty = Column(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
        uptimes = [Column(np.zeros(0), np.zeros(0, dtype=bool))]
        ints = {k: [empty] for k in INT_COLUMNS}
    totals: dict[str, Column] = {}
    for key in (*NODE_INT, *NODE_OPTIONAL):
        totals[key] = int_column([d["totals"].get(key) for d in ok])
    for key in NODE_FLOAT:
        totals[key] = float_column([d["totals"][key] for d in ok])
    return Parsed(
        ok=np.array([pos[j] for j in keep], dtype=np.int64),
        bad=tuple(sorted(bad)),
        vanished=tuple(vanished),
        node=tuple(d["node"] for d in ok),
        time=np.array([float(d["time"]) for d in ok], dtype=np.float64),
        written=np.array([float(d.get("written") or np.nan) for d in ok], dtype=np.float64),
        mtime=np.array([mtimes[j] for j in keep], dtype=np.float64),
        cpu_hz=np.array([d["cpu_hz"] for d in ok], dtype=np.int64),
        jiffies_hz=np.array([d["jiffies_hz"] for d in ok], dtype=np.int64),
        counts=np.array([len(d["rows"]) for d in ok], dtype=np.int64),
        totals=totals,
        ve=ves,
        uptime=_concat(uptimes),
        ints={k: _concat(v) for k, v in ints.items()},
        ha=tuple(
            (pos[j], {"node": docs[j]["node"], "time": docs[j]["time"], "ha": docs[j]["ha"]})
            for j in keep
            if "ha" in docs[j]
        ),
    )


def merge(parts: list[Parsed], sizes: list[int]) -> Parsed:
    """One Parsed of consecutive chunks (``sizes`` files each), positions shifted."""
    if len(parts) == 1:
        return parts[0]
    shift = np.concatenate(([0], np.cumsum(sizes)[:-1])).tolist()
    return Parsed(
        ok=np.concatenate([p.ok + s for p, s in zip(parts, shift, strict=True)]),
        bad=tuple((i + s, why) for p, s in zip(parts, shift, strict=True) for i, why in p.bad),
        vanished=tuple(i + s for p, s in zip(parts, shift, strict=True) for i in p.vanished),
        node=tuple(chain.from_iterable(p.node for p in parts)),
        time=np.concatenate([p.time for p in parts]),
        written=np.concatenate([p.written for p in parts]),
        mtime=np.concatenate([p.mtime for p in parts]),
        cpu_hz=np.concatenate([p.cpu_hz for p in parts]),
        jiffies_hz=np.concatenate([p.jiffies_hz for p in parts]),
        counts=np.concatenate([p.counts for p in parts]),
        totals={k: _concat([p.totals[k] for p in parts]) for k in parts[0].totals},
        ve=list(chain.from_iterable(p.ve for p in parts)),
        uptime=_concat([p.uptime for p in parts]),
        ints={k: _concat([p.ints[k] for p in parts]) for k in INT_COLUMNS},
        ha=tuple((i + s, doc) for p, s in zip(parts, shift, strict=True) for i, doc in p.ha),
    )
