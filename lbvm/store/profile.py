"""Each VE's hourly time profile for the planning Problem: [V, T, R] float32.

Step t is the clock hour ``hour_of(end) - (T - 1 - t)`` hours: the last step is the hour
``end`` is in (so far), the first T - 1 hours before it. Each step holds the VE's p95 of
cpu_used (cores) and of mem_bytes over that hour's samples, the units of the Problem's
demand (resources in lbvm.config.RESOURCES order). Hours before the rollup watermark come
from the hourly rollups (their cpu_p95, mem_p95); later hours from the raw samples, their
p95 taken in the database on PostgreSQL and with pandas on SQLite. An hour a VE has no
figure for (it did not run, or its samples were deleted before a rollup, or its one sample
had no CPU rate yet) takes the VE's demand (``fill``: the [balance] statistic, p95 by
default), so a gap neither hides a peak nor invents one below its usual level.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lbvm.config import PROFILE_STEP
from lbvm.store import rollup
from lbvm.store.retention import WATERMARK, marks
from lbvm.store.schema import ve_rollups, ve_samples

COLUMNS = ["ve", "hour", "cpu", "mem"]
Q = 0.95


def hours(end: float, steps: int) -> np.ndarray:
    """[T] start times of the profile's steps, oldest first."""
    last = float(rollup.hour_of(np.array([end]))[0])
    return last - PROFILE_STEP * np.arange(steps - 1, -1, -1, dtype=np.float64)


def _frame(engine: Engine, query: sa.Select[Any], columns: list[str]) -> pd.DataFrame:
    """The query's rows as a frame, every column but ``ve`` float64 (NULL: NaN). The driver's
    plain tuples go to pandas as they are: building SQLAlchemy Row objects first, and a
    frame from them, cost 10x the CPU time."""
    with engine.connect() as conn:
        rows = conn.execute(query).cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=columns)
    return frame.astype({c: "float64" for c in columns if c != "ve"})


def _rolled(engine: Engine, lo: float, hi: float) -> pd.DataFrame:
    """Hourly p95s from the rollups of hours in [lo, hi)."""
    query = sa.select(ve_rollups.c.ve, ve_rollups.c.hour, ve_rollups.c.cpu_p95,
                      ve_rollups.c.mem_p95).where(ve_rollups.c.hour >= lo, ve_rollups.c.hour < hi)
    return _frame(engine, query, COLUMNS)


def _raw(engine: Engine, lo: float, end: float) -> pd.DataFrame:
    """Hourly p95s of the raw samples with lo <= ts <= end."""
    s = ve_samples
    window = (s.c.ts >= lo) & (s.c.ts <= end)
    if engine.dialect.name == "postgresql":
        hour = (sa.func.floor(s.c.ts / PROFILE_STEP) * PROFILE_STEP).label("hour")
        query = sa.select(
            s.c.ve, hour,
            sa.func.percentile_cont(Q).within_group(s.c.cpu_used),
            sa.func.percentile_cont(Q).within_group(sa.cast(s.c.mem_bytes, sa.Float)),
        ).where(window).group_by(s.c.ve, hour)
        return _frame(engine, query, COLUMNS)
    query = sa.select(s.c.ve, s.c.ts, s.c.cpu_used, s.c.mem_bytes).where(window)
    frame = _frame(engine, query, ["ve", "ts", "cpu", "mem"])
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    frame["hour"] = rollup.hour_of(frame["ts"])
    out = frame.groupby(["ve", "hour"])[["cpu", "mem"]].quantile(Q)
    return out.reset_index()[COLUMNS]


def hourly(engine: Engine, ves: Sequence[str], fill: np.ndarray, *, end: float,
           steps: int) -> np.ndarray:
    """[V, steps, 2] float32 profile of ``ves`` (cpu, mem) over the hours up to ``end``;
    ``fill[V, 2]`` stands in for missing hours. See the module docstring."""
    slots = hours(end, steps)
    with engine.connect() as conn:
        watermark = marks(conn).get(WATERMARK, -math.inf)
    parts = []
    if watermark > slots[0]:
        parts.append(_rolled(engine, slots[0], min(watermark, slots[-1] + PROFILE_STEP)))
    if watermark <= end:
        parts.append(_raw(engine, max(watermark, slots[0]), end))
    out = np.full((len(ves), steps, 2), np.nan, dtype=np.float32)
    for part in parts:  # raw last: an hour both have is taken from the raw samples
        if part.empty:
            continue
        row = pd.Index(ves).get_indexer(pd.Index(part["ve"]))
        col = np.rint((part["hour"].to_numpy(np.float64) - slots[0]) / PROFILE_STEP)
        ok = (row >= 0) & (col >= 0) & (col < steps)
        values = part[["cpu", "mem"]].to_numpy(np.float64, na_value=np.nan)
        out[row[ok], col[ok].astype(np.int64)] = values[ok]
    gaps = np.isnan(out)
    if gaps.any():
        out = np.where(gaps, np.asarray(fill, dtype=np.float32)[:, None, :], out)
    return out
