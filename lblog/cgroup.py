"""Collector for containers accounted by cgroups (LXC, Incus/LXD, nspawn, OpenVZ 7).

``detect`` says which cgroup layout a node has; ``collect`` turns every cgroup matching a
glob into one ``VeRow`` with raw cumulative counters. ``read`` returns the fuller
``CgroupStats`` (I/O and pressure too) for callers that want more than ``VeRow`` holds.

All paths hang off ``sys_root`` so tests point the collector at a fake tree. A cgroup that
disappears while being read (its container stopped) is skipped and logged at debug level;
a file with garbage raises ``ParseError`` naming the file and line.
"""

from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TypeVar

from lblog import cgroup_parse as parse
from lblog.errors import LbvmError, ParseError
from lblog.sample import VeRow

log = logging.getLogger(__name__)

CGROUP_ROOT = PurePosixPath("sys/fs/cgroup")
CPUACCT_DIRS = ("cpuacct", "cpu,cpuacct", "cpuacct,cpu")
# v1 shows "no limit" as PAGE_COUNTER_MAX pages in bytes (9223372036854771712 on 64-bit);
# no real limit comes near 2**62 bytes.
V1_UNLIMITED = 2**62
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})")
_GONE_ERRNOS = (errno.ENOENT, errno.ENODEV, errno.ESRCH)
T = TypeVar("T")


class CgroupError(LbvmError):
    """The cgroup tree or the pattern cannot be used as asked."""


class _Gone(Exception):
    """The cgroup was removed while we read it."""


@dataclass(frozen=True)
class CgroupStats:
    """Everything read for one VE cgroup; ``row()`` keeps what fits in a ``VeRow``.

    cpu_usec: cumulative CPU time; cpu_limit_cores: v2 cpu.max quota/period (None: none).
    mem_current: charged memory including page cache;
    mem_inactive_file: the reclaimable part of that cache. oom_events / max_events (v2)
    and failcnt (v1) count hits on the memory limit. Pressure is v2 only.
    """

    ve: str
    cgroup: str
    version: int
    cpu_usec: int | None = None
    cpu_limit_cores: float | None = None
    mem_current: int | None = None
    mem_inactive_file: int | None = None
    mem_limit: int | None = None
    swap_bytes: int | None = None
    failcnt: int | None = None
    oom_events: int | None = None
    max_events: int | None = None
    io: parse.IoCounters | None = None
    cpu_pressure: parse.Pressure | None = None
    memory_pressure: parse.Pressure | None = None
    io_pressure: parse.Pressure | None = None

    @property
    def mem_bytes(self) -> int | None:
        """Charged memory minus inactive page cache, which the kernel drops under pressure.

        Both v1 and v2 charge a container's page cache to it; counting the inactive file
        cache would make a container that once read big files look large for ever.
        Clamped at 0 because v1 usage is batched per CPU and can lag memory.stat.
        """
        if self.mem_current is None:
            return None
        return max(0, self.mem_current - (self.mem_inactive_file or 0))

    def row(self) -> VeRow:
        return VeRow(
            ve=self.ve,
            cpu_raw=self.cpu_usec,
            mem_bytes=self.mem_bytes,
            mem_limit_bytes=self.mem_limit,
            swap_bytes=self.swap_bytes,
            failcnt=self.failcnt,
        )


def detect(sys_root: Path) -> int | None:
    """2 for a unified (v2) tree, 1 for v1 with cpuacct and memory mounted, else None.

    A hybrid node (v1 controllers plus a v2 tree at ``sys/fs/cgroup/unified``) is 1:
    the controllers that account CPU and memory are the v1 ones there.
    """
    root = Path(sys_root) / CGROUP_ROOT
    if (root / "cgroup.controllers").is_file():
        return 2
    if _cpuacct_root(root) is not None and (root / "memory").is_dir():
        return 1
    return None


