"""What a report shows, read from the store over one window, as frames ready to plot.

The heavy reads stay in the database: node totals per sample time are a GROUP BY over
ve_samples (N x T rows leave it, not V x T), beancounter failures come from a LAG window
over failcnt, and the top VEs use window_demand (percentile_cont on PostgreSQL). The rest is
pandas: bucket means, a pivot to nodes x buckets, utilisation = use / capacity.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lbvm import journal
from lbvm.config import Config
from lbvm.errors import LbvmError
from lbvm.store.events import list_events
from lbvm.store.queries import node_capacity, window_demand
from lbvm.store.schema import ve_samples, ves

log = logging.getLogger(__name__)

MAX_BUCKETS = 96
MIN_BUCKET = 300.0
TOP = 10
STEPS = 6  # progress callbacks per collect()


@dataclass(frozen=True)
class Summary:
    """The page's header figures."""

    start: float
    end: float
    bucket: float  # seconds per time bucket
    nodes: int
    pairs: int
    ves: int
    score_start: float | None  # imbalance of the first bucket with data
    score_end: float | None  # ... and of the last
    no_failover: tuple[str, ...]  # pairs without failover now: short survivor, or degraded
    moves_done: int
    moves_failed: int
    moves_other: int  # planned, running, skipped, unknown
    runs: int
    quarantined: int
    failcnt_events: int
    degraded: tuple[str, ...] = ()  # "pair: reasons" for pairs whose HA state is degraded


@dataclass(frozen=True)
class ReportData:
    """Everything a report renders. Frames, indexed as described per field."""

    summary: Summary
    cpu_util: pd.DataFrame  # index node (config order), columns bucket start (epoch s)
    mem_util: pd.DataFrame  # same shape; values are fractions of capacity, NaN: no data
    imbalance: pd.Series  # index bucket start -> weighted std of node utilisation
    headroom: pd.DataFrame  # index pair; cpu, mem: spare share of the survivor's limit
    moves: pd.DataFrame  # journal rows planned in the window (lbvm.journal.COLUMNS)
    top_ves: pd.DataFrame  # ve, node, cpu_p95, mem_p95, failcnt
    failcnt: pd.DataFrame  # ts, ve, node, delta: each growth of a VE's failcnt
    notes: tuple[str, ...]  # what could not be shown, and why


def bucket_size(span: float) -> float:
    """Seconds per bucket: a multiple of 5 min giving at most MAX_BUCKETS buckets."""
    return max(MIN_BUCKET, math.ceil(span / MAX_BUCKETS / MIN_BUCKET) * MIN_BUCKET)


def node_series(engine: Engine, start: float, end: float) -> pd.DataFrame:
    """Per node and sample time: cpu (cores) and mem (bytes) summed over its VEs."""
    c = ve_samples.c
    query = (
        sa.select(c.node, c.ts, sa.func.sum(c.cpu_used), sa.func.sum(c.mem_bytes))
        .where(c.ts > start, c.ts <= end)
        .group_by(c.node, c.ts)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["node", "ts", "cpu", "mem"])
    return frame.astype({"ts": "float64", "cpu": "float64", "mem": "float64"})


def utilisation(
    series: pd.DataFrame, capacity: pd.DataFrame, start: float, bucket: float, n_buckets: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cpu, mem) utilisation pivots: nodes x bucket starts, mean per bucket / capacity."""
    cols = start + bucket * np.arange(n_buckets)
    frame = series.assign(bucket=start + bucket * ((series["ts"] - start) // bucket))
    means = frame.groupby(["node", "bucket"])[["cpu", "mem"]].mean()
    cap = capacity.set_index("node")
    out = []
    for res, cap_col in (("cpu", "cpus"), ("mem", "mem_bytes")):
        pivot = means[res].unstack("bucket") if len(means) else pd.DataFrame()
        pivot = pivot.reindex(index=cap.index, columns=cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            util = pivot.div(cap[cap_col].where(cap[cap_col] > 0), axis=0)
        util.index.name, util.columns.name = "node", "bucket"
        out.append(util.astype("float64"))
    return out[0], out[1]


def trim(cpu: pd.DataFrame, mem: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop the leading buckets where no node has data (a store younger than the window)."""
    has = (cpu.notna() | mem.notna()).any(axis=0).to_numpy()
    first = int(np.argmax(has)) if has.any() else len(has)
    return cpu.iloc[:, first:], mem.iloc[:, first:]


def imbalance(cpu: pd.DataFrame, mem: pd.DataFrame, weights: dict[str, float]) -> pd.Series:
    """Per bucket: the balancer's score (weighted std of node utilisation) on bucket means.

    Nodes without data in a bucket are left out of it; a bucket with no data is NaN.
    """
    parts = []
    for res, util in (("cpu", cpu), ("mem", mem)):
        has = util.notna().any(axis=0)
        parts.append(util.std(axis=0, ddof=0).where(has) * weights.get(res, 1.0))
    score = parts[0] + parts[1]
    score.name = "imbalance"
    return score


