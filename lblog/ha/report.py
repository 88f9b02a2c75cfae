"""What one node reports about its HA pair in a spool file: the optional ``ha`` section.

``HaReport`` holds the DRBD and cluster-manager probes (with their status: ok, absent,
failed, or none when not asked for) and which DRBD / cluster resource holds each VE.
``to_doc`` and ``from_doc`` are the JSON form documented in docs/spool-format.md;
``from_doc`` checks every key and raises ParseError naming it, so a bad section
quarantines the file instead of reaching the store half-understood.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lblog.errors import ParseError
from lblog.ha.model import (
    ClusterFailure,
    ClusterNode,
    ClusterResource,
    ClusterState,
    DrbdResource,
    DrbdStatus,
    DrbdVolume,
)
from lblog.sample import NodeTotals, Sample, VeRow

ProbeStatus = Literal["ok", "absent", "failed", "none"]
STATUSES = ("ok", "absent", "failed", "none")
MAP_SOURCES = ("map", "mounts", "haresources", "name")


@dataclass(frozen=True)
class VeMapping:
    """VE -> its DRBD resource and cluster resource. source: how it was learned."""

    ve: str
    drbd: str | None
    cluster: str | None
    source: str = "map"


@dataclass(frozen=True)
class HaReport:
    """One node's view of its pair at collection time."""

    drbd_status: ProbeStatus = "none"
    drbd_detail: str = ""
    drbd: DrbdStatus | None = None
    cluster_status: ProbeStatus = "none"
    cluster_detail: str = ""
    cluster: ClusterState | None = None
    ves: tuple[VeMapping, ...] = ()


class HaSample(Sample):
    """A Sample carrying its node's HA report; the spool writes it as the ``ha`` key."""

    _fields = (*Sample._fields, "ha")
    __slots__ = ("ha",)
    ha: HaReport | None

    def __init__(
        self,
        node: str,
        time: float,
        source: str,
        cpu_hz: int,
        jiffies_hz: int,
        totals: NodeTotals,
        ves: tuple[VeRow, ...],
        ha: HaReport | None = None,
    ) -> None:
        super().__init__(node, time, source, cpu_hz, jiffies_hz, totals, ves)
        object.__setattr__(self, "ha", ha)


# -- to JSON -----------------------------------------------------------------------------


def to_doc(report: HaReport) -> dict[str, Any]:
    drbd: dict[str, Any] = {"status": report.drbd_status, "detail": report.drbd_detail}
    if report.drbd is not None:
        drbd["source"] = report.drbd.source
        drbd["version"] = report.drbd.version
        drbd["volumes"] = [asdict(v) for r in report.drbd.resources for v in r.volumes]
    cluster: dict[str, Any] = {"status": report.cluster_status, "detail": report.cluster_detail}
    c = report.cluster
    if c is not None:
        cluster.update(
            manager=c.manager,
            quorum=c.quorum,
            maintenance_mode=c.maintenance_mode,
            nodes=[{**asdict(n), "flags": list(n.flags)} for n in c.nodes],
            resources=[{**asdict(r), "nodes": list(r.nodes)} for r in c.resources],
            failures=[asdict(f) for f in c.failures],
        )
    return {"drbd": drbd, "cluster": cluster, "ves": [asdict(m) for m in report.ves]}


# -- from JSON ---------------------------------------------------------------------------

_STR, _OSTR, _BOOL, _OBOOL = str, (str, type(None)), bool, (bool, type(None))
_OINT = (int, type(None))
_ONUM = (int, float, type(None))
_VOLUME = {
    "resource": _STR, "volume": _OINT, "minor": _OINT, "peer": _OSTR, "connection": _STR,
    "replication": _STR, "role": _STR, "peer_role": _STR, "disk": _STR, "peer_disk": _STR,
    "out_of_sync_kib": _OINT, "progress_pct": _ONUM, "finish_s": _OINT, "stalled": _BOOL,
}  # fmt: skip
_NODE = {
    "name": _STR, "online": _BOOL, "standby": _BOOL, "unclean": _BOOL, "maintenance": _BOOL,
    "shutdown": _BOOL, "pending": _BOOL, "flags": list,
}  # fmt: skip
_RESOURCE = {
    "id": _STR, "kind": _STR, "role": _STR, "nodes": list, "failed": _BOOL, "managed": _BOOL,
    "group": _OSTR,
}  # fmt: skip
_FAILURE = {"node": _OSTR, "resource": _OSTR, "operation": _OSTR, "message": _STR}
_VE = {"ve": _STR, "drbd": _OSTR, "cluster": _OSTR, "source": _STR}


