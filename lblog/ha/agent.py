"""The agent's HA collection: probe DRBD and the cluster manager, and learn which DRBD
resource and cluster resource hold each VE.

Nothing here is fatal to a collection run: a tool that is missing is reported "absent",
one that fails or prints something unreadable is reported "failed" with the reason, and
the VE samples are written all the same. A bad ``--ha-map`` file is the operator's mistake
and raises ParseError naming its line.

VE -> resources: the map file wins (``ve=drbd_resource[,cluster_resource]``); otherwise
the DRBD resource is found from where the VE's private area is mounted (/proc/mounts: the
longest mount point containing it, on /dev/drbdN or /dev/drbd/by-res/<res>), and the
cluster resource from Heartbeat's haresources (the group holding ``drbddisk::<res>``) or a
resource named like the VE (``<ve>``, ``ve<ve>``, ``vz<ve>``, ``ct<ve>``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from lblog.errors import LbvmError, ParseError
from lblog.ha.model import ClusterState, DrbdStatus
from lblog.ha.modes import CLUSTER_MODES, DRBD_MODES, PRIVATE_TEMPLATE
from lblog.ha.probe import (
    ClusterProbe,
    DrbdProbe,
    Manager,
    Runner,
    probe_cluster,
    probe_drbd,
    probe_drbd9,
    run_command,
)
from lblog.ha.report import HaReport, VeMapping
from lblog.procfile import read_text

_MINOR = re.compile(r"^/dev/drbd([0-9]+)$")
_BY_RES = re.compile(r"^/dev/drbd/by-res/([^/]+)(?:/[0-9]+)?$")
_VE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def read_map(path: Path) -> dict[str, VeMapping]:
    """Parse a map file: ``ve=drbd_resource[,cluster_resource]`` per line, # comments.

    Either side of the comma may be empty (``101=,vz101``: no DRBD resource known).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        why = exc.strerror or exc
        raise ParseError(str(path), None, f"cannot read the HA map: {why}") from None
    except UnicodeDecodeError:
        raise ParseError(str(path), None, "the HA map is not UTF-8 text") from None
    out: dict[str, VeMapping] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        ve, sep, rest = line.partition("=")
        ve = ve.strip()
        if not sep or not _VE_NAME.match(ve):
            raise ParseError(str(path), number, f"expected ve=drbd_resource[,cluster_resource], "
                             f"got {line[:60]!r}")
        parts = [p.strip() for p in rest.split(",")]
        if len(parts) > 2 or not any(parts):
            raise ParseError(str(path), number, f"VE {ve}: give drbd_resource[,cluster_resource]")
        for part in parts:
            if part and not _VE_NAME.match(part):
                why = f"VE {ve}: {part[:40]!r} is not a resource name"
                raise ParseError(str(path), number, why)
        if ve in out:
            raise ParseError(str(path), number, f"VE {ve} is mapped twice")
        drbd = parts[0] or None
        cluster = (parts[1] or None) if len(parts) == 2 else None
        out[ve] = VeMapping(ve, drbd, cluster, "map")
    return out


