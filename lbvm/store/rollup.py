"""Hourly rollups: from raw samples to one row per series and hour, and from hourly rows
back to the statistics of a long window. Pure pandas over whole frames (no database).

A long window's figures are computed from the hours: the mean is the sample-weighted mean
of hourly means, max the max of hourly maxima, pNN the NN-th percentile of the hourly p95s
(of the hourly maxima above p95), failcnt growth the growth of the hourly last values plus
the first hour's own growth. Close to the raw figures, not identical: docs/store.md.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

HOUR = 3600.0
VE_RAW = ["ve", "node", "ts", "cpu_used", "mem_bytes", "disk_bytes", "failcnt"]
VE_ROLLUP = [
    "ve", "hour", "node", "samples", "cpu_mean", "cpu_p95", "cpu_max", "cpu_n", "mem_mean",
    "mem_p95", "mem_max", "mem_last", "disk_last", "failcnt_growth", "failcnt_last",
]  # fmt: skip
NODE_RAW = ["node", "ts", "cpu_used", "mem_total_bytes", "mem_available_bytes", "load1"]
NODE_ROLLUP = [
    "node", "hour", "samples", "cpu_mean", "cpu_p95", "cpu_max", "mem_used_mean",
    "mem_used_p95", "mem_used_max", "load1_mean", "load1_max",
]  # fmt: skip


def hour_of(ts: np.ndarray | pd.Series) -> np.ndarray:
    return np.floor(np.asarray(ts, dtype=np.float64) / HOUR) * HOUR


def growth(frame: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    """Sum of increases of ``value`` per ``keys`` (rows sorted by time); after a reset the
    counter restarted from 0, so its value is the growth since. NaN for no known value."""
    by = [frame[k] for k in keys]
    step = frame.groupby(keys, sort=False)[value].diff()
    step = step.mask(step < 0, frame[value])
    total = step.fillna(0.0).groupby(by, sort=False).sum()
    return total.where(frame[value].groupby(by, sort=False).count() > 0)


def ve_hours(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (ve, hour) of ``raw`` (VE_RAW columns, floats); columns VE_ROLLUP."""
    if raw.empty:
        return pd.DataFrame(columns=VE_ROLLUP)
    frame = raw.assign(hour=hour_of(raw["ts"])).sort_values(["ve", "ts"], kind="stable")
    g = frame.groupby(["ve", "hour"], sort=False)
    last = g.last()
    out = pd.DataFrame(
        {
            "node": last["node"],
            "samples": g.size(),
            "cpu_mean": g["cpu_used"].mean(),
            "cpu_p95": g["cpu_used"].quantile(0.95),
            "cpu_max": g["cpu_used"].max(),
            "cpu_n": g["cpu_used"].count(),
            "mem_mean": g["mem_bytes"].mean(),
            "mem_p95": g["mem_bytes"].quantile(0.95),
            "mem_max": g["mem_bytes"].max(),
            "mem_last": g["mem_bytes"].last(),
            "disk_last": g["disk_bytes"].last(),
            "failcnt_growth": growth(frame, ["ve", "hour"], "failcnt"),
            "failcnt_last": g["failcnt"].last(),
        }
    )
    return out.reset_index()[VE_ROLLUP]


