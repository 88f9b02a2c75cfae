"""Parsers for the OpenVZ files the agent reads: pure functions of (text, path).

Each returns typed rows keyed by VE id (a string: a numeric CTID on legacy kernels, a name or
UUID on OpenVZ 7) and raises ParseError with the file and line for anything it cannot read.
Values stay in kernel units (beancounter pages/bytes/counts, vestat jiffies); ``collect``
converts. The host (id 0) is not a VE and is left out.
"""

from __future__ import annotations

from collections import namedtuple

from lblog.errors import ParseError
from lblog.lazylog import get_logger
from lblog.procfile import uint, uints
from lblog.sample import Beancounter

log = get_logger(__name__)

# LONG_MAX of 64- and 32-bit kernels; both mean "unlimited" and one file can mix them.
UNLIMITED = frozenset((9223372036854775807, 2147483647))
UNLIMITED_KB = 9223372036854775807 >> 10  # vzquota shows LONG_MAX bytes as 1 KiB blocks
PAGE_SIZE = 4096  # beancounter *pages resources count 4 KiB pages
HOST = "0"
_BC_HEADER = ["uid", "resource", "held", "maxheld", "barrier", "limit", "failcnt"]
_VESTAT_HEADER = "VEID user nice system uptime idle strv uptime used maxlat totlat numsched"


# Named tuples from collections (typing.NamedTuple would import typing on every cron run);
# the annotations in each class give mypy the field types.
_VeStat = namedtuple(
    "_VeStat",
    ["user", "nice", "system", "uptime", "idle", "strv", "uptime_fine", "used", "maxlat",
     "totlat", "numsched"],
)  # fmt: skip


class VeStat(_VeStat):
    """One /proc/vz/vestat row (Version 2.2).

    user, nice, system, uptime: kernel jiffies (CONFIG_HZ, not USER_HZ).
    idle, strv, uptime_fine, used: CPU cycles on legacy kernels, nanoseconds on OpenVZ 7.
    maxlat, totlat: scheduling latency; numsched: scheduling count.
    """

    __slots__ = ()
    user: int
    nice: int
    system: int
    uptime: int
    idle: int
    strv: int
    uptime_fine: int
    used: int
    maxlat: int
    totlat: int
    numsched: int

    @property
    def cpu(self) -> int:
        """Cumulative CPU time, user + nice + system, in kernel jiffies."""
        return self.user + self.nice + self.system


class VeInfo(namedtuple("VeInfo", "classid numproc ips")):
    """One /proc/vz/veinfo row: class id, process count, IP addresses."""

    __slots__ = ()
    classid: int
    numproc: int
    ips: tuple[str, ...]


class Quota(namedtuple("Quota", "usage_kb softlimit_kb hardlimit_kb")):
    """Disk quota of one VE in 1 KiB blocks (from /proc/vz/vzquota or ``vzlist -j``)."""

    __slots__ = ()
    usage_kb: int
    softlimit_kb: int
    hardlimit_kb: int

    @property
    def used_bytes(self) -> int:
        return self.usage_kb * 1024

    @property
    def limit_bytes(self) -> int | None:
        """The hard limit in bytes; None when 0 or "unlimited" (LONG_MAX bytes or blocks)."""
        hard = self.hardlimit_kb
        if hard == 0 or hard in UNLIMITED or hard >= UNLIMITED_KB:
            return None
        return hard * 1024


class _Ints(dict[str, int]):
    """token -> int(token), converting each distinct token once: a node's 12,000 rows hold
    a few thousand distinct numbers (LONG_MAX and 0 most of all)."""

    __slots__ = ()

    def __missing__(self, token: str) -> int:
        value = self[token] = int(token)
        return value


def finite(value: int) -> bool:
    """True when a beancounter barrier/limit is a real bound (not 0, not LONG_MAX)."""
    return value != 0 and value not in UNLIMITED


