"""Time the ``balance`` algorithm on a large skewed cluster of HA pairs and report the result.

The cluster comes from ``lbvm.scenario.synthetic``: pairs of equal nodes (1×, 1.5×, 2× of
64 cores / 512 GiB), VEs of 1–64 GiB and 1–16 cores, about a fifth of the nodes near full
memory and the rest light, seeded. Budget: 10 % of the VEs as moves, min_gain 0.02 (the
scale-free default: a move must lower the spread by min_gain / N, twice that across pairs).
Prints the median plan time of the runs, moves, share of VEs moved, the
std of node cpu/mem utilisation before and after, and whether the shared validator accepts
the plan. Targets at 1,000 nodes / 20,000 VEs: ≤ 1 s, ≤ 10 % of VEs moved, std mem
~0.24 → ≤ 0.03 and cpu ~0.19 → ≤ 0.06.

    .venv/bin/python bench/bench_balance.py [--nodes 1000] [--ves 20000] [--seed 1] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np

from algorithms.balance import Balance
from lbvm.scenario import synthetic
from lbvm.validate import validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--ves", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--min-gain", type=float, default=0.02)
    args = ap.parse_args()

    problem = synthetic(args.nodes, args.ves, args.seed)
    budget = max(1, args.ves // 10)
    problem = replace(problem, settings=replace(problem.settings, max_moves=budget,
                                                min_gain=args.min_gain))
    times, cpu_times = [], []
    plan = None
    for _ in range(args.runs):
        wall, cpu = time.perf_counter(), time.process_time()
        plan = Balance().plan(problem)
        times.append(time.perf_counter() - wall)
        cpu_times.append(time.process_time() - cpu)
    assert plan is not None

    t = time.perf_counter()
    reasons = validate(problem, plan)
    validate_s = time.perf_counter() - t

    after = problem.placement_after(plan.moves)
    before_std = problem.utilisation().std(axis=0)
    after_std = problem.utilisation(after).std(axis=0)
    moved = len({m.ve for m in plan.moves})
    switchovers = sum(m.kind == "switchover" for m in plan.moves)

    print(f"cluster        {problem.n_nodes} nodes in {problem.n_nodes // 2} pairs, "
          f"{problem.n_ves} VEs, seed {args.seed}, budget {budget} moves")
    print(f"plan seconds   median {statistics.median(times):.3f} "
          f"(min {min(times):.3f}, cpu {statistics.median(cpu_times):.3f}) over {args.runs} runs")
    print(f"moves          {len(plan.moves)} ({switchovers} switchovers), "
          f"{moved} VEs = {moved / problem.n_ves:.1%} of VEs moved")
    for r, name in enumerate(problem.resources):
        print(f"std {name:<10} {before_std[r]:.3f} → {after_std[r]:.3f}")
    print(f"max util       {np.round(problem.utilisation().max(axis=0), 2)} → "
          f"{np.round(problem.utilisation(after).max(axis=0), 2)}")
    print(f"score          {plan.score_before:.4f} → {plan.score_after:.4f}")
    print(f"validates      {not reasons} ({len(reasons)} reasons, {validate_s:.3f} s)")
    for note in plan.notes:
        print(f"note           {note}")


if __name__ == "__main__":
    main()
