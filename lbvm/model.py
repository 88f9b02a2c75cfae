"""Build the algorithms' Problem from the store and the config.

Choices worth knowing:
- Nodes are those of the config's pairs, in config order. A node that reported samples in
  the balance window but is in no pair is a config mistake: ConfigError names it (planning
  around it would ignore its VEs and could fill its partner blindly).
- VEs are those seen in the window. A VE with no usable sample statistic (e.g. only one
  sample, so no CPU rate yet) gets demand 0 and is not movable: we do not move what we have
  not measured.
- StaleData when the newest sample is older than ``balance.stale_after``, or a node of a
  pair (not in maintenance) has no samples or stopped reporting for that long.
- ``profile[V, T, R]`` (``balance.profile``; by default only for the algorithms that read
  one): each VE's p95 of every resource in each of the last ``balance.profile_window``
  hours, in the demand's units, an hour it has no figure for filled with its demand
  (lbvm.store.profile).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from algorithms.base import Problem, Settings
from lbvm import hastate, rules
from lbvm.config import RESOURCES, BalanceConfig, Config, ConsolidateConfig
from lbvm.errors import ConfigError, StaleData
from lbvm.store import profile, queries
from lbvm.store.schema import ve_samples, ves

VE_FRAME = ("ve", "node", "balanced", "pinned", "cpu", "mem", "mem_bytes", "disk_bytes")
NODE_FRAME = ("node", "pair", "cpus", "mem_bytes", "maintenance")


def settings_from(balance: BalanceConfig, resources: tuple[str, ...] = RESOURCES,
                  consolidate: ConsolidateConfig | None = None) -> Settings:
    """The config's balance section as arrays ordered like ``resources``, and its
    consolidate section (default: the defaults)."""
    cons = ConsolidateConfig() if consolidate is None else consolidate

    def vector(values: dict[str, float], key: str) -> np.ndarray:
        missing = [r for r in resources if r not in values]
        if missing:
            raise ConfigError(f"[balance].{key} has no value for {', '.join(missing)}")
        return np.array([float(values[r]) for r in resources])

    return Settings(
        max_utilisation=vector(balance.max_utilisation, "max_utilisation"),
        failover_overcommit=vector(balance.failover_overcommit, "failover_overcommit"),
        weights=vector(balance.weights, "weights"),
        max_moves=balance.max_moves,
        max_bytes=balance.max_bytes,
        max_moves_per_node=balance.max_moves_per_node,
        min_gain=balance.min_gain,
        quantile=cons.quantile,
        pair_quantile=cons.pair_quantile,
        headroom=cons.headroom,
        inflow=cons.inflow,
    )


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks column(s) {', '.join(missing)}")


def problem_from_frame(
    ve_frame: pd.DataFrame, node_frame: pd.DataFrame, balance: BalanceConfig,
    consolidate: ConsolidateConfig | None = None,
) -> Problem:
    """A Problem from plain DataFrames (no database), for build_problem and for tests.

    ve_frame: one row per VE with VE_FRAME columns; cpu and mem are the demand statistic
    (NaN: not measured), mem_bytes and disk_bytes the latest sizes (move cost).
    node_frame: one row per node with NODE_FRAME columns, in the order the Problem keeps;
    pair None means not in a pair (-1).
    """
    _require(ve_frame, VE_FRAME, "VE")
    _require(node_frame, NODE_FRAME, "node")
    node_names = tuple(str(n) for n in node_frame["node"])
    if len(set(node_names)) != len(node_names):
        raise ConfigError("a node is listed twice")
    index = {n: i for i, n in enumerate(node_names)}
    ve_frame = ve_frame.sort_values("ve", kind="stable").reset_index(drop=True)
    placement = ve_frame["node"].map(index)
    if bool(placement.isna().any()):
        row = ve_frame.loc[placement.isna()].iloc[0]
        raise ConfigError(f"VE {row['ve']} is on node {row['node']!r}, which is in no pair")
    capacity = node_frame[["cpus", "mem_bytes"]].to_numpy(dtype=np.float64, na_value=np.nan)
    unknown = np.isnan(capacity).any(axis=1)
    if unknown.any():
        raise StaleData(
            f"node {node_names[int(np.argmax(unknown))]} has no capacity: it never reported "
            "and the config gives no cpus/mem_bytes for it"
        )
    pairs = node_frame["pair"].astype(object).where(node_frame["pair"].notna(), None)
    codes, _ = pd.factorize(pairs, use_na_sentinel=True)
    demand = ve_frame[["cpu", "mem"]].to_numpy(dtype=np.float64, na_value=np.nan)
    measured = ~np.isnan(demand).any(axis=1)
    demand = np.nan_to_num(demand, nan=0.0).clip(min=0.0)
    mem = ve_frame["mem_bytes"].to_numpy(dtype=np.float64, na_value=0.0)
    disk = ve_frame["disk_bytes"].to_numpy(dtype=np.float64, na_value=0.0)
    move_cost = np.stack([mem, mem + disk], axis=1).clip(min=0).astype(np.int64)
    maintenance = node_frame["maintenance"].fillna(False).to_numpy(dtype=bool)
    n_ves = len(ve_frame)
    allowed = np.ones((n_ves, len(node_names)), dtype=bool)
    allowed[:, maintenance] = False
    balanced = ve_frame["balanced"].fillna(True).to_numpy(dtype=bool)
    pinned = ve_frame["pinned"].fillna(False).to_numpy(dtype=bool)
    return Problem(
        ves=tuple(str(v) for v in ve_frame["ve"]),
        nodes=node_names,
        resources=RESOURCES,
        demand=demand.reshape(n_ves, len(RESOURCES)),
        capacity=capacity,
        placement=placement.to_numpy(dtype=np.int64),
        pair=codes.astype(np.int64),
        movable=balanced & ~pinned & measured,
        allowed=allowed,
        move_cost=move_cost.reshape(n_ves, 2),
        settings=settings_from(balance, consolidate=consolidate),
        maintenance=maintenance,
    )


def _check_fresh(engine: Engine, nodes: pd.DataFrame, config: Config, now: float) -> None:
    stale_after = config.balance.stale_after
    newest = queries.newest_sample_time(engine)
    if newest is None:
        raise StaleData("the store has no samples yet: run the agents and `lbm ingest`")
    if newest < now - stale_after:
        raise StaleData(
            f"the newest sample is {now - newest:.0f}s old (stale_after is {stale_after:.0f}s)"
        )
    paired = nodes[nodes["pair"].notna() & ~nodes["maintenance"]]
    never = paired[paired["last_seen"].isna()]
    if len(never):
        row = never.iloc[0]
        raise StaleData(f"node {row['node']} of pair {row['pair']} has no samples")
    old = paired[paired["last_seen"] < now - stale_after]
    if len(old):
        row = old.iloc[0]
        raise StaleData(
            f"node {row['node']} of pair {row['pair']} last reported "
            f"{now - float(row['last_seen']):.0f}s ago (stale_after is {stale_after:.0f}s)"
        )


def _ve_frame(engine: Engine, config: Config, start: float, now: float) -> pd.DataFrame:
    query = (
        sa.select(
            ves.c.ve,
            ves.c.node,
            ves.c.balanced,
            ves.c.pinned,
            ve_samples.c.mem_bytes,
            ve_samples.c.disk_bytes,
        )
        .select_from(
            ves.outerjoin(
                ve_samples, (ve_samples.c.ve == ves.c.ve) & (ve_samples.c.ts == ves.c.last_seen)
            )
        )
        .where(ves.c.last_seen > start)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    frame = pd.DataFrame(
        rows, columns=["ve", "node", "balanced", "pinned", "mem_bytes", "disk_bytes"]
    )
    demand = queries.window_demand(engine, start=start, end=now, statistic=config.balance.statistic)
    frame["ve"] = frame["ve"].astype(object)
    demand.index = demand.index.astype(object)
    return frame.join(demand, on="ve")


def build_problem(engine: Engine, config: Config, *, now: float | None = None,
                  algorithm: str | None = None) -> Problem:
    """The Problem for the window [now - balance.window, now]; see the module docstring.
    ``algorithm`` (default: the configured one) decides whether a profile is built when
    ``balance.profile`` is "auto"."""
    now = time.time() if now is None else float(now)
    start = now - config.balance.window
    nodes = queries.node_capacity(engine, config)
    unpaired = nodes[nodes["pair"].isna() & (nodes["last_seen"] > start)]
    if len(unpaired):
        name = unpaired.iloc[0]["node"]
        raise ConfigError(f"node {name} is not in any pair: add it to [[pairs]] in the config")
    if not config.pairs:
        raise ConfigError("the config has no [[pairs]]: nothing to balance")
    _check_fresh(engine, nodes, config, now)
    paired = nodes[nodes["pair"].notna()].reset_index(drop=True)
    problem = problem_from_frame(_ve_frame(engine, config, start, now), paired, config.balance,
                                 config.consolidate)
    if config.balance.wants_profile(algorithm):
        prof = profile.hourly(engine, problem.ves, problem.demand, end=now,
                              steps=config.balance.profile_steps)
        problem = replace(problem, profile=prof)
    # Degraded pairs take no new VEs; unhealthy replication forbids a switchover.
    problem = hastate.apply(problem, engine, config, now)
    # The site's placement rules and groups, and each VE's beancounter failures.
    failcnt = rules.failcnt_growth(engine, problem.ves, start, now)
    return rules.apply(problem, config, failcnt=failcnt)
