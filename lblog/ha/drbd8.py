"""DRBD 8.3 / 8.4 `/proc/drbd`.

A device is a line ` 1: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----`
followed by indented lines: counters (`ns:... oos:<KiB>`), and while resyncing
`[==>....] sync'ed: 17.9% (...)M` and `finish: 10:43:36 speed: ...` (or `stalled`).
Fields are key:value tokens found anywhere on the line; unknown ones are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lblog.errors import ParseError
from lblog.ha.model import RESYNC_STATES, DrbdResource, DrbdStatus, DrbdVolume
from lblog.ha.values import percent, whole

_DEVICE = re.compile(r"^\s*([0-9]+):\s+(.*)$")
_HEADER = re.compile(r"^[A-Za-z][\w-]*:")
_PROGRESS = re.compile(r"(?:sync'ed|verified):\s*([0-9.]+)%")
_FINISH = re.compile(r"finish:\s*([0-9]+):([0-9]{1,2}):([0-9]{1,2})\b")
_CONNECTION_STATES = frozenset(
    {
        "StandAlone",
        "Disconnecting",
        "Unconnected",
        "Timeout",
        "BrokenPipe",
        "NetworkFailure",
        "ProtocolError",
        "TearDown",
        "WFConnection",
        "WFReportParams",
        "Connected",
    }
)


@dataclass
class _Device:
    minor: int
    line: int
    fields: dict[str, str]
    extra: list[tuple[int, str]] = field(default_factory=list)


def parse_proc_drbd(text: str, path: str = "/proc/drbd") -> DrbdStatus:
    """Parse `/proc/drbd` of DRBD 8.x; unconfigured minors are not resources and are skipped.

    A DRBD 9 `/proc/drbd` (version line only) gives no resources: use drbd9 parsers then.
    """
    version: str | None = None
    devices: list[_Device] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not line.strip():
            continue
        m = _DEVICE.match(line)
        if m:
            devices.append(_Device(int(m.group(1)), number, _fields(m.group(2))))
        elif devices and line[:1].isspace():
            devices[-1].extra.append((number, line.strip()))
        elif not devices and _HEADER.match(line):
            if line.startswith("version:"):
                version = line.split()[1] if len(line.split()) > 1 else None
        else:
            raise ParseError(path, number, f"unexpected line {line.strip()[:60]!r}")
    if version is None:
        raise ParseError(path, 1, "no 'version:' line: not a /proc/drbd file")
    seen: set[int] = set()
    resources = []
    for dev in devices:
        if dev.minor in seen:
            raise ParseError(path, dev.line, f"minor {dev.minor} listed twice")
        seen.add(dev.minor)
        if dev.fields.get("cs") == "Unconfigured":
            continue
        resources.append(_resource(dev, path))
    return DrbdStatus("proc_drbd", version, tuple(resources))


def _fields(text: str) -> dict[str, str]:
    out = {}
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key and key not in out:
            out[key] = value
    return out


def _pair(fields: dict[str, str], keys: tuple[str, ...], dev: _Device, path: str) -> list[str]:
    for key in keys:
        if key in fields:
            parts = fields[key].split("/")
            if len(parts) != 2 or not all(parts):
                raise ParseError(path, dev.line, f"{key}:{fields[key]} is not local/peer")
            return parts
    raise ParseError(path, dev.line, f"minor {dev.minor} lacks {keys[0]}:")


def _resource(dev: _Device, path: str) -> DrbdResource:
    fields = dev.fields
    cs = fields.get("cs")
    if not cs:
        raise ParseError(path, dev.line, f"minor {dev.minor} lacks cs:")
    if cs in RESYNC_STATES:
        connection, replication = "Connected", cs
    elif cs in _CONNECTION_STATES:
        connection, replication = cs, ("Established" if cs == "Connected" else "Off")
    else:
        raise ParseError(path, dev.line, f"unknown connection state cs:{cs}")
    role, peer_role = _pair(fields, ("ro", "st"), dev, path)
    disk, peer_disk = _pair(fields, ("ds",), dev, path)
    oos: int | None = None
    progress: float | None = None
    finish: int | None = None
    stalled = False
    for number, line in dev.extra:
        counters = _fields(line)
        if "oos" in counters:
            oos = whole(counters["oos"], path, number, "oos")
        m = _PROGRESS.search(line)
        if m:
            progress = percent(m.group(1), path, number, "sync'ed")
        m = _FINISH.search(line)
        if m:
            h, mi, s = (int(g) for g in m.groups())
            finish = h * 3600 + mi * 60 + s
        elif line.startswith("finish:"):
            raise ParseError(path, number, f"unreadable finish time {line[:40]!r}")
        if line.split()[:1] == ["stalled"]:
            stalled = True
    volume = DrbdVolume(
        resource=str(dev.minor),
        volume=0,
        minor=dev.minor,
        peer=None,
        connection=connection,
        replication=replication,
        role=role,
        peer_role=peer_role,
        disk=disk,
        peer_disk=peer_disk,
        out_of_sync_kib=oos,
        progress_pct=progress,
        finish_s=finish,
        stalled=stalled,
    )
    return DrbdResource(str(dev.minor), role, (volume,))
