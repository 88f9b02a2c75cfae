"""`lbm demo`: the whole pipeline on a simulated cluster, no config and no server needed."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import click
import numpy as np
import pandas as pd

from lblog.collect import collect
from lblog.deliver import deliver
from lblog.ha.agent import collect_ha
from lblog.ha.report import with_ha
from lbvm import demo as sim
from lbvm.config import Config, load
from lbvm.cycle import run_cycle
from lbvm.model import build_problem
from lbvm.store.engine import connect
from lbvm.store.ingest import ingest
from lbvm.store.queries import latest_placement, node_table
from lbvm.validate import headroom


def _nodes_view(frame: pd.DataFrame) -> pd.DataFrame:
    view = frame[["node", "pair", "ves", "cpus", "cpu_used", "cpu_util", "mem_bytes", "mem_used",
                  "mem_util"]].copy()
    view["cpu_used"] = view["cpu_used"].map(lambda x: f"{x:.1f}")
    view["cpu_util"] = view["cpu_util"].map(lambda x: f"{x:.0%}")
    view["mem_bytes"] = view["mem_bytes"].map(lambda x: f"{x / sim.GIB:.0f}G")
    view["mem_used"] = view["mem_used"].map(lambda x: f"{x / sim.GIB:.1f}G")
    view["mem_util"] = view["mem_util"].map(lambda x: f"{x:.0%}")
    view["bar"] = frame["mem_util"].map(lambda u: "#" * round(min(u, 1.2) * 30))
    return view


def _echo_table(frame: pd.DataFrame) -> None:
    click.echo(frame.to_string(index=False))


def _collect(work: sim.Workload, config: Config, start: float, n_rounds: int) -> int:
    """Run what `lblog collect --proc-root <tree>` does on every node, on the demo's clock."""
    files = 0
    for r in range(n_rounds):
        for node, proc in work.step():
            sample = collect(proc, node.name, now=start + r * sim.INTERVAL)
            # `lblog collect --drbd proc`: the pair's DRBD state rides along in the file
            ha = collect_ha([ve.ve for ve in sample.ves], drbd="proc", proc_root=proc)
            sample = with_ha(sample, ha)
            deliver(sample, config.spool, work.root / "backlog" / node.name)
            files += 1
    return files


def _lbm() -> str:
    """How to call lbm again: by name when PATH finds this one, else by the path that ran it."""
    me = Path(sys.argv[0]).absolute()
    found = shutil.which("lbm")
    if me.name != "lbm" or (found is not None and Path(found).absolute() == me):
        return "lbm"
    return os.path.relpath(me) if me.is_relative_to(Path.cwd()) else str(me)


def _spread(frame: pd.DataFrame) -> str:
    return (
        f"std of node utilisation: cpu {frame['cpu_util'].std(ddof=0):.3f}, "
        f"mem {frame['mem_util'].std(ddof=0):.3f}"
    )


@click.command()
@click.option("--dir", "folder", type=click.Path(path_type=Path), default=Path("lbvm-demo"),
              show_default=True, help="Folder for the demo's store, spool and /proc trees.")
@click.option("--pairs", default=4, show_default=True, help="HA pairs (two nodes each).")
@click.option("--ves", default=80, show_default=True, help="VEs in the cluster.")
@click.option("--rounds", "n_rounds", default=6, show_default=True,
              help="Collection rounds, five simulated minutes apart.")
@click.option("--seed", default=2008, show_default=True, help="Seed of the generated cluster.")
def demo(folder: Path, pairs: int, ves: int, n_rounds: int, seed: int) -> None:
    """Balance a simulated cluster of HA pairs from /proc files to executed moves.

    Writes each node's /proc in OpenVZ's formats, collects them with lblog, ingests the
    spool into an SQLite store, plans with `balance`, validates the plan (capacity after
    every move, failover headroom of every pair), executes it on the simulate backend and
    shows the nodes before and after. The folder is left for you to explore.

    Example: lbm demo --dir /tmp/lbvm-demo --pairs 6 --ves 150
    """
    started = time.monotonic()
    root = sim.prepare_dir(folder)
    cluster = sim.generate(pairs=pairs, ves=ves, seed=seed)
    cfg_path = sim.write_config(root, cluster)
    config = load(cfg_path)
    click.echo(f"cluster: {len(cluster.nodes)} nodes in {pairs} HA pairs, {ves} VEs -> {root}/")

    (root / "spool").mkdir()
    work = sim.Workload(cluster, root, seed=seed)
    # The rounds end two intervals ago: after the moves, two more rounds show their effect.
    start = time.time() - (n_rounds + 1) * sim.INTERVAL
    files = _collect(work, config, start, n_rounds)
    click.echo(f"lblog collect: {files} spool files ({n_rounds} rounds x {len(cluster.nodes)} "
               f"nodes) in {config.spool}/incoming/")

    engine = connect(config.database)
    result = ingest(engine, config.spool)
    click.echo(f"lbm ingest: {result.files} files, {result.ve_rows} VE samples, "
               f"{result.quarantined} quarantined")

    before = node_table(engine, config, window=config.balance.window)
    problem = build_problem(engine, config)
    hr_before = headroom(problem)
    click.echo("\nnodes before (memory bar: # = 1/30 of capacity)")
    _echo_table(_nodes_view(before))
    click.echo(_spread(before))

    cycle = run_cycle(engine, config, execute=True)
    plan = cycle.plan
    if cycle.reasons:
        raise click.ClickException("the plan was refused: " + "; ".join(cycle.reasons))
    click.echo(f"\nplan ({plan.algorithm}): {len(plan.moves)} moves, score "
               f"{plan.score_before:.3f} -> {plan.score_after:.3f}, validated")
    for note in plan.notes:
        click.echo(f"  note: {note}")
    for i, mv in enumerate(plan.moves, 1):
        click.echo(f"  {i:2d}. {mv.ve:>5} {mv.src} -> {mv.dst} ({mv.kind}) {mv.reason}")
    done = sum(r.state == "done" for r in cycle.results)
    click.echo(f"executed on the simulate backend: {done}/{len(cycle.results)} moves done")

    work.place({str(ve): str(node) for ve, node in latest_placement(engine).items()})
    files = _collect(work, config, start + n_rounds * sim.INTERVAL, 2)
    result = ingest(engine, config.spool)
    click.echo(f"\nthe next two cron rounds see the new placement: {result.files} files ingested")
    after = node_table(engine, config, window=2 * sim.INTERVAL)
    click.echo("\nnodes after")
    _echo_table(_nodes_view(after))
    click.echo(_spread(after))
    hr_after = headroom(build_problem(engine, config))
    broken_before = int(np.sum((hr_before < 0).any(axis=1)))
    broken_after = int(np.sum((hr_after < 0).any(axis=1)))
    click.echo(f"pairs that could not fail over: {broken_before} before, {broken_after} after")
    click.echo(f"imbalance score: {plan.score_before:.3f} -> {plan.score_after:.3f}  "
               f"({time.monotonic() - started:.1f} s)")
    click.echo(f"\nexplore it: {_lbm()} --config {cfg_path} list | nodes | pairs | log | report")
