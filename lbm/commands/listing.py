"""`lbm list`, `lbm nodes`, `lbm pairs`: what the store knows about the cluster now."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from lbm.context import State, pass_state
from lbm.output import emit, output_options
from lbm.params import DURATION

if TYPE_CHECKING:
    import pandas as pd

STATES = ("balanced", "excluded", "pinned", "unseen")

_WINDOW = click.option(
    "--window",
    type=DURATION,
    default=None,
    help="Statistics over this window, e.g. 1h or 24h (default: [balance].window).",
)


def _sorted(frame: pd.DataFrame, sort: str | None, default: str) -> pd.DataFrame:
    """Sort by a column; a leading '-' sorts descending. Unknown columns are usage errors."""
    key = sort or default
    column = key.lstrip("-")
    if column not in frame.columns:
        raise click.BadParameter(
            f"no column {column!r}; choose from {', '.join(map(str, frame.columns))}",
            param_hint="--sort",
        )
    return frame.sort_values(column, ascending=not key.startswith("-"), kind="stable")


@click.command("list")
@click.option("--node", help="Only VEs on this node.")
@click.option("--pair", help="Only VEs on the nodes of this pair.")
@click.option("--pinned/--unpinned", default=None, help="Only pinned, or only unpinned VEs.")
@click.option(
    "--state",
    "state_filter",
    type=click.Choice(STATES),
    help="balanced: the balancer may move it; excluded: taken out with `lbm remove`; "
    "pinned; unseen: no sample in the window.",
)
@click.option("--sort", help="Column to sort by; prefix '-' for descending (e.g. -cpu_p95).")
@_WINDOW
@output_options
@pass_state
def list_ves(
    state: State,
    node: str | None,
    pair: str | None,
    pinned: bool | None,
    state_filter: str | None,
    sort: str | None,
    window: float | None,
    fmt: str,
) -> None:
    """List VEs with their recent use, where they run and their flags.

    Columns: ve, node, pair, balanced, pinned, cpu, cpu_p95, mem_bytes, mem_p95,
    disk_bytes, failcnt_delta, last_seen. cpu is the mean and cpu_p95 the 95th percentile
    of cores used over the window; mem_bytes and disk_bytes the latest sizes, mem_p95 the
    95th percentile of resident memory; failcnt_delta how much the beancounter failure
    counters grew. pair comes from the config's [[pairs]].

    Example: lbm list --pair pair1 --sort -cpu_p95
    """
    from lbvm.store.queries import ve_table

    config = state.config
    frame = ve_table(state.engine, window=window or config.balance.window)
    frame["pair"] = frame["node"].map(config.pair_of()).astype(object)
    if node is not None:
        frame = frame[frame["node"] == node]
    if pair is not None:
        frame = frame[frame["pair"] == pair]
    if pinned is not None:
        frame = frame[frame["pinned"] == pinned]
    if state_filter == "balanced":
        frame = frame[frame["balanced"] & ~frame["pinned"]]
    elif state_filter == "excluded":
        frame = frame[~frame["balanced"]]
    elif state_filter == "pinned":
        frame = frame[frame["pinned"]]
    elif state_filter == "unseen":
        frame = frame[frame["cpu_p95"].isna() & frame["mem_p95"].isna()]
    emit(_sorted(frame, sort, "ve"), fmt)


@click.command()
@click.option("--sort", help="Column to sort by; prefix '-' for descending (e.g. -mem_util).")
@_WINDOW
@output_options
@pass_state
def nodes(state: State, sort: str | None, window: float | None, fmt: str) -> None:
    """List nodes with their capacity and recent use.

    Columns: node, pair, cpus, mem_bytes, ves, cpu_used, mem_used, cpu_util, mem_util,
    maintenance, last_seen. cpu_used and mem_used add up the 95th percentiles of the
    node's VEs over the window; cpu_util and mem_util divide them by the node's capacity.

    Example: lbm nodes --sort -cpu_util --format csv
    """
    from lbvm.store.queries import node_table

    config = state.config
    frame = node_table(state.engine, config, window=window or config.balance.window)
    emit(_sorted(frame, sort, "node") if sort else frame, fmt)


@click.command()
@output_options
@pass_state
def pairs(state: State, fmt: str) -> None:
    """List HA pairs: their load and whether a survivor could carry it.

    Columns: pair, nodes, ves, cpu_used, cpu_util, cpu_headroom, mem_used, mem_util,
    mem_headroom, failover, ha, ha_reasons. Loads are the demand the balancer plans with
    ([balance].statistic over [balance].window). cpu_headroom and mem_headroom are what the
    weaker node of the pair could still take if it had to run all of the pair's VEs (within
    [balance].failover_overcommit). ha is the pair's HA state from the nodes' latest
    reports: healthy, degraded (a node offline, unclean or in standby, replication not
    Connected/UpToDate, split brain, failed actions; ha_reasons says which) or unknown (no
    HA state reported). failover is 'no' (without failover) when a headroom is negative or
    the pair is degraded; a degraded pair takes no new VEs.

    Example: lbm pairs --format json
    """
    import numpy as np

    from lbvm.hastate import judge
    from lbvm.model import build_problem
    from lbvm.store.ha import load as load_ha
    from lbvm.validate import headroom

    problem = build_problem(state.engine, state.config)
    ha = judge(load_ha(state.engine), state.config)
    load = problem.load()
    room = headroom(problem)
    names = state.config.pair_of()
    rows = []
    for p in range(room.shape[0]):
        members = [n for i, n in enumerate(problem.nodes) if problem.pair[i] == p]
        idx = np.flatnonzero(problem.pair == p)
        used = load[idx].sum(axis=0)
        cap = problem.capacity[idx].sum(axis=0)
        row: dict[str, object] = {
            "pair": names.get(members[0], f"#{p}") if members else f"#{p}",
            "nodes": ",".join(members),
            "ves": int(np.isin(problem.placement, idx).sum()),
        }
        for r, name in enumerate(problem.resources):
            row[f"{name}_used"] = float(used[r])
            row[f"{name}_util"] = float(used[r] / cap[r]) if cap[r] else None
            row[f"{name}_headroom"] = float(room[p, r])
        verdict = ha.get(str(row["pair"]))
        degraded = verdict is not None and verdict.known and bool(verdict.reasons)
        row["failover"] = bool((room[p] >= 0).all()) and not degraded
        row["ha"] = verdict.state if verdict is not None else "unknown"
        row["ha_reasons"] = verdict.text() if verdict is not None else ""
        rows.append(row)
    emit(rows, fmt)
