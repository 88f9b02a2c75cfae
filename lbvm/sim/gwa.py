"""Grid Workloads Archive GWA-T-12 (Bitbrains) per-VM CSV files.

One file per VM; fields separated by ``;`` and a tab; a header line naming the columns
(``Timestamp [ms]`` holds Unix seconds despite its name). CPU usage in MHz becomes reference
cores (1 MHz ~ 1 MIPS, as in CloudSim; 1,000 = one core), memory KB becomes bytes. Samples
are averaged into the replay interval from the earliest timestamp of all files (rounded down
to the interval); a step inside a VM's life without a sample repeats the last one, and
before its first or after its last sample the VM is not running (NaN).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from lbvm.errors import ParseError
from lbvm.sim.traces import MIPS_PER_CORE, Trace, ve_ids

KIB = 1024
TIME = "Timestamp [ms]"
CPU = "CPU usage [MHZ]"
CPU_SIZE = "CPU capacity provisioned [MHZ]"
MEM = "Memory usage [KB]"
MEM_SIZE = "Memory capacity provisioned [KB]"
COLUMNS = (TIME, "CPU cores", CPU_SIZE, CPU, "CPU usage [%]", MEM_SIZE, MEM,
           "Disk read throughput [KB/s]", "Disk write throughput [KB/s]",
           "Network received throughput [KB/s]", "Network transmitted throughput [KB/s]")
NEEDED = (TIME, CPU_SIZE, CPU, MEM_SIZE, MEM)


def read_file(path: Path) -> pd.DataFrame:
    """One VM's samples (columns NEEDED, float); bad values raise ParseError at file:line."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh, delimiter=";"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ParseError(str(path), None, f"{getattr(exc, 'strerror', None) or exc}") from None
    if not rows:
        raise ParseError(str(path), 1, "empty file, expected a header line")
    header = [c.strip() for c in rows[0]]
    missing = [c for c in NEEDED if c not in header]
    if missing:
        raise ParseError(str(path), 1, f"no column(s) {', '.join(missing)} in the header")
    body = rows[1:]
    width = len(header)
    bad = next((i for i, r in enumerate(body) if len(r) != width), None)
    if bad is not None:
        raise ParseError(str(path), bad + 2, f"{len(body[bad])} fields, the header has {width}")
    frame = pd.DataFrame(body, columns=header)[list(NEEDED)]
    out = pd.DataFrame(index=frame.index)
    for col in NEEDED:
        text = frame[col].str.strip()
        values = pd.to_numeric(text, errors="coerce")
        wrong = values.isna() | (values < 0)
        if bool(wrong.any()):
            i = int(np.flatnonzero(wrong.to_numpy())[0])
            raise ParseError(str(path), i + 2, f"{col} {text.iloc[i]!r} is not a "
                             "non-negative number")
        out[col] = values.astype(np.float64)
    return out


def read_gwa(folder: Path, *, interval: float = 300.0) -> Trace:
    """Every ``*.csv`` file in ``folder`` (or one file), sorted by name, as a Trace."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(folder.glob("*.csv"), key=lambda p: p.name)
    if not files:
        raise ParseError(str(folder), None, "no GWA .csv files")
    frames = [read_file(p) for p in files]
    empty = [p for p, f in zip(files, frames, strict=True) if f.empty]
    if empty:
        raise ParseError(str(empty[0]), None, "no samples after the header")
    start = min(float(f[TIME].min()) for f in frames) // interval * interval
    end = max(float(f[TIME].max()) for f in frames)
    steps = int((end - start) // interval) + 1
    cpu = np.full((len(files), steps), np.nan)
    mem = np.full((len(files), steps), np.nan)
    cpu_size = np.zeros(len(files))
    mem_size = np.zeros(len(files))
    for i, f in enumerate(frames):  # one pass per file, vectorised over its samples
        step = ((f[TIME].to_numpy() - start) // interval).astype(np.int64)
        means = f.groupby(step)[[CPU, MEM]].mean()
        cols = pd.DataFrame(means, index=pd.RangeIndex(step.min(), step.max() + 1)).ffill()
        cpu[i, cols.index] = cols[CPU].to_numpy() / MIPS_PER_CORE
        mem[i, cols.index] = cols[MEM].to_numpy() * KIB
        cpu_size[i] = f[CPU_SIZE].max() / MIPS_PER_CORE
        mem_size[i] = f[MEM_SIZE].max() * KIB
    return Trace(
        ves=ve_ids([p.stem for p in files]),
        start=start,
        interval=interval,
        cpu=cpu,
        mem=mem,
        cpu_size=cpu_size,
        mem_size=mem_size,
        disk=np.zeros(len(files)),
        sources=tuple(p.name for p in files),
    )