def parse_beancounters(
    text: str, path: str, ve: str | None = None
) -> dict[str, dict[str, Beancounter]]:
    """``/proc/user_beancounters`` or ``/proc/bc/resources``: VE -> resource -> 5 counters.

    Accepts 32- and 64-bit column widths, a missing ``Version:`` line, ``dummy`` rows
    (dropped), integer or name/UUID uids, and rows that continue the previous uid. ``ve``
    names the VE of a per-VE file (``/proc/bc/<id>/resources``), whose rows have no uid.
    """
    result: dict[str, dict[str, Beancounter]] = {}
    seen: set[str] = set()
    current: dict[str, Beancounter] | None = None
    if ve is not None:
        current = result[ve] = {}
        seen.add(ve)
    num = _Ints()
    lineno, name = 0, ""
    try:  # one try for the whole loop: this is the agent's hot path (~24 rows per VE)
        for lineno, line in enumerate(text.split("\n"), 1):
            parts = line.split()
            n = len(parts)
            if n == 6:
                name = parts[0]
            elif n == 7:
                uid = parts[0]
                if uid[-1] != ":" or len(uid) == 1:
                    if parts == _BC_HEADER:
                        continue
                    raise ParseError(path, lineno, f"expected '<uid>:' first, not {uid[:40]!r}")
                uid = uid[:-1]
                if uid in seen:
                    raise ParseError(path, lineno, f"uid {uid!r} appears twice")
                seen.add(uid)
                current = {}
                if uid != HOST:
                    result[uid] = current
                name = parts[1]
            elif n == 0:
                continue
            elif parts[0] == "Version:":
                _check_version(parts, path, lineno, "2.")
                continue
            else:
                raise ParseError(path, lineno, f"expected 6 or 7 fields, found {n}")
            if current is None:
                raise ParseError(path, lineno, "resource row before any uid")
            if not name.isidentifier():
                raise ParseError(path, lineno, f"{name[:40]!r} is not a resource name")
            row = (num[parts[-5]], num[parts[-4]], num[parts[-3]], num[parts[-2]], num[parts[-1]])
            if name == "dummy":
                continue
            if name in current:
                raise ParseError(path, lineno, f"resource {name!r} appears twice for one uid")
            if "-" in line and min(row) < 0:
                raise ParseError(path, lineno, f"{name}: negative counter")
            current[name] = row
    except ValueError:
        raise ParseError(path, lineno, f"{name[:40]}: counters must be integers") from None
    return result


def parse_vestat(text: str, path: str) -> dict[str, VeStat]:
    """``/proc/vz/vestat`` (Version 2.x): VE -> VeStat. Columns are found by header name;
    of the two ``uptime`` columns the first is jiffies, the second cycles or ns."""
    index: list[int] | None = None
    width = 0
    result: dict[str, VeStat] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        first = parts[0]
        if first == "Version:":
            _check_version(parts, path, lineno, "2.")
            continue
        if first == "VEID":
            index = _vestat_columns(parts, path, lineno)
            width = len(parts)
            continue
        if index is None:
            raise ParseError(path, lineno, "data row before the 'VEID' header line")
        if len(parts) != width:
            raise ParseError(path, lineno, f"expected {width} fields, found {len(parts)}")
        values = uints([parts[i] for i in index], path, lineno, f"VE {first[:40]}")
        if first in result:
            raise ParseError(path, lineno, f"VE {first!r} appears twice")
        if first != HOST:
            result[first] = VeStat(*values)
    return result


def _vestat_columns(header: list[str], path: str, lineno: int) -> list[int]:
    """Positions of VeStat's fields in this header line."""
    first: dict[str, int] = {}
    for i, name in enumerate(header):
        first.setdefault(name, i)
    uptimes = [i for i, name in enumerate(header) if name == "uptime"]
    try:
        return [
            first["user"],
            first["nice"],
            first["system"],
            uptimes[0],
            first["idle"],
            first["strv"],
            uptimes[1],
            first["used"],
            first["maxlat"],
            first["totlat"],
            first["numsched"],
        ]
    except (KeyError, IndexError):
        raise ParseError(path, lineno, f"header is not {_VESTAT_HEADER!r}") from None