def parse_mounts(text: str) -> dict[str, str]:
    """/proc/mounts -> {mount point: device}; octal escapes (\\040) are decoded."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            device, point = (_unescape(f) for f in fields[:2])
            out[point] = device
    return out


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _device_of(path: str, mounts: dict[str, str]) -> str | None:
    """The device of the longest mount point that contains ``path``."""
    best = None
    for point in mounts:
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best)):
            best = point
    return mounts[best] if best is not None else None


def drbd_resource_of(device: str | None, drbd: DrbdStatus | None) -> str | None:
    """The DRBD resource behind a block device path, when it is a DRBD device."""
    if device is None:
        return None
    m = _BY_RES.match(device)
    if m:
        return m.group(1)
    m = _MINOR.match(device)
    if not m:
        return None
    minor = int(m.group(1))
    if drbd is not None:
        for res in drbd.resources:
            if any(v.minor == minor for v in res.volumes):
                return res.name
    return str(minor)  # DRBD 8 names a resource by its minor


def _cluster_resource(
    ve: str, drbd_res: str | None, cluster: ClusterState | None
) -> tuple[str | None, str]:
    """(cluster resource of ``ve``, how it was found)."""
    if cluster is None:
        return None, "name"
    if drbd_res is not None:
        for r in cluster.resources:
            if r.kind == "drbddisk" and r.id == f"drbddisk::{drbd_res}" and r.group:
                return r.group, "haresources"
    ids = {r.id for r in cluster.resources}
    return next((n for n in (ve, f"ve{ve}", f"vz{ve}", f"ct{ve}") if n in ids), None), "name"


def discover(
    ves: Iterable[str],
    mounts_text: str | None,
    drbd: DrbdStatus | None,
    cluster: ClusterState | None,
    template: str = PRIVATE_TEMPLATE,
) -> tuple[VeMapping, ...]:
    """Mappings learned from the mounts and the cluster state, for VEs where any is found."""
    mounts = parse_mounts(mounts_text or "")
    out = []
    for ve in ves:
        res = drbd_resource_of(_device_of(template.format(ve=ve), mounts), drbd)
        group, how = _cluster_resource(ve, res, cluster)
        if res is not None or group is not None:
            out.append(VeMapping(ve, res, group, "mounts" if res is not None else how))
    return tuple(out)


def _drbd(mode: str, run: Runner, proc_root: Path, timeout: float) -> DrbdProbe:
    proc_drbd = Path(proc_root) / "proc/drbd"
    try:
        if mode == "auto":
            return probe_drbd(run, proc_drbd, timeout)
        if mode == "drbdsetup":
            return probe_drbd9(run, timeout)
        text = read_text(proc_drbd)
        if text is None:
            return DrbdProbe("absent", f"{proc_drbd} not found: DRBD module not loaded")
        if not text.startswith("version: 8."):
            return DrbdProbe("failed", f"{proc_drbd} is not DRBD 8: use --drbd drbdsetup")
        return probe_drbd(run, proc_drbd, timeout)
    except LbvmError as exc:  # unreadable output: reported, the VE samples still go out
        return DrbdProbe("failed", str(exc))


def _cluster(
    mode: str, run: Runner, timeout: float, local: str | None, haresources: Path
) -> ClusterProbe:
    manager: Manager
    if mode == "pacemaker":
        manager = "pacemaker"
    elif mode == "heartbeat":
        manager = "heartbeat"
    else:
        manager = "rgmanager"
    try:
        return probe_cluster(manager, run, timeout, local, haresources)
    except LbvmError as exc:
        return ClusterProbe("failed", str(exc))


def collect_ha(
    ves: Sequence[str],
    *,
    drbd: str = "none",
    cluster: str = "none",
    ha_map: Path | None = None,
    proc_root: Path = Path("/"),
    private_template: str = PRIVATE_TEMPLATE,
    run: Runner = run_command,
    local: str | None = None,
    haresources: Path = Path("/etc/ha.d/haresources"),
    timeout: float = 20.0,
) -> HaReport:
    """This node's HA report for the VEs ``ves`` (see the module docstring)."""
    if drbd not in DRBD_MODES:
        raise LbvmError(f"--drbd {drbd!r}: expected one of {', '.join(DRBD_MODES)}")
    if cluster not in CLUSTER_MODES:
        raise LbvmError(f"--cluster {cluster!r}: expected one of {', '.join(CLUSTER_MODES)}")
    mapping = read_map(ha_map) if ha_map is not None else {}
    d = DrbdProbe("absent", "not collected") if drbd == "none" else _drbd(
        drbd, run, proc_root, timeout)
    c = ClusterProbe("absent", "not collected") if cluster == "none" else _cluster(
        cluster, run, timeout, local or os.uname().nodename.split(".")[0], haresources)
    unmapped = [ve for ve in ves if ve not in mapping]
    if unmapped:
        mounts = read_text(Path(proc_root) / "proc/mounts")
        found = discover(unmapped, mounts, d.drbd, c.cluster, private_template)
        mapping.update({m.ve: m for m in found})
    return HaReport(
        drbd_status="none" if drbd == "none" else d.status,
        drbd_detail="" if drbd == "none" else d.detail,
        drbd=d.drbd,
        cluster_status="none" if cluster == "none" else c.status,
        cluster_detail="" if cluster == "none" else c.detail,
        cluster=c.cluster,
        ves=tuple(mapping[k] for k in sorted(mapping, key=_order)),
    )


def _order(ve: str) -> tuple[int, int, str]:
    return (0, int(ve), ve) if ve.isascii() and ve.isdigit() else (1, 0, ve)
