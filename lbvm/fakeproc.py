"""A fake OpenVZ /proc tree, written the way the kernel writes it (demo and benchmarks).

``write_node`` lays out ``<root>/proc/user_beancounters`` (Version 2.5, 64- or 32-bit
widths, ``dummy`` rows, the host as uid 0), ``proc/vz/vestat`` (Version 2.2),
``proc/vz/veinfo``, ``proc/vz/vzquota`` (for VEs given a disk size), ``proc/stat``,
``proc/meminfo`` and ``proc/loadavg``. ``lblog collect --proc-root <root>`` reads it back.

Units: ``FakeVe.cpu_jiffies`` counts kernel jiffies at ``HZ`` (what vestat shows, and what
the agent assumes when the root has no ``boot/config-*``); node jiffies are USER_HZ.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HZ = 1000  # CONFIG_HZ of every OpenVZ kernel
PAGE = 4096
CYCLES_PER_SECOND = 2_000_000_000  # a 2 GHz TSC, for vestat's cycle columns
LONG_MAX = {64: 9223372036854775807, 32: 2147483647}
# Resource order of /proc/user_beancounters (UB_* numbering, dummy slots included).
RESOURCES = (
    "kmemsize", "lockedpages", "privvmpages", "shmpages", "dummy", "numproc", "physpages",
    "vmguarpages", "oomguarpages", "numtcpsock", "numflock", "numpty", "numsiginfo",
    "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "numothersock", "dcachesize",
    "numfile", "dummy", "dummy", "dummy", "numiptent",
)  # fmt: skip
VESTAT_COLUMNS = (
    "VEID", "user", "nice", "system", "uptime", "idle", "strv", "uptime", "used",
    "maxlat", "totlat", "numsched",
)  # fmt: skip


@dataclass(frozen=True)
class FakeVe:
    """One running VE. cpu_jiffies: cumulative user+nice+system at HZ; mem_bytes: resident
    (physpages held); mem_limit_bytes: None for unlimited; failcnt: cumulative failures;
    disk_bytes / disk_limit_bytes: quota usage and hard limit (None: no quota line)."""

    ve: str
    cpu_jiffies: int
    uptime_s: float
    mem_bytes: int
    mem_limit_bytes: int | None
    failcnt: int = 0
    disk_bytes: int | None = None
    disk_limit_bytes: int | None = None


Row = tuple[str, int, int, int, int, int]  # resource, held, maxheld, barrier, limit, failcnt


def write_node(
    root: Path,
    *,
    ves: Sequence[FakeVe],
    cpus: int,
    mem_bytes: int,
    busy_jiffies: int,
    idle_jiffies: int,
    load: tuple[float, float, float],
    bits: int = 64,
    mem_available_bytes: int | None = None,
    drbd: Sequence[tuple[str, str]] | None = None,
) -> None:
    """Write the fake /proc tree of one node under ``root`` (files replaced atomically);
    with ``drbd`` (local, peer role per minor) a healthy DRBD 8 ``/proc/drbd`` too."""
    if bits not in LONG_MAX:
        raise ValueError(f"bits must be 32 or 64, not {bits}")
    if cpus < 1:
        raise ValueError(f"cpus must be at least 1, not {cpus}")
    proc = Path(root) / "proc"
    (proc / "vz").mkdir(parents=True, exist_ok=True)
    blocks = [(ve.ve, _ve_rows(ve, bits)) for ve in ves]
    blocks.append(("0", _host_rows(ves, bits)))
    if mem_available_bytes is None:
        mem_available_bytes = max(0, mem_bytes - sum(ve.mem_bytes for ve in ves) - 2**29)
    _write(proc / "user_beancounters", format_beancounters(blocks, bits))
    _write(proc / "vz/vestat", format_vestat([vestat_values(ve) for ve in ves], bits))
    _write(proc / "vz/veinfo", format_veinfo(ves))
    _write(proc / "vz/vzquota", format_vzquota(ves))
    _write(proc / "stat", format_stat(cpus, busy_jiffies, idle_jiffies, len(ves)))
    _write(proc / "meminfo", format_meminfo(mem_bytes, mem_available_bytes))
    _write(proc / "loadavg", format_loadavg(load, len(ves)))
    if drbd is not None:
        _write(proc / "drbd", format_proc_drbd(drbd))


def format_proc_drbd(roles: Sequence[tuple[str, str]]) -> str:
    """DRBD 8.4 ``/proc/drbd`` with one Connected, UpToDate/UpToDate minor per (local role,
    peer role), laid out as the kernel module prints it."""
    out = ["version: 8.4.11 (api:1/proto:86-101)",
           "srcversion: 4F5F1B5D7A8E2C2A6C3B9A1"]
    for minor, (role, peer) in enumerate(roles):
        out.append(f"{minor:2d}: cs:Connected ro:{role}/{peer} ds:UpToDate/UpToDate C r-----")
        out.append("    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0")
    return "\n".join(out) + "\n"


def format_beancounters(blocks: Sequence[tuple[str, Sequence[Row]]], bits: int = 64) -> str:
    """``/proc/user_beancounters`` text: ``%10s  %-12s`` then five ``%20lu`` (``%10lu`` on
    32-bit), the uid with its colon on a block's first row only."""
    w = 20 if bits == 64 else 10
    out = ["Version: 2.5"]
    names = ("held", "maxheld", "barrier", "limit", "failcnt")
    out.append(f"{'uid':>10}  {'resource':<12} " + " ".join(f"{n:>{w}}" for n in names))
    for uid, rows in blocks:
        for i, (name, *values) in enumerate(rows):
            head = f"{uid}:" if i == 0 else ""
            out.append(f"{head:>10}  {name:<12} " + " ".join(f"{v:>{w}}" for v in values))
    return "\n".join(out) + "\n"


