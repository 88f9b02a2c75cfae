"""Workload traces as numpy arrays, and the PlanetLab (CoMon) reader.

A ``Trace`` holds V VEs over T steps of ``interval`` seconds. CPU is in reference cores
(one core = 1,000 MIPS, so a 2,500-MIPS VM at 40 % uses 1.0), memory in bytes. NaN means
the VE was not running (or not measured) at that step: it counts no load there, and the
planner sees it as unmeasured, exactly like a VE without samples in the store.

PlanetLab traces (shipped with CloudSim) are one file per VM, one integer CPU % per line for
288 five-minute steps, with no memory figure. Memory and the VM's size come from the VM
types, as CloudSim's PlanetLab runner does: VM i (files sorted by name) gets type
i mod len(types).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lbvm.errors import ParseError

MIB = 1 << 20
MIPS_PER_CORE = 1000.0  # the reference core the simulator counts CPU in
FORMATS = ("planetlab", "gwa", "lbvm")


@dataclass(frozen=True)
class VmType:
    """A VM size: MIPS of its one core, memory and disk (disk is copied by a migrate)."""

    mips: float
    mem_bytes: int
    disk_bytes: int = 0


# CloudSim 3.0.3 PlanetLab runner: 2,500/2,000/1,000/500 MIPS with 870/1,740/1,740/613 MB.
CLOUDSIM_VM_TYPES = (
    VmType(2500, 870 * MIB),
    VmType(2000, 1740 * MIB),
    VmType(1000, 1740 * MIB),
    VmType(500, 613 * MIB),
)


@dataclass(frozen=True)
class Trace:
    """V VEs over T steps; see the module docstring for units.

    cpu[V, T], mem[V, T]   use per step (NaN: not running)
    cpu_size[V]            provisioned CPU in reference cores (initial placement, PDM)
    mem_size[V]            provisioned memory in bytes (initial placement)
    disk[V]                disk bytes, copied by a move to another pair
    nodes[V]               node each VE starts on, when the trace knows (else None)
    sources[V]             where each VE came from (file name), for messages
    """

    ves: tuple[str, ...]
    start: float
    interval: float
    cpu: np.ndarray
    mem: np.ndarray
    cpu_size: np.ndarray
    mem_size: np.ndarray
    disk: np.ndarray
    sources: tuple[str, ...]
    nodes: tuple[str, ...] | None = None

    @property
    def n_ves(self) -> int:
        return len(self.ves)

    @property
    def n_steps(self) -> int:
        return int(self.cpu.shape[1])

    def head(self, ves: int | None = None, steps: int | None = None) -> Trace:
        """The first ``ves`` VEs over the first ``steps`` steps (for short replays)."""
        v = slice(None, ves)
        t = slice(None, steps)
        return Trace(
            self.ves[v], self.start, self.interval, self.cpu[v, t], self.mem[v, t],
            self.cpu_size[v], self.mem_size[v], self.disk[v], self.sources[v],
            None if self.nodes is None else self.nodes[v],
        )


_UNSAFE = re.compile(r"[^A-Za-z0-9._:@-]")


def ve_ids(names: list[str]) -> tuple[str, ...]:
    """Safe, unique VE ids from file names: spaces and other characters become '_'.

    The executor passes VE ids to commands, so they must be plain identifiers; a name that
    collides after cleaning gets '-2', '-3', ... appended.
    """
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        base = _UNSAFE.sub("_", name).lstrip("._:@-")[:120] or "ve"
        if not base[0].isalnum():
            base = "ve" + base
        ident, k = base, 1
        while ident in seen:
            k += 1
            ident = f"{base}-{k}"
        seen.add(ident)
        out.append(ident)
    return tuple(out)


def _bad_line(path: Path, text: str, what: str) -> ParseError:
    """The first line of ``text`` that is not ``what``, as a ParseError naming file:line."""
    for no, line in enumerate(text.splitlines(), 1):
        token = line.strip()
        if not token.isdigit() or int(token) > 100:
            shown = line if len(line) <= 40 else line[:40] + "..."
            return ParseError(str(path), no, f"{shown!r} is not {what}")
    return ParseError(str(path), None, f"not {what} on every line")


def _planetlab_file(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError:
        raise ParseError(str(path), None, "not a text file of CPU percentages") from None
    except OSError as exc:
        raise ParseError(str(path), None, f"{exc.strerror or exc}") from None
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    tokens = text.split()
    # Fast path: one token per line, all integers 0..100; else find the line that is not.
    if len(tokens) != lines or not tokens:
        if not tokens:
            raise ParseError(str(path), None, "empty trace file")
        raise _bad_line(path, text, "an integer CPU % (0-100)")
    try:
        values = np.array(tokens, dtype=np.int64)
    except ValueError:
        raise _bad_line(path, text, "an integer CPU % (0-100)") from None
    if values.min() < 0 or values.max() > 100:
        raise _bad_line(path, text, "an integer CPU % (0-100)")
    return values


def read_planetlab(
    folder: Path,
    *,
    types: tuple[VmType, ...] = CLOUDSIM_VM_TYPES,
    interval: float = 300.0,
    start: float = 0.0,
) -> Trace:
    """Read a PlanetLab day: every regular file in ``folder``, sorted by name.

    Every file must hold the same number of steps; a bad value raises ParseError naming
    file:line, a short file names itself and the expected count.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ParseError(str(folder), None, "not a folder of PlanetLab trace files")
    if not types:
        raise ParseError(str(folder), None, "no VM types to give the PlanetLab VMs")
    files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: p.name)
    if not files:
        raise ParseError(str(folder), None, "no trace files")
    series = [_planetlab_file(p) for p in files]
    steps = len(series[0])
    for p, s in zip(files, series, strict=True):
        if len(s) != steps:
            raise ParseError(str(p), None, f"{len(s)} values, but {files[0].name} has {steps}")
    util = np.stack(series).astype(np.float64) / 100.0
    kinds = np.arange(len(files)) % len(types)
    mips = np.array([t.mips for t in types])[kinds]
    mem = np.array([t.mem_bytes for t in types], dtype=np.float64)[kinds]
    disk = np.array([t.disk_bytes for t in types], dtype=np.float64)[kinds]
    size = mips / MIPS_PER_CORE
    return Trace(
        ves=ve_ids([p.name for p in files]),
        start=start,
        interval=interval,
        cpu=util * size[:, None],
        mem=np.repeat(mem[:, None], steps, axis=1),
        cpu_size=size,
        mem_size=mem,
        disk=disk,
        sources=tuple(p.name for p in files),
    )