def node_hours(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per (node, hour) of ``raw`` (NODE_RAW columns); columns NODE_ROLLUP."""
    if raw.empty:
        return pd.DataFrame(columns=NODE_ROLLUP)
    frame = raw.assign(
        hour=hour_of(raw["ts"]), mem_used=raw["mem_total_bytes"] - raw["mem_available_bytes"]
    )
    g = frame.groupby(["node", "hour"], sort=False)
    out = pd.DataFrame(
        {
            "samples": g.size(),
            "cpu_mean": g["cpu_used"].mean(),
            "cpu_p95": g["cpu_used"].quantile(0.95),
            "cpu_max": g["cpu_used"].max(),
            "mem_used_mean": g["mem_used"].mean(),
            "mem_used_p95": g["mem_used"].quantile(0.95),
            "mem_used_max": g["mem_used"].max(),
            "load1_mean": g["load1"].mean(),
            "load1_max": g["load1"].max(),
        }
    )
    return out.reset_index()[NODE_ROLLUP]


# How each column of an hourly row combines when late samples are merged into it: summed,
# a mean weighted by a count column, the larger one, or the stored row's own ("keep").
_MERGE_VE = {
    "node": "keep", "samples": "sum", "cpu_mean": "cpu_n", "cpu_p95": "max", "cpu_max": "max",
    "cpu_n": "sum", "mem_mean": "samples", "mem_p95": "max", "mem_max": "max",
    "mem_last": "keep", "disk_last": "keep", "failcnt_growth": "sum", "failcnt_last": "keep",
}  # fmt: skip
_MERGE_NODE = {
    "samples": "sum", "cpu_mean": "samples", "cpu_p95": "max", "cpu_max": "max",
    "mem_used_mean": "samples", "mem_used_p95": "max", "mem_used_max": "max",
    "load1_mean": "samples", "load1_max": "max",
}  # fmt: skip


def merge(stored: pd.DataFrame, late: pd.DataFrame, key: str) -> pd.DataFrame:
    """Hourly rows (VE_ROLLUP with ``key`` ve, NODE_ROLLUP with node) of ``stored`` with the
    rows built from late samples of the same hours folded in, for when the hours' raw
    samples are gone. A row only one side has is taken as it is (the usual case: a node's
    whole backlog arrives late). Where both have one, counts and growth add up, means are
    weighted by their counts and maxima are exact; p95 is the larger of the two p95s (an
    approximation), and the last values (memory, disk, failcnt, node) stay the stored
    row's, the order of its samples against the late ones being unknown (growth between
    the two parts is not counted)."""
    rules = _MERGE_VE if key == "ve" else _MERGE_NODE
    both = stored.merge(late, on=[key, "hour"], how="outer", suffixes=("", "_late"))
    out = both[[key, "hour"]].copy()
    for col, rule in rules.items():
        old, new = both[col], both[f"{col}_late"]
        if rule == "keep":
            out[col] = old.where(old.notna(), new)
        elif rule == "sum":
            out[col] = old.fillna(0).add(new.fillna(0)).where(old.notna() | new.notna())
        elif rule == "max":
            out[col] = np.fmax(old.astype("float64"), new.astype("float64"))
        else:  # a mean weighted by the count column ``rule`` of each part
            total = pd.Series(0.0, index=both.index)
            weight = pd.Series(0.0, index=both.index)
            for suffix in ("", "_late"):
                mean = both[col + suffix].astype("float64")
                count = both[rule + suffix].astype("float64").fillna(0.0).where(mean.notna(), 0.0)
                total += mean.fillna(0.0) * count
                weight += count
            out[col] = (total / weight).where(weight > 0)
    return out[VE_ROLLUP if key == "ve" else NODE_ROLLUP]


def _quantile(hours: pd.DataFrame, q: float, p95: str, top: str) -> pd.Series:
    column = p95 if q <= 0.95 else top
    return hours.groupby("ve")[column].quantile(q)


def window_stats(hours: pd.DataFrame) -> pd.DataFrame:
    """ve_stats' columns (cpu, cpu_p95, mem_bytes, mem_p95, disk_bytes, failcnt_delta)
    from hourly rows (VE_ROLLUP). Index: ve."""
    ordered = hours.sort_values(["ve", "hour"], kind="stable")
    g = ordered.groupby("ve")
    weighted = (ordered["cpu_mean"] * ordered["cpu_n"]).groupby(ordered["ve"]).sum(min_count=1)
    first = g["failcnt_growth"].first()
    between = growth(ordered, ["ve"], "failcnt_last")
    out = pd.DataFrame(
        {
            "cpu": weighted / g["cpu_n"].sum().replace(0, np.nan),
            "cpu_p95": g["cpu_p95"].quantile(0.95),
            "mem_bytes": g["mem_last"].last(),
            "mem_p95": g["mem_p95"].quantile(0.95),
            "disk_bytes": g["disk_last"].last(),
            "failcnt_delta": between + first.fillna(0.0).where(between.notna()),
        }
    )
    out.index.name = "ve"
    return out.astype("float64")


def window_demand(hours: pd.DataFrame, statistic: str, q: float | None) -> pd.DataFrame:
    """window_demand's frame (index ve; cpu, mem) from hourly rows."""
    g = hours.groupby("ve")
    if q is None and statistic == "max":
        out = pd.DataFrame({"cpu": g["cpu_max"].max(), "mem": g["mem_max"].max()})
    elif q is None:
        cpu = (hours["cpu_mean"] * hours["cpu_n"]).groupby(hours["ve"]).sum(min_count=1)
        mem = (hours["mem_mean"] * hours["samples"]).groupby(hours["ve"]).sum(min_count=1)
        out = pd.DataFrame(
            {
                "cpu": cpu / g["cpu_n"].sum().replace(0, np.nan),
                "mem": mem / g["samples"].sum(),
            }
        )
    else:
        out = pd.DataFrame(
            {
                "cpu": _quantile(hours, q, "cpu_p95", "cpu_max"),
                "mem": _quantile(hours, q, "mem_p95", "mem_max"),
            }
        )
    out.index.name = "ve"
    return out.astype("float64").sort_index()
