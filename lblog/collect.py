"""One collection run: read a node's VEs and totals into a ``Sample``.

OpenVZ: beancounters (``/proc/bc/resources``, else ``/proc/user_beancounters``) joined with
``/proc/vz/vestat`` and the disk quota (``/proc/vz/vzquota``, else ``vzlist -j``). Only VEs
in the beancounters count; a VE that vanished from vestat between the two reads gets
``cpu_raw`` None rather than failing the run. cgroup nodes go to ``lblog.cgroup``.
"""

from __future__ import annotations

import os
import time
from operator import itemgetter

from lblog import openvz
from lblog.errors import LbvmError, ParseError
from lblog.lazylog import get_logger
from lblog.nodeinfo import read_totals
from lblog.procfile import read_text
from lblog.sample import Beancounter, Sample, VeRow

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from lblog.procfile import StrPath

    # Runs argv with a timeout and returns its stdout; raises OSError or
    # subprocess.SubprocessError when the command is missing, fails or times out.
    Runner = Callable[[Sequence[str], float], str]

log = get_logger(__name__)

SOURCES = ("openvz", "cgroup1", "cgroup2", "auto")
# Every OpenVZ kernel (RHEL 5/6/7 based) is built with HZ=1000; vestat counts in those.
DEFAULT_KERNEL_HZ = 1000
CGROUP_HZ = 1_000_000  # cgroup CPU counters are read in microseconds
# Where containers live, tried in order when no --ve-glob is given: systemd machines
# (OpenVZ 7, libvirt, nspawn), LXC 4+/Incus payloads, older LXC.
DEFAULT_CGROUP_GLOBS = ("machine.slice/*", "lxc.payload.*", "lxc/*")
VZLIST_ARGV = ("vzlist", "-j", "-o", "ctid,diskspace")
VZLIST_TIMEOUT = 30.0
_FAILCNT = itemgetter(4)


class CollectError(LbvmError):
    """The node cannot be collected as asked (unknown source, no OpenVZ and no cgroups)."""


def run_command(argv: Sequence[str], timeout: float) -> str:
    """The default Runner: argv list (never a shell), timeout, stdout as text."""
    import subprocess

    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=True)
    return done.stdout


def user_hz() -> int:
    """USER_HZ: the unit of /proc/stat (``getconf CLK_TCK``, 100 on Linux)."""
    return int(os.sysconf("SC_CLK_TCK"))


def kernel_hz(proc_root: StrPath) -> int:
    """CONFIG_HZ of the kernel behind ``proc_root``: the unit of vestat's counters.

    Read from ``<root>/boot/config-<osrelease>``; DEFAULT_KERNEL_HZ when that is absent.
    """
    release = read_text(os.path.join(proc_root, "proc/sys/kernel/osrelease"))
    if release and "/" not in release.strip():
        config = read_text(os.path.join(proc_root, "boot", f"config-{release.strip()}"))
        for line in (config or "").split("\n"):
            if line.startswith("CONFIG_HZ="):
                value = line[10:].strip()
                if value.isascii() and value.isdigit() and int(value) > 0:
                    return int(value)
    return DEFAULT_KERNEL_HZ


def collect(
    proc_root: StrPath,
    node: str,
    *,
    now: float | None = None,
    source: str = "openvz",
    sys_root: StrPath = "/",
    ve_glob: str | None = None,
    private_path: StrPath | None = "/vz",
    cpu_hz: int | None = None,
    vzlist: Runner | None = None,
) -> Sample:
    """Read one Sample of node ``node``.

    ``proc_root``: the root holding ``proc/`` (``/`` live). ``source``: openvz, cgroup1,
    cgroup2 or auto (openvz when beancounters exist, else the cgroup layout of
    ``sys_root``). ``private_path``: where VE private areas live, for the node's disk
    totals (None: skip). ``cpu_hz``: the unit of vestat's CPU counters (default: the
    kernel's CONFIG_HZ, see ``kernel_hz``). ``vzlist``: runs ``vzlist -j`` for VEs
    without /proc/vz/vzquota lines (ploop); None skips it, as on a fake /proc.
    """
    if source not in SOURCES:
        raise CollectError(f"unknown source {source!r}: expected one of {', '.join(SOURCES)}")
    proc_root = os.fspath(proc_root)
    if source == "auto":
        source = detect_source(proc_root, sys_root)
    if source == "openvz":
        hz = cpu_hz if cpu_hz is not None else kernel_hz(proc_root)
        rows = collect_openvz(proc_root, hz, vzlist)
    else:
        hz = CGROUP_HZ
        rows = _collect_cgroup(sys_root, 1 if source == "cgroup1" else 2, ve_glob)
    totals = read_totals(proc_root, private_path)
    return Sample(
        node=node,
        time=time.time() if now is None else now,
        source=source,
        cpu_hz=hz,
        jiffies_hz=user_hz(),
        totals=totals,
        ves=tuple(rows),
    )