def collect(sys_root: Path, version: int, pattern: str) -> list[VeRow]:
    """One ``VeRow`` per cgroup matching ``pattern``, sorted by VE id.

    ``pattern`` is a glob relative to the cgroup root (``machine.slice/*``,
    ``lxc.payload.*``). cpu_raw is in microseconds (the sample's cpu_hz is 1_000_000).
    v1: cpuacct.usage // 1000, memory.usage_in_bytes minus total_inactive_file,
    memory.limit_in_bytes (None when unlimited), memory.failcnt.
    v2: cpu.stat usage_usec, memory.current minus inactive_file, memory.max (None for
    "max"), failcnt = memory.events ``oom`` + ``max`` (times the limit forced an OOM or
    was hit and reclaim ran), both hierarchical so a container's sub-cgroups count.
    VeRow has no field for block I/O, CPU quota or pressure: ``read`` returns those.
    """
    return [stats.row() for stats in read(sys_root, version, pattern, detail=False)]


def read(sys_root: Path, version: int, pattern: str, detail: bool = True) -> list[CgroupStats]:
    """``CgroupStats`` of every VE cgroup matching ``pattern``, sorted by VE id.

    ``detail=False`` skips the files ``VeRow`` has no field for (I/O, cpu.max, pressure):
    a node's collection run then reads 5 files per VE instead of 10.
    """
    root = Path(sys_root) / CGROUP_ROOT
    _check_pattern(pattern)
    if version == 2:
        return _read_all(
            _matches(root, pattern), lambda rel: _read_v2(f"{root}/{rel}", rel, detail)
        )
    if version == 1:
        cpu_root = _cpuacct_root(root)
        mem_root = root / "memory"
        if cpu_root is None or not mem_root.is_dir():
            raise CgroupError(f"{root}: no cgroup v1 cpuacct and memory hierarchies")
        blk_root = root / "blkio"
        in_cpu, in_mem = _matches(cpu_root, pattern), _matches(mem_root, pattern)
        return _read_all(
            in_cpu | in_mem,
            lambda rel: _read_v1(
                f"{cpu_root}/{rel}" if rel in in_cpu else None,
                f"{mem_root}/{rel}" if rel in in_mem else None,
                f"{blk_root}/{rel}" if detail else None,
                rel,
            ),
        )
    raise CgroupError(f"unknown cgroup version {version!r}: expected 1 or 2")


def ve_name(component: str) -> str:
    """VE id from a cgroup's last path component, container-manager wrappers removed.

    ``machine-<name>.scope`` (systemd-machined: nspawn, libvirt) gives ``<name>`` with
    systemd's ``\\xNN`` escapes undone; ``lxc.payload.<name>`` (LXC 4+, Incus) gives
    ``<name>``; anything else (OpenVZ 7 CTIDs, ``lxc/<name>``) is kept as it is.
    """
    name = component
    if name.startswith("machine-") and name.endswith(".scope") and len(name) > 14:
        name = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name[8:-6])
    elif name.startswith("lxc.payload.") and len(name) > 12:
        name = name[12:]
    return name


def _cpuacct_root(root: Path) -> Path | None:
    for name in CPUACCT_DIRS:
        if (root / name).is_dir():
            return root / name
    return None


def _check_pattern(pattern: str) -> None:
    parts = PurePosixPath(pattern).parts
    if not pattern or pattern.startswith("/") or ".." in parts or not parts:
        raise CgroupError(f"cgroup pattern {pattern!r}: must be a glob relative to the root")


def _matches(root: Path, pattern: str) -> set[PurePosixPath]:
    """Relative paths of the cgroup directories under ``root`` matching ``pattern``."""
    found: set[PurePosixPath] = set()
    for path in root.glob(pattern):
        if path.is_dir():
            found.add(PurePosixPath(path.relative_to(root).as_posix()))
    return found


def _read_all(
    found: set[PurePosixPath], reader: Callable[[PurePosixPath], CgroupStats]
) -> list[CgroupStats]:
    stats: dict[str, CgroupStats] = {}
    for rel in sorted(found):
        try:
            one = reader(rel)
        except _Gone as gone:
            log.debug("cgroup %s vanished while read (%s); skipped", rel, gone)
            continue
        if one.ve in stats:
            raise CgroupError(
                f"cgroups {stats[one.ve].cgroup} and {one.cgroup} both name VE {one.ve!r}; "
                "narrow the pattern"
            )
        stats[one.ve] = one
    if not found:
        log.debug("no cgroup matched")
    return [stats[ve] for ve in sorted(stats)]


