"""Read the store as DataFrames (what the CLI prints and the model builds on) and the few
small writes the CLI and executor need (a VE's node and flags).

Window statistics read a narrow column set once and aggregate with pandas; on PostgreSQL
window_demand runs percentile_cont in the database instead, so 14 M rows never leave it.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lbvm.config import Config
from lbvm.errors import NotFound, StoreError
from lbvm.store import rollup, skew
from lbvm.store.retention import RAW_FROM, WATERMARK, marks
from lbvm.store.schema import nodes, ve_rollups, ve_samples, ves

VE_COLUMNS = [
    "ve", "node", "pair", "balanced", "pinned", "cpu", "cpu_p95", "mem_bytes", "mem_p95",
    "disk_bytes", "failcnt_delta", "last_seen",
]  # fmt: skip
NODE_COLUMNS = [
    "node", "pair", "cpus", "mem_bytes", "ves", "cpu_used", "mem_used", "cpu_util", "mem_util",
    "maintenance", "last_seen", "clock_skew",
]  # fmt: skip
LONG_WINDOW = 7 * 86400.0  # longer windows are read from the hourly rollups
SPLIT_MIN_VES = 5000  # below this, one query is as fast as several
# Ranges of VEs queried at once on PostgreSQL. Not this machine's core count: the database
# may have more; on two cores, four ranges cost the server the same CPU time as two.
MAX_PARALLEL = 4
STATISTICS = {"p95": 0.95, "p99": 0.99, "p50": 0.5, "median": 0.5}


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


def _window_samples(engine: Engine, start: float, end: float, cols: list[str]) -> pd.DataFrame:
    query = sa.select(*[ve_samples.c[c] for c in cols]).where(
        ve_samples.c.ts > start, ve_samples.c.ts <= end
    )
    with engine.connect() as conn:  # the driver's plain tuples: no Row object per sample
        rows = conn.execute(query).cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=cols)
    return frame.astype({c: "float64" for c in cols if c not in ("ve", "node")})


def _failcnt_growth(frame: pd.DataFrame) -> pd.Series:
    """Sum of increases per VE; after a reset the counter restarted from 0, so its value is
    the growth since."""
    ordered = frame.sort_values(["ve", "ts"], kind="stable")
    step = ordered.groupby("ve", sort=False)["failcnt"].diff()
    step = step.mask(step < 0, ordered["failcnt"])  # reset: growth since the restart
    by_ve = ordered["failcnt"].groupby(ordered["ve"])
    growth = step.fillna(0.0).groupby(ordered["ve"]).sum()
    return growth.where(by_ve.count() > 0)


def _rolled_up(engine: Engine, start: float, end: float) -> float | None:
    """The rollup watermark when the window (start, end] is read from the hourly rollups:
    longer than LONG_WINDOW, or reaching before the raw samples kept. Else None."""
    with engine.connect() as conn:
        known = marks(conn)
    if WATERMARK not in known:
        return None
    if end - start > LONG_WINDOW or start < known.get(RAW_FROM, -np.inf):
        return known[WATERMARK]
    return None


def _hours(engine: Engine, start: float, end: float, watermark: float) -> pd.DataFrame:
    """Hourly rows covering (start, end]: stored rollups before the watermark, the raw
    samples after it rolled up on the fly. Hours cut by ``start`` count whole."""
    first = float(rollup.hour_of(np.array([start]))[0])
    query = sa.select(*[ve_rollups.c[c] for c in rollup.VE_ROLLUP]).where(
        ve_rollups.c.hour >= first, ve_rollups.c.hour < min(watermark, end)
    )
    with engine.connect() as conn:
        stored = pd.DataFrame(conn.execute(query).all(), columns=rollup.VE_ROLLUP)
    tail = pd.DataFrame(columns=rollup.VE_ROLLUP)
    if watermark < end:
        raw = _window_samples(engine, max(watermark, start) - 1e-9, end, rollup.VE_RAW)
        tail = rollup.ve_hours(raw)
    parts = [p for p in (stored, tail) if len(p)]
    if not parts:
        return pd.DataFrame(columns=rollup.VE_ROLLUP)
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    numeric = [c for c in rollup.VE_ROLLUP if c not in ("ve", "node")]
    return frame.astype({c: "float64" for c in numeric})


def ve_stats(engine: Engine, *, start: float, end: float) -> pd.DataFrame:
    """Per VE seen in (start, end]: cpu (mean), cpu_p95, mem_bytes and disk_bytes (latest),
    mem_p95, failcnt_delta. Index: ve. Long windows come from the hourly rollups."""
    watermark = _rolled_up(engine, start, end)
    if watermark is not None:
        hours = _hours(engine, start, end, watermark)
        if len(hours):
            return rollup.window_stats(hours)
    cols = ["ve", "ts", "cpu_used", "mem_bytes", "disk_bytes", "failcnt"]
    frame = _window_samples(engine, start, end, cols)
    if frame.empty:
        return pd.DataFrame(
            columns=["cpu", "cpu_p95", "mem_bytes", "mem_p95", "disk_bytes", "failcnt_delta"],
            index=pd.Index([], name="ve"),
            dtype="float64",
        )
    g = frame.groupby("ve")
    latest = frame.sort_values("ts", kind="stable").groupby("ve").last()
    out = pd.DataFrame(
        {
            "cpu": g["cpu_used"].mean(),
            "cpu_p95": g["cpu_used"].quantile(0.95),
            "mem_bytes": latest["mem_bytes"],
            "mem_p95": g["mem_bytes"].quantile(0.95),
            "disk_bytes": latest["disk_bytes"],
            "failcnt_delta": _failcnt_growth(frame),
        }
    )
    out.index.name = "ve"
    return out


def ve_table(engine: Engine, *, window: float = 3600, now: float | None = None) -> pd.DataFrame:
    """Every VE in the ves table with its figures over the last ``window`` seconds.

    Columns: VE_COLUMNS. A VE with no sample in the window has NaN figures. ``pair`` is the
    nodes table's (set by sync_nodes from the config).
    """
    end = _now(now)
    stats = ve_stats(engine, start=end - window, end=end)
    query = sa.select(
        ves.c.ve, ves.c.node, nodes.c.pair, ves.c.balanced, ves.c.pinned, ves.c.last_seen
    ).select_from(ves.outerjoin(nodes, nodes.c.name == ves.c.node))
    with engine.connect() as conn:
        base = pd.DataFrame(
            conn.execute(query.order_by(ves.c.ve)).all(),
            columns=["ve", "node", "pair", "balanced", "pinned", "last_seen"],
        )
    base["balanced"] = base["balanced"].astype(bool)
    base["pinned"] = base["pinned"].astype(bool)
    table = base.join(stats, on="ve")
    return table[VE_COLUMNS].reset_index(drop=True)


def node_capacity(engine: Engine, config: Config) -> pd.DataFrame:
    """Nodes of the config's pairs (in config order) then any other stored node.

    Columns node, pair, cpus, mem_bytes, maintenance, last_seen; capacity is the config's
    override where given, else what the node reported.
    """
    with engine.connect() as conn:
        stored = pd.DataFrame(
            conn.execute(
                sa.select(
                    nodes.c.name,
                    nodes.c.cpus,
                    nodes.c.mem_bytes,
                    nodes.c.maintenance,
                    nodes.c.last_seen,
                )
            ).all(),
            columns=["node", "cpus", "mem_bytes", "maintenance", "last_seen"],
        )
    pair_of = config.pair_of()
    ordered = [n for p in config.pairs for n in p.nodes]
    ordered += sorted(set(stored["node"]) - set(ordered))
    table = pd.DataFrame({"node": ordered}).merge(stored, on="node", how="left")
    table.insert(1, "pair", [pair_of.get(n) for n in ordered])
    table["cpus"] = table["cpus"].astype("float64")
    table["mem_bytes"] = table["mem_bytes"].astype("float64")
    for override in config.nodes:
        row = table["node"] == override.name
        if override.cpus is not None:
            table.loc[row, "cpus"] = float(override.cpus)
        if override.mem_bytes is not None:
            table.loc[row, "mem_bytes"] = float(override.mem_bytes)
    table["maintenance"] = table["maintenance"].fillna(False).astype(bool)
    return table


def node_table(
    engine: Engine, config: Config, *, window: float = 3600, now: float | None = None
) -> pd.DataFrame:
    """Per node: capacity, how many VEs the store places on it, the sum of their p95 cpu
    and memory over the window, and the resulting utilisation. Columns: NODE_COLUMNS."""
    end = _now(now)
    table = node_capacity(engine, config)
    with engine.connect() as conn:
        placed = pd.DataFrame(
            conn.execute(sa.select(ves.c.ve, ves.c.node)).all(), columns=["ve", "node"]
        )
    stats = ve_stats(engine, start=end - window, end=end)
    placed = placed.join(stats[["cpu_p95", "mem_p95"]], on="ve")
    per_node = placed.groupby("node").agg(
        ves=("ve", "size"), cpu_used=("cpu_p95", "sum"), mem_used=("mem_p95", "sum")
    )
    table = table.join(per_node, on="node")
    with engine.connect() as conn:
        table = table.join(skew.table(conn), on="node")
    table["ves"] = table["ves"].fillna(0).astype(int)
    table["cpu_used"] = table["cpu_used"].fillna(0.0)
    table["mem_used"] = table["mem_used"].fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        table["cpu_util"] = table["cpu_used"] / table["cpus"]
        table["mem_util"] = table["mem_used"] / table["mem_bytes"]
    return table[NODE_COLUMNS].reset_index(drop=True)


def _quantile(statistic: str) -> float | None:
    if statistic in ("max", "mean"):
        return None
    if statistic in STATISTICS:
        return STATISTICS[statistic]
    if statistic.startswith("p") and statistic[1:].replace(".", "", 1).isdigit():
        q = float(statistic[1:]) / 100
        if 0 <= q <= 1:
            return q
    raise StoreError(f"statistic {statistic!r}: use mean, max or pNN such as p95")


def window_demand(
    engine: Engine, *, start: float, end: float, statistic: str = "p95"
) -> pd.DataFrame:
    """The ``statistic`` (pNN, mean or max) of cpu_used (cores) and mem_bytes per VE over
    samples with start < ts <= end. Index ve (sorted), columns cpu, mem (float). Long
    windows come from the hourly rollups (see lbvm.store.rollup for how)."""
    q = _quantile(statistic)
    watermark = _rolled_up(engine, start, end)
    if watermark is not None:
        hours = _hours(engine, start, end, watermark)
        if len(hours):
            return rollup.window_demand(hours, statistic, q)
    if engine.dialect.name == "postgresql":
        return _window_demand_sql(engine, start, end, statistic, q)
    frame = _window_samples(engine, start, end, ["ve", "cpu_used", "mem_bytes"])
    g = frame.groupby("ve")[["cpu_used", "mem_bytes"]]
    out = g.quantile(q) if q is not None else g.max() if statistic == "max" else g.mean()
    out = out.rename(columns={"cpu_used": "cpu", "mem_bytes": "mem"}).astype("float64")
    out.index.name = "ve"
    return out.sort_index()


def _split_points(engine: Engine, parts: int) -> list[str]:
    """VE names that cut the ves table into ``parts`` ranges of similar size (database
    collation order); none when it is too small to be worth splitting."""
    with engine.connect() as conn:
        names = conn.execute(sa.select(ves.c.ve).order_by(ves.c.ve)).scalars().all()
    if parts < 2 or len(names) < SPLIT_MIN_VES:
        return []
    step = len(names) / parts
    return list(dict.fromkeys(names[int(step * i)] for i in range(1, parts)))


def _window_demand_sql(
    engine: Engine, start: float, end: float, statistic: str, q: float | None
) -> pd.DataFrame:
    """Per VE of the ves table (ingest writes a VE's row with its first samples), one
    aggregate over its samples in the window: an index range scan of (ve, ts) that stops at
    the window's ends however much raw data the table keeps, and reads the index alone
    (cpu_used and mem_bytes are INCLUDEd) where autovacuum has marked the pages all-visible.
    One query per range of VE names, run in parallel: PostgreSQL does not parallelise
    ordered-set aggregates."""

    def agg(col: sa.ColumnElement[float]) -> sa.ColumnElement[float]:
        if q is None:
            return sa.func.max(col) if statistic == "max" else sa.func.avg(col)
        return sa.func.percentile_cont(q).within_group(col)

    s = ve_samples.alias("s")
    per_ve = (
        sa.select(
            sa.func.count().label("n"),
            agg(s.c.cpu_used).label("cpu"),
            agg(sa.cast(s.c.mem_bytes, sa.Float)).label("mem"),
        )
        .where(s.c.ve == ves.c.ve, s.c.ts > start, s.c.ts <= end)
        .lateral("w")
    )
    base = (
        sa.select(ves.c.ve, per_ve.c.cpu, per_ve.c.mem)
        .select_from(ves.join(per_ve, sa.true()))
        .where(per_ve.c.n > 0)
    )
    cuts = _split_points(engine, MAX_PARALLEL)
    bounds = list(zip([None, *cuts], [*cuts, None], strict=True))

    def run(bound: tuple[str | None, str | None]) -> list[Any]:
        query = base
        if bound[0] is not None:
            query = query.where(ves.c.ve >= bound[0])
        if bound[1] is not None:
            query = query.where(ves.c.ve < bound[1])
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL jit = off")  # compiling costs more than it saves
            return list(conn.execute(query).all())

    if len(bounds) == 1:
        rows = run(bounds[0])
    else:
        with ThreadPoolExecutor(max_workers=len(bounds)) as pool:
            rows = [r for part in pool.map(run, bounds) for r in part]
    out = pd.DataFrame(rows, columns=["ve", "cpu", "mem"]).set_index("ve")
    return out.astype("float64").sort_index()


def latest_placement(engine: Engine) -> pd.Series:
    """ve -> node the store believes each VE is on (VEs with no node are left out)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ves.c.ve, ves.c.node).where(ves.c.node.is_not(None)).order_by(ves.c.ve)
        ).all()
    index = pd.Index([r.ve for r in rows], name="ve")
    return pd.Series([r.node for r in rows], index=index, name="node", dtype=object)


