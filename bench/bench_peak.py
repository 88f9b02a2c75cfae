"""Time the ``peak`` algorithm on a large cluster whose VEs peak at different hours.

2,000 nodes in 1,000 pairs, 50,000 VEs, 3 resources (cpu, mem, net), a 288-step
(five-minute) daily profile per VE in float32: a base load plus a bump at one of six
hours, so VEs whose bumps coincide crowd some nodes at some hours — what a p95 average
cannot see. Prints plan time, moves, the hottest node's peak and the mean of node peaks
before and after, and whether the shared validator accepts the plan. Target: ≤ 5 s.

    .venv/bin/python bench/bench_peak.py [--nodes 2000] [--ves 50000] [--steps 288] [--moves 2000]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from algorithms.base import Problem
from algorithms.common import inverse_capacity, node_sums
from algorithms.peak import Peak
from lbvm.scenario import synthetic
from lbvm.validate import validate


def profiled(n_nodes: int, n_ves: int, steps: int, seed: int) -> Problem:
    """``synthetic`` plus a net resource and a daily profile per VE (float32)."""
    base = synthetic(n_nodes, n_ves, seed, hot_share=0.0)
    rng = np.random.default_rng(seed)
    t = np.arange(steps, dtype=np.float32) / steps * 24
    peak_hour = rng.choice(np.array([3, 9, 12, 15, 19, 22], dtype=np.float32), n_ves)
    width = rng.uniform(1, 3, n_ves).astype(np.float32)
    bump = np.exp(-0.5 * ((t[None, :] - peak_hour[:, None]) / width[:, None]) ** 2)
    level = 0.4 + 0.6 * bump  # [V, T]: 40 % at rest, 100 % at the VE's peak hour
    net = rng.uniform(1e6, 40e6, n_ves)  # bytes/s at peak
    top = np.column_stack([base.demand, net]).astype(np.float32)  # [V, 3]
    profile = level[:, :, None] * top[:, None, :]
    profile[:, :, 1] = top[:, None, 1]  # memory does not follow the hour
    # twice the memory of ``synthetic``'s nodes, so every pair can fail over at the start
    capacity = np.column_stack([base.capacity * [1, 2], np.full(n_nodes, 10e9 / 8)])
    s = base.settings
    settings = replace(s, max_utilisation=np.r_[s.max_utilisation, 0.9],
                       failover_overcommit=np.r_[s.failover_overcommit, 1.0],
                       weights=np.r_[s.weights, 1.0])
    demand = np.percentile(profile, 95, axis=1)
    return replace(base, resources=("cpu", "mem", "net"), demand=demand, capacity=capacity,
                   profile=profile, settings=settings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=2000)
    ap.add_argument("--ves", type=int, default=50000)
    ap.add_argument("--steps", type=int, default=288)
    ap.add_argument("--moves", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    t = time.perf_counter()
    problem = profiled(args.nodes, args.ves, args.steps, args.seed)
    problem = replace(problem, settings=replace(problem.settings, max_moves=args.moves))
    built = time.perf_counter() - t
    wall, cpu = time.perf_counter(), time.process_time()
    plan = Peak().plan(problem)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    reasons = validate(problem, plan)

    after = problem.placement_after(plan.moves)
    assert problem.profile is not None
    prof = np.asarray(problem.profile, dtype=np.float32)
    inv = inverse_capacity(problem)[:, None, :]
    peaks = [(node_sums(prof, where, problem.n_nodes) * inv).max(axis=(1, 2))
             for where in (problem.placement, after)]
    print(f"cluster        {problem.n_nodes} nodes, {problem.n_ves} VEs, "
          f"{len(problem.resources)} resources, {args.steps} steps (built in {built:.1f} s)")
    print(f"plan seconds   {wall:.2f} (cpu {cpu:.2f})")
    print(f"moves          {len(plan.moves)} (budget {args.moves})")
    print(f"hottest peak   {peaks[0].max():.3f} → {peaks[1].max():.3f}")
    print(f"mean peak      {peaks[0].mean():.3f} → {peaks[1].mean():.3f}")
    print(f"nodes > 0.9    {(peaks[0] > 0.9).sum()} → {(peaks[1] > 0.9).sum()}")
    print(f"validates      {not reasons} ({len(reasons)} reasons)")
    for note in plan.notes[:8]:
        print(f"note           {note}")


if __name__ == "__main__":
    main()