def parse_veinfo(text: str, path: str) -> dict[str, VeInfo]:
    """``/proc/vz/veinfo``: VE -> (class id, process count, IPs)."""
    result: dict[str, VeInfo] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise ParseError(path, lineno, f"expected at least 3 fields, found {len(parts)}")
        ve = parts[0]
        classid = uint(parts[1], path, lineno, "class id")
        numproc = uint(parts[2], path, lineno, "process count")
        if ve in result:
            raise ParseError(path, lineno, f"VE {ve[:40]!r} appears twice")
        if ve != HOST:
            result[ve] = VeInfo(classid, numproc, tuple(parts[3:]))
    return result


def parse_vzquota(text: str, path: str) -> dict[str, Quota]:
    """``/proc/vz/vzquota``: quota id (the CTID) -> Quota of its ``1k-blocks`` line.

    Layout: a ``qid: path usage softlimit hardlimit time expire`` header, then per quota
    ``<id>: <path>``, a ``1k-blocks`` line and an ``inodes`` line of five numbers each.
    A limit of 0 means no limit, as in Linux disk quotas.
    """
    result: dict[str, Quota] = {}
    qid: str | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split()
        if not parts:
            continue
        first = parts[0]
        if first == "qid:":
            continue
        if first[-1] == ":" and len(first) > 1:
            qid = first[:-1]
            if qid in result:
                raise ParseError(path, lineno, f"quota id {qid[:40]!r} appears twice")
            continue
        if first not in ("1k-blocks", "inodes"):
            raise ParseError(path, lineno, f"unexpected line starting {first[:40]!r}")
        if qid is None:
            raise ParseError(path, lineno, f"{first} line before any '<id>:' line")
        if len(parts) in (4, 5) and first == "1k-blocks":
            # %15Lu columns with no separator run together for values of 15+ digits (a
            # limit near LONG_MAX): usage cannot be told apart, so this quota is unknown.
            uints(parts[1:], path, lineno, first)
            log.debug("%s:%d: quota %s has run-together columns; skipped", path, lineno, qid)
            continue
        if len(parts) != 6:
            raise ParseError(path, lineno, f"expected 6 fields, found {len(parts)}")
        values = uints(parts[1:], path, lineno, first)
        if first == "1k-blocks" and qid != HOST:
            result[qid] = Quota(values[0], values[1], values[2])
    return result


def parse_vzlist_json(text: str, path: str) -> dict[str, Quota]:
    """``vzlist -j -o ctid,diskspace`` output: CTID -> Quota (diskspace is in 1 KiB blocks).

    Containers whose ``diskspace`` is null (no quota, e.g. not mounted) are left out.
    """
    import json

    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ParseError(path, getattr(exc, "lineno", None), f"not JSON ({exc})") from None
    if not isinstance(doc, list):
        raise ParseError(path, 1, "expected a JSON list of containers")
    result: dict[str, Quota] = {}
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict):
            raise ParseError(path, None, f"entry {i} is not an object")
        ctid = entry.get("ctid", entry.get("veid"))
        if isinstance(ctid, bool) or not isinstance(ctid, (int, str)) or ctid == "":
            raise ParseError(path, None, f"entry {i} has no 'ctid'")
        space = entry.get("diskspace")
        if space is None:
            continue
        if not isinstance(space, dict):
            raise ParseError(path, None, f"entry {i} ({ctid}): 'diskspace' is not an object")
        values = []
        for key in ("usage", "softlimit", "hardlimit"):
            value = space.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ParseError(path, None, f"entry {i} ({ctid}): diskspace.{key} {value!r}")
            values.append(value)
        if str(ctid) != HOST:
            result[str(ctid)] = Quota(*values)
    return result


def _check_version(parts: list[str], path: str, lineno: int, major: str) -> None:
    if len(parts) != 2 or not parts[1].startswith(major):
        raise ParseError(path, lineno, f"unsupported version line {' '.join(parts)[:60]!r}")