def failcnt_events(engine: Engine, start: float, end: float) -> pd.DataFrame:
    """Each time a VE's beancounter failcnt grew in the window: ts, ve, node, delta.

    A counter that went down was reset (VE restart): its value is the growth since.
    """
    c = ve_samples.c
    prev = sa.func.lag(c.failcnt).over(partition_by=c.ve, order_by=c.ts).label("prev")
    inner = (
        sa.select(c.ts, c.ve, c.node, c.failcnt, prev)
        .where(c.ts > start, c.ts <= end, c.failcnt.is_not(None))
        .subquery()
    )
    delta = sa.case((inner.c.failcnt < inner.c.prev, inner.c.failcnt),
                    else_=inner.c.failcnt - inner.c.prev)
    query = (
        sa.select(inner.c.ts, inner.c.ve, inner.c.node, delta.label("delta"))
        .where(inner.c.prev.is_not(None), delta > 0)
        .order_by(inner.c.ts, inner.c.ve)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(rows, columns=["ts", "ve", "node", "delta"])
    return frame.astype({"ts": "float64", "delta": "int64"})


def top_ves(
    engine: Engine, start: float, end: float, failcnt: pd.DataFrame, n: int = TOP
) -> pd.DataFrame:
    """The ``n`` VEs with the highest p95 cpu (then memory) in the window."""
    demand = window_demand(engine, start=start, end=end, statistic="p95")
    with engine.connect() as conn:
        where = pd.DataFrame(conn.execute(sa.select(ves.c.ve, ves.c.node)).all(),
                             columns=["ve", "node"]).set_index("ve")["node"]
    grown = failcnt.groupby("ve")["delta"].sum()
    table = pd.DataFrame({
        "ve": demand.index.astype(str),
        "node": where.reindex(demand.index).to_numpy(dtype=object),
        "cpu_p95": demand["cpu"].to_numpy(),
        "mem_p95": demand["mem"].to_numpy(),
        "failcnt": grown.reindex(demand.index).fillna(0).to_numpy(dtype="int64"),
    })
    table = table.sort_values(["cpu_p95", "mem_p95"], ascending=False, kind="stable")
    return table.head(n).reset_index(drop=True)


def pair_headroom(engine: Engine, config: Config) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """(headroom per pair as a share of what its survivor may carry, notes) from the
    Problem the balancer would see now; empty with a note when it cannot be built."""
    from algorithms.pairs import pair_limit
    from lbvm.model import build_problem
    from lbvm.validate import headroom

    try:
        problem = build_problem(engine, config)
    except LbvmError as exc:
        return pd.DataFrame(columns=["cpu", "mem"]), (f"pair headroom unavailable: {exc}",)
    room = headroom(problem)
    limit = pair_limit(problem)
    names = config.pair_of()
    first = [int(np.flatnonzero(problem.pair == p)[0]) for p in range(room.shape[0])]
    index = pd.Index([names.get(problem.nodes[i], f"#{p}") for p, i in enumerate(first)],
                     name="pair")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(limit > 0, room / limit, np.nan)
    return pd.DataFrame(share, index=index, columns=list(problem.resources)), ()


def ha_degraded(engine: Engine, config: Config, now: float) -> tuple[str, ...]:
    """'pair: reasons' for each pair whose HA state is degraded now (nodes, DRBD, cluster)."""
    from lbvm.hastate import judge
    from lbvm.store.ha import load as load_ha

    states = judge(load_ha(engine), config, now)
    return tuple(f"{s.pair}: {s.text()}" for s in states.values() if s.known and s.reasons)


def collect(
    engine: Engine,
    config: Config,
    *,
    since: float,
    now: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReportData:
    """Read the window (now - since, now] and shape it for rendering."""
    end = time.time() if now is None else float(now)
    start = end - since
    bucket = bucket_size(since)
    n_buckets = max(1, math.ceil(since / bucket))

    def step() -> None:
        if progress is not None:
            progress(1)

    capacity = node_capacity(engine, config)
    capacity = capacity[capacity["pair"].notna()].reset_index(drop=True)
    cpu, mem = utilisation(node_series(engine, start, end), capacity, start, bucket, n_buckets)
    cpu, mem = trim(cpu, mem)
    step()
    trend = imbalance(cpu, mem, config.balance.weights)
    known = trend.dropna()
    step()
    headroom_share, notes = pair_headroom(engine, config)
    step()
    moves = journal.moves_frame(engine, since=start)
    runs = journal.runs_frame(engine, since=start)
    quarantined = list_events(engine, since=start, kind="quarantine", limit=1_000_000)
    step()
    fails = failcnt_events(engine, start, end)
    step()
    top = top_ves(engine, start, end, fails)
    step()
    with engine.connect() as conn:
        n_ves = int(conn.execute(sa.select(sa.func.count()).select_from(ves)).scalar() or 0)
    states = moves["state"].value_counts()
    short = [str(p) for p in headroom_share.index[(headroom_share < 0).any(axis=1)]]
    degraded = ha_degraded(engine, config, end)
    why = dict(d.split(": ", 1) for d in degraded)
    names = list(dict.fromkeys([*short, *why]))
    no_failover = tuple(f"{p} (degraded: {why[p]})" if p in why else p for p in names)
    summary = Summary(
        start=start,
        end=end,
        bucket=bucket,
        nodes=len(capacity),
        pairs=len(config.pairs),
        ves=n_ves,
        score_start=float(known.iloc[0]) if len(known) else None,
        score_end=float(known.iloc[-1]) if len(known) else None,
        no_failover=no_failover,
        moves_done=int(states.get("done", 0)),
        moves_failed=int(states.get("failed", 0)),
        moves_other=int(len(moves) - states.get("done", 0) - states.get("failed", 0)),
        runs=len(runs),
        quarantined=len(quarantined),
        failcnt_events=len(fails),
        degraded=degraded,
    )
    if not len(known):
        notes = (*notes, "no VE samples in the window: nothing to plot over time")
    log.debug("report over %.0fs: %d buckets of %.0fs", since, n_buckets, bucket)
    return ReportData(summary, cpu, mem, trend, headroom_share, moves, top, fails, notes)
