"""Rates from raw cumulative counters, vectorised over all series at once.

Spool files carry counters as the kernel shows them (CPU jiffies or usec since the VE or the
node started), so a rate needs the previous sample of the same series. A counter that goes
down, or an uptime that goes down, means the VE or node restarted: that interval has no rate
(NaN, stored as NULL), never a negative one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _int_array(values: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 values with 0 for missing, known mask) from a nullable integer column."""
    series = pd.Series(values)
    known = series.notna().to_numpy()
    ints = series.astype("Int64").to_numpy(dtype=np.int64, na_value=0)
    return ints, known


def counter_rate(
    key: np.ndarray,
    ts: np.ndarray,
    counter: pd.Series | np.ndarray,
    hz: np.ndarray,
    *,
    monotone: tuple[pd.Series | np.ndarray, ...] = (),
    same: pd.Series | np.ndarray | None = None,
) -> np.ndarray:
    """Per row, (counter - previous counter) / hz / (ts - previous ts) of the same key.

    Rows may come in any order; "previous" is the row of the same key just before in time.
    The first row of each key gets NaN, as does a row whose counter or time went down,
    whose ``monotone`` series (uptime, idle time) went down, or whose ``same`` value (the
    counter's unit) differs from the previous row's. Returns floats aligned with the input.
    """
    n = len(ts)
    out = np.full(n, np.nan)
    if n < 2:
        return out
    codes, _ = pd.factorize(np.asarray(key, dtype=object))
    ts = np.asarray(ts, dtype=np.float64)
    order = np.lexsort((ts, codes))
    cur, prev = order[1:], order[:-1]
    ok = codes[cur] == codes[prev]
    raw, known = _int_array(counter)
    ok &= known[cur] & known[prev]
    with np.errstate(over="ignore"):
        delta = raw[cur] - raw[prev]
    dt = ts[cur] - ts[prev]
    for series in monotone:
        values = pd.Series(series).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        went_down = values[cur] < values[prev]  # NaN compares False: unknown is no reset
        ok &= ~went_down
    if same is not None:
        unit = pd.Series(same).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        ok &= unit[cur] == unit[prev]
    hz_cur = np.asarray(hz, dtype=np.float64)[cur]
    out[cur] = step_rate(delta, dt, hz_cur, ok)
    return out


def step_rate(delta: np.ndarray, dt: np.ndarray, hz: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """delta / hz / dt where ``ok`` (both ends known, no reset seen) and the counter and
    the time went forward and hz > 0; NaN elsewhere. The rule every rate here follows."""
    ok = ok & (delta >= 0) & (dt > 0) & (hz > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = delta.astype(np.float64) / hz / dt
    return np.where(ok, rate, np.nan)
