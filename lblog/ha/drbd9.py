"""DRBD 9: `drbdsetup status --json`, `drbdadm status` (text) and `drbdsetup events2 --now`.

All three describe the same objects: a resource (local role), its devices (volume, minor,
local disk), its connections (peer name, connection state, peer role) and the peer devices
(replication state, peer disk, out-of-sync KiB, resync progress). Each parser gathers them
into the scratch form below; one builder turns that into the typed model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lblog.errors import ParseError
from lblog.ha.model import RESYNC_STATES, DrbdResource, DrbdStatus, DrbdVolume
from lblog.ha.values import percent, whole

_TIMESTAMP = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T")


@dataclass
class _Conn:
    name: str
    fields: dict[str, str]
    peer_devices: dict[int | None, dict[str, str]] = field(default_factory=dict)


@dataclass
class _Res:
    name: str
    fields: dict[str, str]
    line: int | None
    devices: dict[int | None, dict[str, str]] = field(default_factory=dict)
    conns: dict[str, _Conn] = field(default_factory=dict)


# --------------------------------------------------------------------- drbdadm status


def parse_drbdadm_status(text: str, path: str = "drbdadm status") -> DrbdStatus:
    """Parse `drbdadm status` text: resource at column 0, devices and peers at 2, peer
    devices at 4. Fields drbdadm leaves out mean the normal case (a peer shown without
    `connection:` is Connected, a peer device without `replication:` is Established)."""
    resources: list[_Res] = []
    conn: _Conn | None = None
    for number, raw in enumerate(text.expandtabs(8).splitlines(), 1):
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip(" "))
        tokens = raw.split()
        head = tokens[0]
        if indent == 0:
            if ":" in head:
                raise ParseError(path, number, f"expected a resource name, got {head[:40]!r}")
            res = _Res(head, _kv(tokens[1:], path, number), number)
            if "role" not in res.fields:
                raise ParseError(path, number, f"resource {head} lacks role:")
            resources.append(res)
            conn = None
        elif not resources:
            raise ParseError(path, number, "indented line before any resource")
        elif indent == 2 and ":" in head:
            fields = _kv(tokens, path, number)
            if "disk" not in fields:
                raise ParseError(path, number, "device line lacks disk:")
            _put(resources[-1].devices, fields, path, number)
        elif indent == 2:
            conn = _Conn(head, _kv(tokens[1:], path, number))
            resources[-1].conns[head] = conn
        elif indent == 4 and conn is not None:
            _put(conn.peer_devices, _kv(tokens, path, number), path, number)
        else:
            raise ParseError(path, number, f"unexpected indentation ({indent} spaces)")
    return DrbdStatus("drbdadm_status", None, _build_all(resources, path))


def _kv(tokens: list[str], path: str, line: int | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for token in tokens:
        key, sep, value = token.partition(":")
        if not sep or not key:
            raise ParseError(path, line, f"expected key:value, got {token[:40]!r}")
        out[key] = value
    return out


def _put(
    table: dict[int | None, dict[str, str]], fields: dict[str, str], path: str, line: int | None
) -> None:
    vol = whole(fields["volume"], path, line, "volume") if "volume" in fields else None
    table[vol] = fields


# ------------------------------------------------------------- drbdsetup status --json


def parse_drbdsetup_json(text: str, path: str = "drbdsetup status --json") -> DrbdStatus:
    """Parse `drbdsetup status --json [all]`: a list of resource objects."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(path, exc.lineno, f"not JSON: {exc.msg}") from None
    except RecursionError:
        raise ParseError(path, None, "JSON nested too deeply") from None
    resources = []
    for res_doc in _list(doc, path, "top level"):
        res_doc = _dict(res_doc, path, "resource")
        name = _str(res_doc, "name", path)
        res = _Res(name, {"role": _str(res_doc, "role", path)}, None)
        for dev in _list(res_doc.get("devices", []), path, f"{name} devices"):
            dev = _dict(dev, path, f"{name} device")
            res.devices[_jint(dev, "volume", path)] = {
                "disk": _str(dev, "disk-state", path),
                "minor": str(_jint(dev, "minor", path)),
            }
        for c in _list(res_doc.get("connections", []), path, f"{name} connections"):
            c = _dict(c, path, f"{name} connection")
            peer = _str(c, "name", path)
            conn = _Conn(
                peer,
                {
                    "connection": _str(c, "connection-state", path),
                    "role": str(c.get("peer-role", "Unknown")),
                },
            )
            for pd in _list(c.get("peer_devices", []), path, f"{name} {peer} peer_devices"):
                pd = _dict(pd, path, f"{name} {peer} peer device")
                fields = {
                    "replication": _str(pd, "replication-state", path),
                    "peer-disk": _str(pd, "peer-disk-state", path),
                }
                if "out-of-sync" in pd:
                    fields["out-of-sync"] = str(_jint(pd, "out-of-sync", path))
                if "percent-in-sync" in pd:
                    fields["done"] = str(pd["percent-in-sync"])
                conn.peer_devices[_jint(pd, "volume", path)] = fields
            res.conns[peer] = conn
        resources.append(res)
    return DrbdStatus("drbdsetup_json", None, _build_all(resources, path))