def detect_source(proc_root: StrPath, sys_root: StrPath) -> str:
    """openvz when beancounters exist under ``proc_root``, else cgroup1/cgroup2."""
    proc = os.path.join(proc_root, "proc")
    if any(os.path.exists(os.path.join(proc, n)) for n in ("bc/resources", "user_beancounters")):
        return "openvz"
    from pathlib import Path

    from lblog import cgroup

    version = cgroup.detect(Path(sys_root))
    if version is None:
        raise CollectError(
            f"no OpenVZ beancounters under {proc} and no cgroup tree under {sys_root}"
        )
    return f"cgroup{version}"


def collect_openvz(proc_root: StrPath, hz: int, vzlist: Runner | None = None) -> list[VeRow]:
    """VeRows of an OpenVZ node, sorted by VE id (numeric ids in numeric order)."""
    proc = os.path.join(proc_root, "proc")
    bc_path = os.path.join(proc, "bc/resources")
    text = read_text(bc_path)
    if text is None:
        bc_path = os.path.join(proc, "user_beancounters")
        text = read_text(bc_path)
    if text is None:
        raise CollectError(f"not an OpenVZ node: no {proc}/bc/resources or user_beancounters")
    beancounters = openvz.parse_beancounters(text, bc_path)

    vestat_path = os.path.join(proc, "vz/vestat")
    text = read_text(vestat_path)
    if text is None:
        raise ParseError(vestat_path, None, "file is missing (vzmon module not loaded?)")
    stats = openvz.parse_vestat(text, vestat_path)

    quotas = _quotas(proc, beancounters.keys(), vzlist)
    rows = [
        _row(ve, bc, stats.get(ve), quotas.get(ve), hz)
        for ve, bc in sorted(beancounters.items(), key=_ve_order)
    ]
    gone = len(beancounters) - sum(1 for row in rows if row.cpu_raw is not None)
    if gone:
        log.debug("%d VE(s) in the beancounters have no vestat row (stopping?)", gone)
    return rows


def _row(
    ve: str,
    bc: dict[str, Beancounter],
    stat: openvz.VeStat | None,
    quota: openvz.Quota | None,
    hz: int,
) -> VeRow:
    page = openvz.PAGE_SIZE
    phys = bc.get("physpages")
    priv = bc.get("privvmpages")
    swap = bc.get("swappages")
    if phys is not None and openvz.finite(phys[3]):
        limit: int | None = phys[3] * page
    elif priv is not None and openvz.finite(priv[3]):
        limit = priv[3] * page
    else:
        limit = None
    return VeRow(
        ve=ve,
        cpu_raw=stat.user + stat.nice + stat.system if stat is not None else None,
        uptime=stat.uptime / hz if stat is not None else None,
        mem_bytes=phys[0] * page if phys is not None else None,
        mem_limit_bytes=limit,
        swap_bytes=swap[0] * page if swap is not None else None,
        disk_bytes=quota.used_bytes if quota is not None else None,
        disk_limit_bytes=quota.limit_bytes if quota is not None else None,
        failcnt=sum(map(_FAILCNT, bc.values())),
        beancounters=bc,
    )


def _quotas(proc: str, ves: Iterable[str], vzlist: Runner | None) -> dict[str, openvz.Quota]:
    """Disk quotas from /proc/vz/vzquota, completed by ``vzlist -j`` for VEs it lacks."""
    path = os.path.join(proc, "vz/vzquota")
    text = read_text(path)
    quotas = openvz.parse_vzquota(text, path) if text is not None else {}
    missing = [ve for ve in ves if ve not in quotas]
    if not missing or vzlist is None:
        return quotas
    import subprocess

    try:
        out = vzlist(VZLIST_ARGV, VZLIST_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning(
            "disk usage of %d VE(s) unknown: %s failed: %s", len(missing), VZLIST_ARGV[0], exc
        )
        return quotas
    listed = openvz.parse_vzlist_json(out, " ".join(VZLIST_ARGV))
    for ve in missing:
        if ve in listed:
            quotas[ve] = listed[ve]
    return quotas


def _collect_cgroup(sys_root: StrPath, version: int, ve_glob: str | None) -> list[VeRow]:
    from pathlib import Path

    from lblog import cgroup

    root = Path(sys_root)
    if ve_glob is not None:
        return cgroup.collect(root, version, ve_glob)
    for pattern in DEFAULT_CGROUP_GLOBS:
        rows = cgroup.collect(root, version, pattern)
        if rows:
            return rows
    log.warning(
        "no container cgroups match %s under %s; pass --ve-glob",
        " or ".join(DEFAULT_CGROUP_GLOBS),
        sys_root,
    )
    return []


def _ve_order(item: tuple[str, object]) -> tuple[int, int, str]:
    ve = item[0]
    if ve.isascii() and ve.isdigit():
        return 0, int(ve), ve
    return 1, 0, ve
