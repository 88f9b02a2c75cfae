"""How long the first plan of a replay runs in the executor, with and without its moves
ordered in waves (``algorithms.waves``), and how far per-VE p95s overstate summed use.

Builds the replay's first Problem for a scenario (the start placement after interval 0),
plans with ``consolidate`` and times the moves as the executor starts them
(``lbvm.sim.replay.timeline``). Then, over the trace, compares the p95 of the summed CPU of
random groups of VEs with the sum of their p95s.

    .venv/bin/python bench/bench_first_plan.py [--trace DIR] [--scenario FILE]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import algorithms.consolidate as consolidate
from algorithms.base import Move, Plan, Problem
from lbvm.executor import dependencies
from lbvm.sim import replay as rp
from lbvm.sim import scenario as sc
from lbvm.sim.placement import initial
from lbvm.sim.traces import read_planetlab

REPO = Path(__file__).resolve().parents[1]
DAY = REPO.parent / "shared" / "traces" / "planetlab" / "20110303"
SCENARIO = REPO / "tests" / "scenarios" / "cloudsim" / "planetlab-800-noha-sized.toml"


def ends(problem: Problem, plan: Plan, planner: Any, bandwidth: float) -> tuple[float, int]:
    """Seconds until the plan's last move ends, and the most moves into one node."""
    nodes = {n: i for i, n in enumerate(problem.nodes)}
    ves = {v: i for i, v in enumerate(problem.ves)}
    src = np.array([nodes[m.src] for m in plan.moves])
    dst = np.array([nodes[m.dst] for m in plan.moves])
    ve = np.array([ves[m.ve] for m in plan.moves])
    same = (problem.pair[src] >= 0) & (problem.pair[src] == problem.pair[dst])
    secs = np.where(same, problem.move_cost[ve, 0], problem.move_cost[ve, 1]) / bandwidth
    limits = planner.limits
    start = rp.timeline(secs, src, dst, dependencies(plan.moves, limits.pairs), limits, 0.0)
    return float((start + secs).max()), int(np.bincount(dst).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=DAY)
    ap.add_argument("--scenario", type=Path, default=SCENARIO)
    args = ap.parse_args()
    scenario = sc.load(args.scenario)
    trace = rp.sorted_trace(read_planetlab(args.trace, types=scenario.vm_types))
    cluster = scenario.cluster(trace.n_ves)
    where = initial(trace, cluster, scenario.placement)
    move_mem = None
    if scenario.memory == "cloudsim-null":
        move_mem = trace.mem_size
        trace = replace(trace, mem=np.where(np.isnan(trace.mem), np.nan, 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        engine = rp._store(cluster, trace, where, Path(tmp))
        planner = rp._Planner(engine, trace, cluster, scenario, consolidate.Consolidate(),
                              "consolidate", move_mem)
        problem = planner.problem(0, where)
        plan = consolidate.Consolidate().plan(problem)
        waves = consolidate.in_waves

        def as_made(moves: list[Move], unit_of: dict[str, int]) -> list[Move]:
            return list(moves)

        consolidate.in_waves = as_made  # type: ignore[assignment]
        try:
            unordered = consolidate.Consolidate().plan(problem)
        finally:
            consolidate.in_waves = waves
        engine.dispose()
    for name, p in (("in waves", plan), ("as made", unordered)):
        end, most = ends(problem, p, planner, scenario.bandwidth)
        print(f"first plan {name:<9} {len(p.moves)} moves, at most {most} into one node, "
              f"last ends after {end:.0f} s ({end / 60:.1f} min)")
    cpu = np.nan_to_num(trace.cpu)
    p95 = np.quantile(cpu, 0.95, axis=1)
    print(f"cores used, mean over the day {cpu.sum(axis=0).mean():.1f}; sum of per-VE p95 "
          f"over the day {p95.sum():.1f}")
    rng = np.random.default_rng(0)
    for k in (10, 20, 30):
        ratio = [np.quantile(cpu[g].sum(axis=0), 0.95) / p95[g].sum()
                 for g in (rng.choice(trace.n_ves, k, replace=False) for _ in range(500))]
        print(f"groups of {k} VEs: p95 of the summed CPU / sum of their p95s = "
              f"{np.mean(ratio):.2f} (mean of 500 random groups)")


if __name__ == "__main__":
    main()