def _list(value: Any, path: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(path, None, f"{what}: expected a JSON list")
    return value


def _dict(value: Any, path: str, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(path, None, f"{what}: expected a JSON object")
    return value


def _str(obj: dict[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise ParseError(path, None, f"missing or empty string {key!r}")
    return value


def _jint(obj: dict[str, Any], key: str, path: str) -> int:
    value = obj.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ParseError(path, None, f"{key!r} must be a whole number, got {value!r}")
    return value


# ------------------------------------------------------------------------ events2


def parse_events2(text: str, path: str = "drbdsetup events2 --now") -> DrbdStatus:
    """Parse `drbdsetup events2 --now [--statistics] [--timestamps]` (or a recorded
    stream): apply exists/create/change/destroy in order and keep the final state."""
    resources: dict[str, _Res] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        tokens = raw.split()
        if tokens and _TIMESTAMP.match(tokens[0]):
            tokens = tokens[1:]
        if not tokens or tokens == ["exists", "-"]:
            continue
        if len(tokens) < 2:
            raise ParseError(path, number, f"truncated event {raw.strip()[:40]!r}")
        event, kind = tokens[0], tokens[1]
        if event in ("call", "response") or kind in ("path", "helper"):
            continue
        if event not in ("exists", "create", "change", "destroy"):
            raise ParseError(path, number, f"unknown event {event[:40]!r}")
        fields = _kv(tokens[2:], path, number)
        name = fields.get("name")
        if not name:
            raise ParseError(path, number, f"{kind} event lacks name:")
        if kind == "resource":
            _apply(resources, name, event, fields, _Res(name, {}, number))
            continue
        res = resources.get(name)
        if res is None:
            raise ParseError(path, number, f"{kind} event for unknown resource {name}")
        if kind == "device":
            vol = _vol(fields, path, number)
            _apply(res.devices, vol, event, fields, {})
        elif kind in ("connection", "peer-device"):
            peer = fields.get("conn-name") or fields.get("peer-node-id")
            if not peer:
                raise ParseError(path, number, f"{kind} event lacks peer-node-id:")
            if kind == "connection":
                _apply(res.conns, peer, event, fields, _Conn(peer, {}))
            elif peer not in res.conns:
                raise ParseError(path, number, f"peer device of unknown connection {peer}")
            else:
                vol = _vol(fields, path, number)
                _apply(res.conns[peer].peer_devices, vol, event, fields, {})
        else:
            raise ParseError(path, number, f"unknown object {kind[:40]!r}")
    for res in resources.values():
        if "role" not in res.fields:
            raise ParseError(path, res.line, f"resource {res.name} never reported role:")
    return DrbdStatus("events2", None, _build_all(list(resources.values()), path))


def _vol(fields: dict[str, str], path: str, line: int) -> int:
    if "volume" not in fields:
        raise ParseError(path, line, "event lacks volume:")
    return whole(fields["volume"], path, line, "volume")


def _apply(table: dict[Any, Any], key: Any, event: str, fields: dict[str, str], new: Any) -> None:
    """create/exists/change merge the fields into the object; destroy removes it."""
    if event == "destroy":
        table.pop(key, None)
        return
    obj = table.setdefault(key, new)
    (obj if isinstance(obj, dict) else obj.fields).update(fields)


# ------------------------------------------------------------------------ builder


def _build_all(resources: list[_Res], path: str) -> tuple[DrbdResource, ...]:
    names = [r.name for r in resources]
    for name in names:
        if names.count(name) > 1:
            raise ParseError(path, None, f"resource {name} listed twice")
    return tuple(_build(r, path) for r in resources)


def _build(res: _Res, path: str) -> DrbdResource:
    role = res.fields.get("role") or "Unknown"
    volumes = []
    devices = res.devices
    for vol, dev in sorted(devices.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
        disk = dev.get("disk") or "DUnknown"
        minor = whole(dev["minor"], path, res.line, "minor") if "minor" in dev else None
        conns: list[_Conn | None] = [*res.conns.values()] or [None]
        for conn in conns:
            if conn is None:
                state, peer_role, pd = "StandAlone", "Unknown", {}
            else:
                state = conn.fields.get("connection") or "Connected"
                peer_role = conn.fields.get("role") or "Unknown"
                pd = _peer_device(conn, vol, len(devices))
            replication = pd.get("replication") or (
                "Established" if state == "Connected" else "Off"
            )
            resyncing = replication in RESYNC_STATES
            volumes.append(
                DrbdVolume(
                    resource=res.name,
                    volume=vol,
                    minor=minor,
                    peer=None if conn is None else conn.name,
                    connection=state,
                    replication=replication,
                    role=role,
                    peer_role=peer_role,
                    disk=disk,
                    peer_disk=pd.get("peer-disk") or "DUnknown",
                    out_of_sync_kib=(
                        whole(pd["out-of-sync"], path, res.line, "out-of-sync")
                        if "out-of-sync" in pd
                        else None
                    ),
                    progress_pct=percent(pd["done"], path, res.line)
                    if resyncing and "done" in pd
                    else None,
                    finish_s=whole(pd["eta"], path, res.line, "eta") if "eta" in pd else None,
                )
            )
    for conn in res.conns.values():
        for vol in conn.peer_devices:
            if vol not in devices and len(devices) != 1:
                raise ParseError(path, res.line, f"{res.name}: peer volume {vol} has no device")
    return DrbdResource(res.name, role, tuple(volumes))


def _peer_device(conn: _Conn, vol: int | None, n_devices: int) -> dict[str, str]:
    if vol in conn.peer_devices:
        return conn.peer_devices[vol]
    if n_devices == 1 and len(conn.peer_devices) == 1:
        return next(iter(conn.peer_devices.values()))
    return {}
