"""How close ``balance`` comes to the exact optimum on small clusters.

On seeded random small clusters (``lbvm.scenario.synthetic``: 2–4 HA pairs, up to 40 VEs,
no move budget unless ``--max-moves`` gives both one) both ``balance`` and ``optimal`` (the
MILP, HiGHS) plan; the measure is the highest node utilisation over the weighted resources
after each plan, the quantity ``optimal`` minimises. Prints the median, p90 and worst
relative gap of ``balance`` to the MILP's placement, how many MILPs were proven optimal
within the time limit, the moves each planned, how many second runs of ``balance`` on its
own result planned anything (churn), and the CPU time spent. Targets: median ≤ 2 %, worst
≤ 10 %, no second run planning anything (without a budget).

    .venv/bin/python bench/bench_optimal.py [--instances 200] [--time-limit 5] [--seed 0]
        [--max-moves 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import numpy as np

import algorithms.optimal as optimal_module
from algorithms.balance import Balance
from algorithms.base import Plan, Problem
from algorithms.optimal import Optimal
from lbvm.scenario import synthetic
from lbvm.validate import validate


def after(problem: Problem, plan: Plan) -> np.ndarray:
    """The placement [V] the plan leaves."""
    return problem.placement_after(plan.moves)


def peak(problem: Problem, plan: Plan) -> float:
    """Highest node utilisation over the weighted resources after the plan."""
    use = np.asarray(problem.settings.weights) > 0
    return float(problem.utilisation(after(problem, plan))[:, use].max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=200)
    ap.add_argument("--time-limit", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-moves", type=int, default=None, help="move budget (default: none)")
    args = ap.parse_args()
    optimal_module.TIME_LIMIT = args.time_limit

    rng = np.random.default_rng(args.seed)
    gaps, proven, invalid, again, spent = [], 0, 0, 0, 0
    moves = {"balance": 0, "optimal": 0}
    t_balance = t_optimal = 0.0
    for i in range(args.instances):
        n_nodes = int(rng.choice([4, 6, 8]))
        n_ves = int(rng.integers(n_nodes * 2, 41))
        problem = synthetic(n_nodes, n_ves, args.seed * 100_000 + i, pinned_share=0.1)
        problem = replace(problem, settings=replace(problem.settings, max_moves=args.max_moves))
        t = time.process_time()
        by_balance = Balance().plan(problem)
        t_balance += time.process_time() - t
        t = time.process_time()
        by_milp = Optimal().plan(problem)
        t_optimal += time.process_time() - t
        invalid += bool(validate(problem, by_balance)) + bool(validate(problem, by_milp))
        moves["balance"] += len(by_balance.moves)
        spent += args.max_moves is not None and len(by_balance.moves) >= args.max_moves
        moves["optimal"] += len(by_milp.moves)
        settled = replace(problem, placement=after(problem, by_balance))
        again += bool(Balance().plan(settled).moves)
        proven += any(n.startswith("milp: optimal") for n in by_milp.notes)
        best = peak(problem, by_milp)
        gaps.append((peak(problem, by_balance) - best) / best if best > 0 else 0.0)
    gaps_pct = np.array(gaps) * 100
    budget = "no budget" if args.max_moves is None else f"budget {args.max_moves} moves"
    print(f"instances      {args.instances} (4–8 nodes, 8–40 VEs, seed {args.seed}, {budget})")
    print(f"balance gap    median {statistics.median(gaps_pct):.2f} %, "
          f"p90 {np.percentile(gaps_pct, 90):.2f} %, worst {gaps_pct.max():.2f} %")
    print(f"milp proven    {proven} of {args.instances} optimal within {args.time_limit:g} s")
    print(f"moves          balance {moves['balance']}, optimal {moves['optimal']}")
    print(f"second run     balance planned moves again on {again} of {args.instances}"
          f"{'' if args.max_moves is None else f' ({spent} used the whole budget)'}")
    print(f"cpu seconds    balance {t_balance:.2f}, optimal {t_optimal:.1f}")
    print(f"invalid plans  {invalid}")


if __name__ == "__main__":
    main()