def _read_text(directory: str, name: str) -> str | None:
    """The file's text; None if the file is absent but the cgroup still exists.

    A missing directory, or ENODEV/ESRCH while reading, means the cgroup is going away.
    Plain ``os`` calls on string paths: this runs for every file of every VE.
    """
    path = f"{directory}/{name}"
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        if exc.errno not in _GONE_ERRNOS:
            raise CgroupError(f"{path}: cannot read ({exc.strerror})") from exc
        if exc.errno == errno.ENOENT and os.path.isdir(directory):
            return None
        raise _Gone(f"{path}: {exc.strerror}") from None
    return parse.decode(b"".join(chunks), path)


def _read_v2(d: str, rel: PurePosixPath, detail: bool) -> CgroupStats:
    cpu = _optional(d, "cpu.stat", parse.flat_keyed)
    mem = _optional(d, "memory.stat", parse.flat_keyed) or {}
    events = _optional(d, "memory.events", parse.flat_keyed)
    oom = max_ = failcnt = None
    if events is not None:
        oom = _need(events, "oom", d, "memory.events")
        max_ = _need(events, "max", d, "memory.events")
        failcnt = oom + max_
    stats = CgroupStats(
        ve=ve_name(rel.name),
        cgroup=str(rel),
        version=2,
        cpu_usec=None if cpu is None else _need(cpu, "usage_usec", d, "cpu.stat"),
        mem_current=_optional(d, "memory.current", parse.single_int),
        mem_inactive_file=mem.get("inactive_file"),
        mem_limit=_optional(d, "memory.max", parse.int_or_max),
        swap_bytes=_optional(d, "memory.swap.current", parse.single_int),
        failcnt=failcnt,
        oom_events=oom,
        max_events=max_,
    )
    if not detail:
        return stats
    return replace(
        stats,
        cpu_limit_cores=_optional(d, "cpu.max", parse.cpu_max),
        io=_optional(d, "io.stat", parse.io_stat),
        cpu_pressure=_optional(d, "cpu.pressure", parse.pressure),
        memory_pressure=_optional(d, "memory.pressure", parse.pressure),
        io_pressure=_optional(d, "io.pressure", parse.pressure),
    )


def _read_v1(
    cpu_dir: str | None, mem_dir: str | None, blk_dir: str | None, rel: PurePosixPath
) -> CgroupStats:
    """A v1 VE lives in one directory per hierarchy; one it is absent from gives None."""
    cpu_ns = limit = usage = failcnt = None
    mem: dict[str, int] = {}
    if cpu_dir is not None:
        cpu_ns = _optional(cpu_dir, "cpuacct.usage", parse.single_int)
    else:
        log.debug("cgroup %s has no cpuacct directory", rel)
    if mem_dir is not None:
        mem = _optional(mem_dir, "memory.stat", parse.flat_keyed) or {}
        usage = _optional(mem_dir, "memory.usage_in_bytes", parse.single_int)
        limit = _optional(mem_dir, "memory.limit_in_bytes", parse.single_int)
        failcnt = _optional(mem_dir, "memory.failcnt", parse.single_int)
    else:
        log.debug("cgroup %s has no memory directory", rel)
    io = None
    if blk_dir is not None and os.path.isdir(blk_dir):
        # _recursive includes the container's own sub-cgroups; older kernels lack it.
        io = _optional(blk_dir, "blkio.throttle.io_service_bytes_recursive", parse.blkio_bytes)
        if io is None:
            io = _optional(blk_dir, "blkio.throttle.io_service_bytes", parse.blkio_bytes)
    return CgroupStats(
        ve=ve_name(rel.name),
        cgroup=str(rel),
        version=1,
        cpu_usec=None if cpu_ns is None else cpu_ns // 1000,
        mem_current=usage,
        mem_inactive_file=mem.get("total_inactive_file", mem.get("inactive_file")),
        mem_limit=None if limit is None or limit >= V1_UNLIMITED else limit,
        swap_bytes=mem.get("total_swap"),
        failcnt=failcnt,
        io=io,
    )


def _optional(directory: str, name: str, parser: Callable[[str, str], T]) -> T | None:
    """Parse ``directory/name`` if the cgroup has that file (its controller is enabled)."""
    text = _read_text(directory, name)
    return None if text is None else parser(text, f"{directory}/{name}")


def _need(values: dict[str, int], key: str, directory: str, name: str) -> int:
    if key not in values:
        raise ParseError(f"{directory}/{name}", None, f"key {key!r} missing")
    return values[key]
