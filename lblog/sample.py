"""What one collection run on one node produces: typed rows, no parsing, no I/O.

Counters are raw and cumulative: the monitor derives rates, so the agent keeps no state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Beancounter row: held, maxheld, barrier, limit, failcnt (raw kernel units).
Beancounter = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class VeRow:
    """One VE as seen in one run.

    cpu_raw: cumulative CPU time of the VE in units of the sample's ``cpu_hz``
    (OpenVZ: user+nice+system jiffies from /proc/vz/vestat; cgroups: usec).
    mem_bytes: resident memory in bytes (OpenVZ physpages held x 4096).
    mem_limit_bytes: the VE's memory limit, None when unlimited.
    failcnt: sum of the beancounter failure counters (cumulative).
    """

    ve: str
    cpu_raw: int | None = None
    uptime: float | None = None
    mem_bytes: int | None = None
    mem_limit_bytes: int | None = None
    swap_bytes: int | None = None
    disk_bytes: int | None = None
    disk_limit_bytes: int | None = None
    failcnt: int | None = None
    beancounters: dict[str, Beancounter] = field(default_factory=dict)


@dataclass(frozen=True)
class NodeTotals:
    """Node-wide figures from /proc/stat, /proc/meminfo, /proc/loadavg (raw)."""

    cpus: int
    cpu_busy_raw: int  # cumulative non-idle jiffies, all CPUs
    cpu_idle_raw: int  # cumulative idle + iowait jiffies, all CPUs
    mem_total_bytes: int
    mem_available_bytes: int
    load1: float
    load5: float
    load15: float
    disk_total_bytes: int | None = None
    disk_free_bytes: int | None = None


@dataclass(frozen=True)
class Sample:
    """One node's collection run."""

    node: str
    time: float  # UTC epoch seconds by the node's own clock
    source: str  # "openvz", "cgroup1", "cgroup2"
    cpu_hz: int  # units of VeRow.cpu_raw per second
    jiffies_hz: int  # units of NodeTotals cpu_*_raw per second (USER_HZ)
    totals: NodeTotals
    ves: tuple[VeRow, ...]