def newest_sample_time(engine: Engine) -> float | None:
    """Time of the newest VE or node sample, None for an empty store."""
    with engine.connect() as conn:
        ve_ts = conn.execute(sa.select(sa.func.max(ve_samples.c.ts))).scalar()
        node_ts = conn.execute(sa.select(sa.func.max(nodes.c.last_seen))).scalar()
    known = [float(t) for t in (ve_ts, node_ts) if t is not None]
    return max(known) if known else None


def get_ve(engine: Engine, ve: str) -> dict[str, object]:
    """The ves row of one VE as a dict; NotFound names it when unknown."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(ves).where(ves.c.ve == ve)).mappings().first()
    if row is None:
        raise NotFound(f"unknown VE {ve!r}")
    return dict(row)


def set_ve_node(conn: Connection, ve: str, node: str) -> None:
    """Record where a VE now is (after a move), in the caller's transaction."""
    done = conn.execute(sa.update(ves).where(ves.c.ve == ve).values(node=node))
    if done.rowcount == 0:
        raise NotFound(f"unknown VE {ve!r}")


def set_flags(
    conn: Connection, ve: str, *, pinned: bool | None = None, balanced: bool | None = None
) -> None:
    """Pin/unpin a VE or take it in/out of balancing, in the caller's transaction."""
    values = {k: bool(v) for k, v in (("pinned", pinned), ("balanced", balanced)) if v is not None}
    if not values:
        return
    done = conn.execute(sa.update(ves).where(ves.c.ve == ve).values(**values))
    if done.rowcount == 0:
        raise NotFound(f"unknown VE {ve!r}")


def set_maintenance(conn: Connection, node: str, on: bool) -> None:
    """Mark a node for evacuation (never a target) or bring it back."""
    done = conn.execute(sa.update(nodes).where(nodes.c.name == node).values(maintenance=on))
    if done.rowcount == 0:
        raise NotFound(f"unknown node {node!r}")


def sync_nodes(conn: Connection, config: Config) -> None:
    """Write each configured node's pair into the nodes table (adding nodes not seen yet),
    and clear the pair of nodes no longer in any pair."""
    pair_of = config.pair_of()
    known = {r.name for r in conn.execute(sa.select(nodes.c.name))}
    conn.execute(sa.update(nodes).where(nodes.c.name.not_in(list(pair_of))).values(pair=None))
    for node, pair in pair_of.items():
        if node in known:
            conn.execute(sa.update(nodes).where(nodes.c.name == node).values(pair=pair))
        else:
            conn.execute(nodes.insert().values(name=node, pair=pair, maintenance=False))
