"""Node-wide totals: /proc/stat, /proc/meminfo, /proc/loadavg and the VE filesystem.

The three parsers are pure functions of (text, path); ``read_totals`` reads the files under
a ``proc_root`` (``/`` on a live node, a fake tree in tests) and builds ``NodeTotals``.
"""

from __future__ import annotations

import os
from collections import namedtuple

from lblog.errors import ParseError
from lblog.procfile import read_text, uint, uints
from lblog.sample import NodeTotals

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lblog.procfile import StrPath


class CpuTotals(namedtuple("CpuTotals", "cpus busy idle")):
    """The ``cpu`` line of /proc/stat summed into busy and idle, in USER_HZ jiffies.

    A collections named tuple: typing.NamedTuple would import typing on every cron run.
    """

    __slots__ = ()
    cpus: int
    busy: int  # user + nice + system + irq + softirq + steal (guest is inside user/nice)
    idle: int  # idle + iowait


def parse_stat(text: str, path: str) -> CpuTotals:
    """``/proc/stat``: the aggregate ``cpu`` line and the number of ``cpuN`` lines."""
    total: tuple[int, ...] | None = None
    cpus = 0
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.startswith("cpu"):
            continue
        parts = line.split()
        name = parts[0]
        if name == "cpu":
            if total is not None:
                raise ParseError(path, lineno, "second aggregate 'cpu' line")
            if len(parts) < 5:
                raise ParseError(path, lineno, f"'cpu' line has {len(parts) - 1} values, not 4+")
            total = uints(parts[1:], path, lineno, "cpu")
        elif name[3:].isdigit():
            cpus += 1
        else:
            raise ParseError(path, lineno, f"unexpected line starting {name[:40]!r}")
    if total is None:
        raise ParseError(path, None, "no aggregate 'cpu' line")
    if cpus == 0:
        raise ParseError(path, None, "no 'cpuN' lines")
    padded = total + (0,) * (8 - len(total))
    user, nice, system, idle, iowait, irq, softirq, steal = padded[:8]
    return CpuTotals(cpus, user + nice + system + irq + softirq + steal, idle + iowait)


def parse_meminfo(text: str, path: str) -> tuple[int, int]:
    """``/proc/meminfo``: (MemTotal, MemAvailable) in bytes.

    Kernels before 3.14 (and RHEL 6 before 6.6) lack MemAvailable; MemFree + Buffers +
    Cached stands in for it there.
    """
    wanted = ("MemTotal:", "MemAvailable:", "MemFree:", "Buffers:", "Cached:")
    found: dict[str, int] = {}
    for lineno, line in enumerate(text.split("\n"), 1):
        parts = line.split()
        if not parts or parts[0] not in wanted:
            continue
        if len(parts) != 3 or parts[2] != "kB":
            raise ParseError(path, lineno, f"expected '{parts[0]} <n> kB'")
        if parts[0] in found:
            raise ParseError(path, lineno, f"{parts[0]} appears twice")
        found[parts[0]] = uint(parts[1], path, lineno, parts[0]) * 1024
    if "MemTotal:" not in found:
        raise ParseError(path, None, "no MemTotal line")
    if "MemAvailable:" in found:
        return found["MemTotal:"], found["MemAvailable:"]
    if "MemFree:" not in found:
        raise ParseError(path, None, "neither MemAvailable nor MemFree")
    legacy = found["MemFree:"] + found.get("Buffers:", 0) + found.get("Cached:", 0)
    return found["MemTotal:"], legacy


def parse_loadavg(text: str, path: str) -> tuple[float, float, float]:
    """``/proc/loadavg``: the 1, 5 and 15 minute load averages."""
    parts = text.split()
    if len(parts) != 5:
        raise ParseError(path, 1, f"expected 5 fields, found {len(parts)}")
    loads = []
    for token in parts[:3]:
        try:
            value = float(token)
        except ValueError:
            raise ParseError(path, 1, f"load {token[:40]!r} is not a number") from None
        if not 0 <= value < 1e9:  # also rejects nan and inf
            raise ParseError(path, 1, f"load {token[:40]!r} is out of range")
        loads.append(value)
    return loads[0], loads[1], loads[2]


def disk_space(path: StrPath | None) -> tuple[int | None, int | None]:
    """(total, free) bytes of the filesystem holding ``path``; (None, None) when absent.

    Free counts the blocks available to unprivileged users (``f_bavail``), the space VEs
    can really grow into.
    """
    if path is None:
        return None, None
    try:
        st = os.statvfs(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, None
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def read_totals(proc_root: StrPath, private_path: StrPath | None) -> NodeTotals:
    """NodeTotals from ``proc_root``/proc and the filesystem of ``private_path``."""
    proc = os.path.join(proc_root, "proc")
    stat, meminfo, loadavg = (os.path.join(proc, n) for n in ("stat", "meminfo", "loadavg"))
    cpu = parse_stat(_need(stat), stat)
    mem_total, mem_available = parse_meminfo(_need(meminfo), meminfo)
    load1, load5, load15 = parse_loadavg(_need(loadavg), loadavg)
    disk_total, disk_free = disk_space(private_path)
    return NodeTotals(
        cpus=cpu.cpus,
        cpu_busy_raw=cpu.busy,
        cpu_idle_raw=cpu.idle,
        mem_total_bytes=mem_total,
        mem_available_bytes=mem_available,
        load1=load1,
        load5=load5,
        load15=load15,
        disk_total_bytes=disk_total,
        disk_free_bytes=disk_free,
    )


def _need(path: str) -> str:
    text = read_text(path)
    if text is None:
        raise ParseError(path, None, "file is missing")
    return text