def vestat_values(ve: FakeVe) -> tuple[str, ...]:
    """The 12 vestat columns of ``ve`` as the kernel computes them (cycles at 2 GHz)."""
    user = ve.cpu_jiffies * 3 // 4
    system = ve.cpu_jiffies - user
    uptime_j = round(ve.uptime_s * HZ)
    uptime_c = round(ve.uptime_s * CYCLES_PER_SECOND)
    used_c = ve.cpu_jiffies * (CYCLES_PER_SECOND // HZ)
    idle_c = max(0, uptime_c - used_c)
    numsched = ve.cpu_jiffies * 7 + 1
    values = (user, 0, system, uptime_j, idle_c, 0, uptime_c, used_c, 4000, numsched * 40,
              numsched)  # fmt: skip
    return (ve.ve, *(str(v) for v in values))


def format_vestat(rows: Sequence[Sequence[str]], bits: int = 64) -> str:
    """``/proc/vz/vestat`` text: a ``Version: 2.2`` line padded to the line width, the
    header, then ``%10`` x5 and ``%20`` x6 columns (``%20`` everywhere on 64-bit)."""
    widths = [20] * 12 if bits == 64 else [10] * 5 + [20] * 6 + [10]
    line_width = sum(widths) + len(widths) - 1
    out = [f"{'Version: 2.2':<{line_width}}"]
    for row in (VESTAT_COLUMNS, *rows):
        out.append(" ".join(f"{v:>{w}}" for v, w in zip(row, widths, strict=True)))
    return "\n".join(out) + "\n"


def format_veinfo(ves: Sequence[FakeVe]) -> str:
    """``/proc/vz/veinfo``: ``%10s %5u %5u`` (id, class, processes) and `` %15s`` per IP;
    the host last with class 0."""
    out = []
    for i, ve in enumerate(ves):
        ip = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        out.append(f"{ve.ve:>10} {2:>5} {_numproc(ve):>5} {ip:>15}")
    out.append(f"{'0':>10} {0:>5} {100 + len(ves):>5}")
    return "\n".join(out) + "\n"


def format_vzquota(ves: Sequence[FakeVe]) -> str:
    """``/proc/vz/vzquota``: header, then per quota ``<id>: <path>`` and two stat lines."""
    cols = ("usage", "softlimit", "hardlimit", "time", "expire")
    widths = (15, 15, 15, 11, 11)
    out = [f"{'qid: path':<11}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths, strict=True))]
    for ve in ves:
        if ve.disk_bytes is None:
            continue
        hard = ve.disk_limit_bytes or 0  # 0: no limit, as in Linux disk quotas
        inodes = ve.disk_bytes // 16384 + 1000
        out.append(f"{ve.ve}: /vz/private/{ve.ve}")
        blocks = (ve.disk_bytes >> 10, hard >> 10, hard >> 10, 0, 0)
        out.append(
            f"{'1k-blocks':>11}" + "".join(f"{v:>{w}}" for v, w in zip(blocks, widths, strict=True))
        )
        files = (inodes, 200000, 220000, 0, 0)
        out.append(
            f"{'inodes':>11}" + "".join(f"{v:>{w}}" for v, w in zip(files, widths, strict=True))
        )
    return "\n".join(out) + "\n"


def format_stat(cpus: int, busy: int, idle: int, nves: int = 0) -> str:
    """``/proc/stat``: the ``cpu`` line, one ``cpuN`` line per CPU, then the counters."""
    user = busy * 7 // 10
    system = busy - user
    total = (user, 0, system, idle, 0, 0, 0, 0, 0, 0)
    out = ["cpu  " + " ".join(map(str, total))]
    for n in range(cpus):
        out.append(f"cpu{n} " + " ".join(str(_share(v, cpus, n)) for v in total))
    intr = busy * 3 + 17
    out += [
        f"intr {intr} 0 9 0 0 0 0 0 0 1 0 0 0 156 0 0 0",
        f"ctxt {busy * 11 + 5}",
        "btime 1700000000",
        f"processes {nves * 40 + 3000}",
        f"procs_running {min(cpus, nves) + 1}",
        "procs_blocked 0",
        f"softirq {busy // 2} 0 {busy // 4} 1 {busy // 8} 0 0 {busy // 16} 0 0 {busy // 8}",
    ]
    return "\n".join(out) + "\n"


def format_meminfo(total: int, available: int) -> str:
    """``/proc/meminfo``: 16-character labels, ``%8lu kB`` values."""
    total_kb, avail_kb = total >> 10, min(available, total) >> 10
    free_kb = avail_kb * 2 // 3
    cached_kb = avail_kb - free_kb
    values = (
        ("MemTotal", total_kb), ("MemFree", free_kb), ("MemAvailable", avail_kb),
        ("Buffers", cached_kb // 10), ("Cached", cached_kb - cached_kb // 10),
        ("SwapCached", 0), ("Active", (total_kb - free_kb) // 2),
        ("Inactive", (total_kb - free_kb) // 3), ("SwapTotal", 4194300),
        ("SwapFree", 4194300), ("Dirty", 128), ("Writeback", 0), ("Shmem", 20480),
        ("Slab", total_kb // 50), ("SReclaimable", total_kb // 80),
        ("CommitLimit", total_kb // 2 + 4194300), ("Committed_AS", total_kb - free_kb),
    )  # fmt: skip
    return "".join(f"{name + ':':<16}{kb:>8} kB\n" for name, kb in values)


def format_loadavg(load: tuple[float, float, float], nves: int = 0) -> str:
    """``/proc/loadavg``: three ``%lu.%02lu`` loads, running/total tasks, last pid."""
    loads = " ".join(f"{x:.2f}" for x in load)
    return f"{loads} 1/{nves * 40 + 300} {nves * 40 + 31337}\n"


def _ve_rows(ve: FakeVe, bits: int) -> list[Row]:
    inf = LONG_MAX[bits]
    pages = ve.mem_bytes // PAGE
    limit = ve.mem_limit_bytes // PAGE if ve.mem_limit_bytes is not None else inf
    n = _numproc(ve)
    held = {
        "kmemsize": 2_000_000 + n * 150_000, "lockedpages": 0, "privvmpages": pages * 6 // 5,
        "shmpages": pages // 50, "numproc": n, "physpages": pages, "vmguarpages": 0,
        "oomguarpages": pages, "numtcpsock": n // 2, "numflock": n // 4, "numpty": 1,
        "numsiginfo": 0, "tcpsndbuf": n * 4480, "tcprcvbuf": n * 4096,
        "othersockbuf": n * 1160, "dgramrcvbuf": 0, "numothersock": n, "dcachesize": pages * 60,
        "numfile": n * 30, "numiptent": 20,
    }  # fmt: skip
    rows: list[Row] = []
    for name in RESOURCES:
        if name == "dummy":
            rows.append((name, 0, 0, inf, inf, 0))
        elif name == "physpages":
            rows.append((name, pages, pages + pages // 8, 0, limit, ve.failcnt))
        elif name in ("vmguarpages", "oomguarpages"):
            rows.append(
                (name, held[name], held[name] * 9 // 8, 0 if limit == inf else limit, inf, 0)
            )
        else:
            h = held[name]
            rows.append((name, h, h + h // 4, inf, inf, 0))
    return rows


def _host_rows(ves: Sequence[FakeVe], bits: int) -> list[Row]:
    inf = LONG_MAX[bits]
    pages = 150_000 + len(ves) * 900
    rows: list[Row] = []
    for name in RESOURCES:
        held = pages if name in ("physpages", "oomguarpages", "privvmpages") else 0
        rows.append((name, held, held * 2, inf, inf, 0))
    return rows


def _numproc(ve: FakeVe) -> int:
    return 8 + (ve.mem_bytes >> 24) % 120


def _share(value: int, parts: int, n: int) -> int:
    """Part ``n`` of ``value`` split over ``parts`` as evenly as integers allow."""
    return value // parts + (1 if n < value % parts else 0)


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
