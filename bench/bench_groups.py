"""Time ``balance`` on a large cluster with affinity groups, some on nodes in maintenance.

The cluster is ``bench_balance``'s (``lbvm.scenario.synthetic``, budget 10 % of the VEs as
moves, min_gain 0.02); on top, ``--groups`` affinity groups of two or three VEs that share a
node (seeded), and the first ``--maintenance`` nodes holding a group go into maintenance, so
their groups must leave as units. Prints the median CPU time of the plan, the moves, how many
of them are group moves (runs of one group's members to one node), the notes about groups
that had to stay, and whether the shared validator accepts the plan. With ``--groups 0`` the
same cluster and maintenance nodes without groups, to compare.

    .venv/bin/python bench/bench_groups.py [--nodes 1000] [--ves 20000] [--groups 1000]
        [--maintenance 10] [--seed 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np

from algorithms.balance import Balance
from algorithms.base import Problem
from lbvm.scenario import synthetic
from lbvm.validate import units, validate


def with_groups(problem: Problem, n_groups: int, n_maint: int, seed: int) -> Problem:
    """``problem`` with up to ``n_groups`` affinity groups of VEs sharing a node and the first
    ``n_maint`` nodes holding one in maintenance (the same nodes when ``n_groups`` is 0)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(problem.placement, kind="stable")
    aff = np.full(problem.n_ves, -1)
    g = i = 0
    while i < problem.n_ves - 3:
        block = order[i:i + int(rng.integers(2, 4))]
        if len(np.unique(problem.placement[block])) == 1:
            aff[block] = g
            g += 1
        i += len(block) + int(rng.integers(0, 20))
    maint = np.zeros(problem.n_nodes, dtype=bool)
    maint[np.unique(problem.placement[aff >= 0])[:n_maint]] = True
    aff[aff >= n_groups] = -1
    allowed = problem.allowed.copy()
    allowed[:, maint] = False
    return replace(problem, affinity=aff if n_groups else None, maintenance=maint,
                   allowed=allowed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--ves", type=int, default=20000)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--maintenance", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()

    problem = synthetic(args.nodes, args.ves, args.seed)
    problem = replace(problem, settings=replace(problem.settings,
                                                max_moves=max(1, args.ves // 10), min_gain=0.02))
    problem = with_groups(problem, args.groups, args.maintenance, args.seed)
    cpu_times = []
    plan = None
    for _ in range(args.runs):
        cpu = time.process_time()
        plan = Balance().plan(problem)
        cpu_times.append(time.process_time() - cpu)
    assert plan is not None
    n_groups = 0 if problem.affinity is None else len(np.unique(problem.affinity)) - 1
    runs = [u for u in units(problem, plan.moves) if len(u) > 1]
    stayed = [n for n in plan.notes if n.startswith("affinity group of")]
    reasons = validate(problem, plan)
    print(f"cluster        {args.nodes} nodes, {args.ves} VEs, {n_groups} affinity groups, "
          f"{args.maintenance} node(s) in maintenance, seed {args.seed}")
    print(f"plan cpu       median {statistics.median(cpu_times):.3f} s "
          f"(min {min(cpu_times):.3f}) over {args.runs} runs")
    print(f"moves          {len(plan.moves)}, of them {sum(map(len, runs))} in {len(runs)} "
          "group move(s)")
    print(f"groups stayed  {len(stayed)} (no node could take the whole group)")
    print(f"validates      {not reasons} ({len(reasons)} reasons)")


if __name__ == "__main__":
    main()