def _obj(value: Any, path: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ParseError(path, 1, f"key {key!r} is not an object")
    return value


def _list(value: Any, path: str, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ParseError(path, 1, f"key {key!r} is not a list")
    return value


def _typed(item: Any, spec: Mapping[str, Any], path: str, key: str) -> dict[str, Any]:
    """Check one object against ``spec`` (field -> allowed types); bools are not ints."""
    obj = _obj(item, path, key)
    out = {}
    for name, kinds in spec.items():
        value = obj.get(name)
        allowed = kinds if isinstance(kinds, tuple) else (kinds,)
        wrong = isinstance(value, bool) and bool not in allowed
        if wrong or not isinstance(value, allowed):
            raise ParseError(path, 1, f"key '{key}.{name}' missing or of the wrong type")
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ParseError(path, 1, f"key '{key}.{name}' must list strings")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


def _status(section: dict[str, Any], path: str, key: str) -> tuple[Any, str]:
    status, detail = section.get("status"), section.get("detail", "")
    if status not in STATUSES:
        raise ParseError(path, 1, f"key '{key}.status' must be one of {', '.join(STATUSES)}")
    if not isinstance(detail, str):
        raise ParseError(path, 1, f"key '{key}.detail' is not a string")
    return status, detail


def _drbd(section: dict[str, Any], path: str) -> DrbdStatus | None:
    if "volumes" not in section:
        return None
    source = section.get("source")
    if source not in ("proc_drbd", "drbdsetup_json", "drbdadm_status", "events2"):
        raise ParseError(path, 1, "key 'ha.drbd.source' is not a known DRBD source")
    version = section.get("version")
    if not isinstance(version, str | None):
        raise ParseError(path, 1, "key 'ha.drbd.version' is not a string")
    volumes = [
        DrbdVolume(**_typed(v, _VOLUME, path, f"ha.drbd.volumes[{i}]"))
        for i, v in enumerate(_list(section["volumes"], path, "ha.drbd.volumes"))
    ]
    by_name: dict[str, list[DrbdVolume]] = {}
    for v in volumes:
        by_name.setdefault(v.resource, []).append(v)
    resources = tuple(DrbdResource(n, vs[0].role, tuple(vs)) for n, vs in by_name.items())
    return DrbdStatus(source, version, resources)


def _cluster(section: dict[str, Any], path: str) -> ClusterState | None:
    if "nodes" not in section:
        return None
    manager = section.get("manager")
    if manager not in ("pacemaker", "heartbeat", "rgmanager"):
        raise ParseError(path, 1, "key 'ha.cluster.manager' is not a known cluster manager")
    quorum, maint = section.get("quorum"), section.get("maintenance_mode", False)
    if not isinstance(quorum, bool | None) or not isinstance(maint, bool):
        raise ParseError(path, 1, "keys 'ha.cluster.quorum'/'maintenance_mode' must be booleans")

    def items(key: str, spec: Mapping[str, Any]) -> list[dict[str, Any]]:
        raw = _list(section.get(key, []), path, f"ha.cluster.{key}")
        return [_typed(x, spec, path, f"ha.cluster.{key}[{i}]") for i, x in enumerate(raw)]

    return ClusterState(
        manager=manager,
        nodes=tuple(ClusterNode(**n) for n in items("nodes", _NODE)),
        resources=tuple(ClusterResource(**r) for r in items("resources", _RESOURCE)),
        failures=tuple(ClusterFailure(**f) for f in items("failures", _FAILURE)),
        maintenance_mode=maint,
        quorum=quorum,
    )


def from_doc(doc: Any, path: str = "ha") -> HaReport:
    """The HaReport of a spool document's ``ha`` value; ParseError naming the bad key."""
    top = _obj(doc, path, "ha")
    drbd = _obj(top.get("drbd", {"status": "none"}), path, "ha.drbd")
    cluster = _obj(top.get("cluster", {"status": "none"}), path, "ha.cluster")
    d_status, d_detail = _status(drbd, path, "ha.drbd")
    c_status, c_detail = _status(cluster, path, "ha.cluster")
    ves = tuple(
        VeMapping(**_typed(m, _VE, path, f"ha.ves[{i}]"))
        for i, m in enumerate(_list(top.get("ves", []), path, "ha.ves"))
    )
    seen: set[str] = set()
    for m in ves:
        if m.ve in seen:
            raise ParseError(path, 1, f"key 'ha.ves': VE {m.ve} is mapped twice")
        seen.add(m.ve)
    return HaReport(
        d_status, d_detail, _drbd(drbd, path), c_status, c_detail, _cluster(cluster, path), ves
    )


def with_ha(sample: Sample, report: HaReport | None) -> HaSample:
    """``sample`` as an HaSample carrying ``report``."""
    s = sample
    return HaSample(s.node, s.time, s.source, s.cpu_hz, s.jiffies_hz, s.totals, s.ves, report)
