"""What one collection run on one node produces: typed rows, no parsing, no I/O.

Counters are raw and cumulative: the monitor derives rates, so the agent keeps no state.

The classes are ``Record``s: frozen value objects written out by hand instead of frozen
dataclasses, which cost the agent milliseconds on every cron run.
"""

from __future__ import annotations

from lblog.record import Record

# Beancounter row: held, maxheld, barrier, limit, failcnt (raw kernel units).
Beancounter = tuple[int, int, int, int, int]
_set = object.__setattr__


class VeRow(Record):
    """One VE as seen in one run.

    cpu_raw: cumulative CPU time of the VE in units of the sample's ``cpu_hz``
    (OpenVZ: user+nice+system jiffies from /proc/vz/vestat; cgroups: usec).
    mem_bytes: resident memory in bytes (OpenVZ physpages held x 4096).
    mem_limit_bytes: the VE's memory limit, None when unlimited.
    failcnt: sum of the beancounter failure counters (cumulative).
    beancounters: resource -> counters; a new empty dict when not given.
    """

    _fields = (
        "ve", "cpu_raw", "uptime", "mem_bytes", "mem_limit_bytes", "swap_bytes",
        "disk_bytes", "disk_limit_bytes", "failcnt", "beancounters",
    )  # fmt: skip
    __slots__ = _fields
    ve: str
    cpu_raw: int | None
    uptime: float | None
    mem_bytes: int | None
    mem_limit_bytes: int | None
    swap_bytes: int | None
    disk_bytes: int | None
    disk_limit_bytes: int | None
    failcnt: int | None
    beancounters: dict[str, Beancounter]

    def __init__(
        self,
        ve: str,
        cpu_raw: int | None = None,
        uptime: float | None = None,
        mem_bytes: int | None = None,
        mem_limit_bytes: int | None = None,
        swap_bytes: int | None = None,
        disk_bytes: int | None = None,
        disk_limit_bytes: int | None = None,
        failcnt: int | None = None,
        beancounters: dict[str, Beancounter] | None = None,
    ) -> None:
        _set(self, "ve", ve)
        _set(self, "cpu_raw", cpu_raw)
        _set(self, "uptime", uptime)
        _set(self, "mem_bytes", mem_bytes)
        _set(self, "mem_limit_bytes", mem_limit_bytes)
        _set(self, "swap_bytes", swap_bytes)
        _set(self, "disk_bytes", disk_bytes)
        _set(self, "disk_limit_bytes", disk_limit_bytes)
        _set(self, "failcnt", failcnt)
        _set(self, "beancounters", {} if beancounters is None else beancounters)


class NodeTotals(Record):
    """Node-wide figures from /proc/stat, /proc/meminfo, /proc/loadavg (raw).

    cpu_busy_raw: cumulative non-idle jiffies, all CPUs; cpu_idle_raw: cumulative idle +
    iowait jiffies, all CPUs.
    """

    _fields = (
        "cpus", "cpu_busy_raw", "cpu_idle_raw", "mem_total_bytes", "mem_available_bytes",
        "load1", "load5", "load15", "disk_total_bytes", "disk_free_bytes",
    )  # fmt: skip
    __slots__ = _fields
    cpus: int
    cpu_busy_raw: int
    cpu_idle_raw: int
    mem_total_bytes: int
    mem_available_bytes: int
    load1: float
    load5: float
    load15: float
    disk_total_bytes: int | None
    disk_free_bytes: int | None

    def __init__(
        self,
        cpus: int,
        cpu_busy_raw: int,
        cpu_idle_raw: int,
        mem_total_bytes: int,
        mem_available_bytes: int,
        load1: float,
        load5: float,
        load15: float,
        disk_total_bytes: int | None = None,
        disk_free_bytes: int | None = None,
    ) -> None:
        _set(self, "cpus", cpus)
        _set(self, "cpu_busy_raw", cpu_busy_raw)
        _set(self, "cpu_idle_raw", cpu_idle_raw)
        _set(self, "mem_total_bytes", mem_total_bytes)
        _set(self, "mem_available_bytes", mem_available_bytes)
        _set(self, "load1", load1)
        _set(self, "load5", load5)
        _set(self, "load15", load15)
        _set(self, "disk_total_bytes", disk_total_bytes)
        _set(self, "disk_free_bytes", disk_free_bytes)


class Sample(Record):
    """One node's collection run.

    time: UTC epoch seconds by the node's own clock; source: "openvz", "cgroup1",
    "cgroup2"; cpu_hz: units of VeRow.cpu_raw per second; jiffies_hz: units of NodeTotals
    cpu_*_raw per second (USER_HZ).
    """

    _fields: tuple[str, ...] = ("node", "time", "source", "cpu_hz", "jiffies_hz", "totals", "ves")
    __slots__ = _fields
    node: str
    time: float
    source: str
    cpu_hz: int
    jiffies_hz: int
    totals: NodeTotals
    ves: tuple[VeRow, ...]

    def __init__(
        self,
        node: str,
        time: float,
        source: str,
        cpu_hz: int,
        jiffies_hz: int,
        totals: NodeTotals,
        ves: tuple[VeRow, ...],
    ) -> None:
        _set(self, "node", node)
        _set(self, "time", time)
        _set(self, "source", source)
        _set(self, "cpu_hz", cpu_hz)
        _set(self, "jiffies_hz", jiffies_hz)
        _set(self, "totals", totals)
        _set(self, "ves", ves)
