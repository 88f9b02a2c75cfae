"""Find spool files safely and turn a batch of them into two DataFrames.

Scanning never follows a symlink (a link could point out of the spool); reading opens with
O_NOFOLLOW. Decoding is strict (lblog.spool.decode plus type checks here); a file that fails
is reported with its reason, never silently dropped.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lblog import spool as spoolfmt
from lblog.errors import LbvmError

INT_COLUMNS = (
    "cpu_raw",
    "mem_bytes",
    "mem_limit_bytes",
    "swap_bytes",
    "disk_bytes",
    "disk_limit_bytes",
    "failcnt",
)
VE_FRAME_COLUMNS = ("ve", "node", "ts", "cpu_hz", "uptime", *INT_COLUMNS, "fidx")
NODE_INT = ("cpus", "cpu_busy_raw", "cpu_idle_raw", "mem_total_bytes", "mem_available_bytes")
NODE_FLOAT = ("load1", "load5", "load15")
NODE_OPTIONAL = ("disk_total_bytes", "disk_free_bytes")
NODE_FRAME_COLUMNS = ("node", "ts", "jiffies_hz", *NODE_INT, *NODE_FLOAT, *NODE_OPTIONAL)
_STAMP = re.compile(r"(\d{8}T\d{6}(?:\.\d+)?)Z?\.json$")
_INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class SpoolFile:
    node: str  # the directory under incoming/: the ledger's key with the name
    name: str
    path: Path


@dataclass(frozen=True)
class Scan:
    files: tuple[SpoolFile, ...]
    skipped: tuple[str, ...]  # why each ignored entry was ignored (symlinks, odd names)


def _order(f: SpoolFile) -> tuple[str, str, str]:
    """Collection time first (from the name), so batches go forward in time for all nodes."""
    m = _STAMP.search(f.name)
    return (m.group(1) if m else "", f.node, f.name)


def scan(spool: Path) -> Scan:
    """Every ``incoming/<node>/*.json`` regular file, oldest first; symlinks are skipped."""
    incoming = Path(spool) / "incoming"
    files: list[SpoolFile] = []
    skipped: list[str] = []
    if not incoming.is_dir() or incoming.is_symlink():
        return Scan((), ())
    with os.scandir(incoming) as nodes:
        node_entries = sorted(nodes, key=lambda e: e.name)
    for nd in node_entries:
        if nd.name.startswith("."):
            continue
        if nd.is_symlink():
            skipped.append(f"{nd.path}: symlink ignored (spool folders must be real folders)")
            continue
        if not nd.is_dir(follow_symlinks=False):
            continue
        if not spoolfmt.NODE_NAME.match(nd.name) or ".." in nd.name:
            skipped.append(f"{nd.path}: not a valid node name, folder ignored")
            continue
        with os.scandir(nd.path) as entries:
            for e in entries:
                if e.name.startswith(".") or not e.name.endswith(spoolfmt.SUFFIX):
                    continue
                if e.is_symlink():
                    skipped.append(f"{e.path}: symlink ignored (spool files must be real files)")
                    continue
                if e.is_file(follow_symlinks=False):
                    files.append(SpoolFile(nd.name, e.name, Path(e.path)))
    files.sort(key=_order)
    return Scan(tuple(files), tuple(skipped))


def read(f: SpoolFile) -> dict[str, Any]:
    """Read and check one file; raises LbvmError (bad content) or OSError (I/O)."""
    fd = os.open(f.path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read()
    doc = spoolfmt.decode(data, f.path)
    _check_header(doc, f)
    return doc


def _bad(f: SpoolFile, message: str) -> LbvmError:
    return spoolfmt.ParseError(str(f.path), 1, message)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _INT64_MAX


def _is_num(v: object) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(float(v))  # type: ignore[arg-type]


def _check_header(doc: dict[str, Any], f: SpoolFile) -> None:
    """The per-file checks lblog.spool.decode leaves to the reader (cheap: once per file)."""
    if doc["node"] != f.node:
        raise _bad(f, f"key 'node' is {doc['node']!r} but the file is in incoming/{f.node}/")
    if not _is_num(doc["time"]) or doc["time"] <= 0:
        raise _bad(f, "key 'time' is not a positive number")
    for key in ("cpu_hz", "jiffies_hz"):
        if not _is_int(doc[key]) or doc[key] <= 0:
            raise _bad(f, f"key {key!r} is not a positive integer")
    totals = doc["totals"]
    for key in NODE_INT:
        if not _is_int(totals.get(key)):
            raise _bad(f, f"key 'totals.{key}' missing or not an integer")
    for key in NODE_FLOAT:
        if not _is_num(totals.get(key)):
            raise _bad(f, f"key 'totals.{key}' missing or not a number")
    for key in NODE_OPTIONAL:
        if totals.get(key) is not None and not _is_int(totals[key]):
            raise _bad(f, f"key 'totals.{key}' is not an integer")


def node_frame(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per file: the node totals (checked by read())."""
    totals = (*NODE_INT, *NODE_FLOAT, *NODE_OPTIONAL)
    rows = [
        (d["node"], float(d["time"]), d["jiffies_hz"], *(d["totals"].get(k) for k in totals))
        for d in docs
    ]
    frame = pd.DataFrame(rows, columns=list(NODE_FRAME_COLUMNS))
    for key in (*NODE_INT, *NODE_OPTIONAL):
        frame[key] = pd.array(frame[key].tolist(), dtype="Int64")
    return frame


def _group_frame(docs: list[dict[str, Any]], fidx: list[int]) -> pd.DataFrame:
    """VE rows of files sharing one column layout, as typed columns (raises on bad values)."""
    columns = docs[0]["columns"]
    counts = np.array([len(d["rows"]) for d in docs], dtype=np.int64)
    rows = list(chain.from_iterable(d["rows"] for d in docs))
    values = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    by_name = dict(zip(columns, values, strict=True))
    n = len(rows)
    missing = [None] * n
    out: dict[str, Any] = {
        "ve": pd.array(list(by_name["ve"]), dtype="string"),
        "node": np.repeat(np.array([d["node"] for d in docs], dtype=object), counts),
        "ts": np.repeat(np.array([float(d["time"]) for d in docs]), counts),
        "cpu_hz": np.repeat(np.array([d["cpu_hz"] for d in docs], dtype=np.int64), counts),
        "uptime": pd.array(list(by_name.get("uptime", missing)), dtype="Float64"),
    }
    for key in INT_COLUMNS:
        out[key] = pd.array(list(by_name.get(key, missing)), dtype="Int64")
    out["fidx"] = np.repeat(np.array(fidx, dtype=np.int64), counts)
    frame = pd.DataFrame(out, columns=list(VE_FRAME_COLUMNS))
    ve = frame["ve"]
    if bool((ve.isna() | (ve.str.len() == 0)).any()):
        raise ValueError("a row has an empty 've'")
    return frame


def ve_frame(docs: list[dict[str, Any]], fidx: list[int]) -> tuple[pd.DataFrame, dict[int, str]]:
    """All VE rows of a batch in one frame, plus {file index: reason} for files whose rows
    could not be typed (those files are left out of the frame and must be quarantined)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, d in enumerate(docs):
        groups.setdefault(tuple(d["columns"]), []).append(i)
    parts: list[pd.DataFrame] = []
    bad: dict[int, str] = {}
    for members in groups.values():
        try:
            parts.append(_group_frame([docs[i] for i in members], [fidx[i] for i in members]))
            continue
        except (TypeError, ValueError, OverflowError):
            pass
        for i in members:  # slow path, only when a value is bad: find the culprit files
            try:
                parts.append(_group_frame([docs[i]], [fidx[i]]))
            except (TypeError, ValueError, OverflowError) as exc:
                bad[fidx[i]] = f"a VE row has a value of the wrong type ({exc})"
    parts = [p for p in parts if len(p)]
    if not parts:
        return _empty_ve_frame(), bad
    return pd.concat(parts, ignore_index=True), bad


def _empty_ve_frame() -> pd.DataFrame:
    return _group_frame(
        [{"columns": list(spoolfmt.VE_COLUMNS), "rows": [], "node": "", "time": 0.0, "cpu_hz": 1}],
        [0],
    )
