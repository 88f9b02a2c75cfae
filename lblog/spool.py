"""The spool file format (version 1) and its atomic writer / strict reader.

One JSON document per node per run, documented in docs/spool-format.md. VE rows are
columnar (``columns`` + ``rows``) so the monitor turns many files into one DataFrame cheaply.
The optional ``ha`` key carries the node's HA-pair report (lblog.ha.report); readers that
do not know it ignore it, so it needs no new version.
"""

from __future__ import annotations

import json
import os
import re
import time as _time
from operator import attrgetter

from lblog.atomic import write_atomic
from lblog.errors import ParseError, SpoolError
from lblog.sample import NodeTotals, Sample, VeRow

TYPE_CHECKING = False  # the agent imports no typing at run time (it costs milliseconds)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    from lblog.procfile import StrPath

FORMAT = "lbvm-spool"
VERSION = 1
VE_COLUMNS = (
    "ve",
    "cpu_raw",
    "uptime",
    "mem_bytes",
    "mem_limit_bytes",
    "swap_bytes",
    "disk_bytes",
    "disk_limit_bytes",
    "failcnt",
)
TOTALS = (
    "cpus", "cpu_busy_raw", "cpu_idle_raw", "mem_total_bytes", "mem_available_bytes",
    "load1", "load5", "load15", "disk_total_bytes", "disk_free_bytes",
)  # fmt: skip
_ROW = attrgetter(*VE_COLUMNS)
_TOTALS = attrgetter(*TOTALS)
NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
SUFFIX = ".json"


def check_node_name(name: str) -> str:
    """Return ``name`` if it is a safe host name for a spool directory, else raise."""
    if not NODE_NAME.match(name) or ".." in name:
        raise SpoolError(f"invalid node name {name!r}: letters, digits, '.', '_' and '-' only")
    return name


def file_name(sample: Sample) -> str:
    stamp = _time.strftime("%Y%m%dT%H%M%S", _time.gmtime(sample.time))
    micro = min(999_999, int((sample.time % 1) * 1_000_000))
    return f"{sample.node}-{stamp}.{micro:06d}Z{SUFFIX}"


def encode(sample: Sample, written: float | None = None) -> bytes:
    """The file's bytes. ``written``: the node's clock as the file is written (the optional
    ``written`` key; the monitor compares it with the file's mtime to find clock skew)."""
    doc: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "node": sample.node,
        "time": sample.time,
        "source": sample.source,
        "cpu_hz": sample.cpu_hz,
        "jiffies_hz": sample.jiffies_hz,
        "totals": dict(zip(TOTALS, _TOTALS(sample.totals), strict=True)),
        "columns": list(VE_COLUMNS),
        # Tuples are written as JSON arrays: no per-row or per-counter lists to build.
        "rows": list(map(_ROW, sample.ves)),
        "beancounters": {ve.ve: ve.beancounters for ve in sample.ves if ve.beancounters},
    }
    if written is not None:
        doc["written"] = written
    ha = getattr(sample, "ha", None)
    if ha is not None:
        from lblog.ha.report import to_doc  # only nodes that collect HA state pay for it

        doc["ha"] = to_doc(ha)
    # No cycle check: the document is built here from plain values (saves ~1 ms a run).
    return (json.dumps(doc, separators=(",", ":"), check_circular=False) + "\n").encode()


def node_dir(spool: StrPath, node: str) -> Path:
    """``<spool>/incoming/<node>`` as a Path (the agent itself uses ``node_path``)."""
    from pathlib import Path

    return Path(node_path(spool, node))


def node_path(spool: StrPath, node: str) -> str:
    """``<spool>/incoming/<node>`` as a string, the node name checked."""
    return os.path.join(spool, "incoming", check_node_name(node))


def write(spool: StrPath, sample: Sample) -> Path:
    """``put``, returning the final path as a Path."""
    from pathlib import Path

    return Path(put(spool, sample))


def put(spool: StrPath, sample: Sample) -> str:
    """Write ``sample`` under ``spool/incoming/<node>/`` atomically; return the final path
    (a string: the agent does not import pathlib).

    Temp name in the same directory, fsync, rename, fsync of the directory: a reader sees
    the whole file or none of it. Temp names start with '.', which readers skip.
    """
    directory = node_path(spool, sample.node)
    os.makedirs(directory, exist_ok=True)
    final = os.path.join(directory, file_name(sample))
    return write_atomic(final, encode(sample, written=_time.time()))


def decode(data: bytes, path: StrPath) -> dict[str, Any]:
    """Parse and check one spool document; raise ParseError naming the file and key."""
    path = os.fspath(path)
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise ParseError(path, line, f"not a complete spool file ({exc})") from None
    return check(doc, path)


def check(doc: Any, path: StrPath) -> dict[str, Any]:
    """``decode``'s checks of a document another JSON decoder made (the monitor's)."""
    path = os.fspath(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ParseError(path, 1, f"not an {FORMAT} document")
    if doc.get("version") != VERSION:
        raise ParseError(path, 1, f"unsupported spool version {doc.get('version')!r}")
    for key, kind in (
        ("node", str),
        ("time", (int, float)),
        ("cpu_hz", int),
        ("jiffies_hz", int),
        ("totals", dict),
        ("columns", list),
        ("rows", list),
    ):
        if not isinstance(doc.get(key), kind):
            raise ParseError(path, 1, f"key {key!r} missing or of the wrong type")
    columns = doc["columns"]
    if "ve" not in columns:
        raise ParseError(path, 1, "key 'columns' lacks 've'")
    width = len(columns)
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, list) or len(row) != width:
            raise ParseError(path, 1, f"rows[{i}] does not have {width} values")
    check_node_name(doc["node"])
    if "ha" in doc:
        from lblog.ha.report import from_doc

        from_doc(doc["ha"], path)
    return doc


def read(path: StrPath) -> dict[str, Any]:
    with open(path, "rb") as fh:
        return decode(fh.read(), path)


def to_sample(doc: Mapping[str, Any]) -> Sample:
    """Rebuild a Sample from a decoded document (used by tests, replay and the backlog);
    a document with an ``ha`` key gives an HaSample, so the backlog keeps it."""
    cols = doc["columns"]
    bcs = doc.get("beancounters", {})
    ves = []
    for row in doc["rows"]:
        fields = dict(zip(cols, row, strict=True))
        known = {k: fields.get(k) for k in VE_COLUMNS}
        bc = {k: tuple(v) for k, v in bcs.get(str(known["ve"]), {}).items()}
        ves.append(VeRow(beancounters=bc, **known))  # type: ignore[arg-type]
    sample = Sample(
        node=doc["node"],
        time=float(doc["time"]),
        source=doc.get("source", "openvz"),
        cpu_hz=doc["cpu_hz"],
        jiffies_hz=doc["jiffies_hz"],
        totals=NodeTotals(**doc["totals"]),
        ves=tuple(ves),
    )
    if "ha" not in doc:
        return sample
    from lblog.ha.report import from_doc, with_ha

    return with_ha(sample, from_doc(doc["ha"], "ha"))
