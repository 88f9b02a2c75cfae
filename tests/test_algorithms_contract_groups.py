"""Every registered algorithm keeps affinity groups whole, on seeded clusters with many
groups of two to four VEs, some on maintenance nodes, some with a pinned member."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_algorithms_contract import ALGORITHMS, apply, random_problem, small

from algorithms import registry
from algorithms.base import Problem
from algorithms.rules import group_ids
from lbvm.validate import units, validate


def grouped(seed: int, n_nodes: int, n_ves: int, *, maintenance: int, tiny: bool,
            max_moves: int | None = None, pin: bool = True) -> Problem:
    """A random cluster whose VEs sharing a node form affinity groups of two to four, three
    per node, the first ``maintenance`` nodes carrying VEs in maintenance (their groups must
    leave)."""
    p = random_problem(seed, n_nodes, n_ves, pinned=0.0, ruled=0.2, max_moves=max_moves,
                       tiny=tiny)
    rng = np.random.default_rng(seed)
    nodes = np.unique(p.placement)
    maint = np.zeros(p.n_nodes, dtype=bool)
    maint[nodes[:maintenance]] = True
    affinity = np.full(p.n_ves, -1)
    for node in nodes:
        on = np.flatnonzero(p.placement == node)
        for start in range(0, min(len(on), 12), 4):
            members = on[start:start + int(rng.integers(2, 5))]
            affinity[members] = affinity.max() + 1
    movable = np.ones(p.n_ves, dtype=bool)
    if pin and (affinity >= 0).any():
        movable[rng.choice(np.flatnonzero(affinity >= 0))] = False
    allowed = p.allowed.copy()
    allowed[~movable] = True  # a pinned VE breaks no rule by staying
    allowed[:, maint] = False
    return replace(p, affinity=affinity, movable=movable, allowed=allowed, maintenance=maint)


def together(problem: Problem, where: np.ndarray) -> bool:
    aff = group_ids(problem.affinity, problem.n_ves)
    return all(len(np.unique(where[aff == g])) == 1 for g in np.unique(aff[aff >= 0]))


@pytest.mark.parametrize("name", ALGORITHMS)
@pytest.mark.parametrize("seed", [21, 22, 23])
def test_groups_stay_whole(name: str, seed: int) -> None:
    algorithm = registry.load(name)
    problem = grouped(seed, 12, 120, maintenance=2, tiny=small(algorithm))
    plan = algorithm.plan(problem)
    assert validate(problem, plan) == [], name
    assert together(problem, apply(problem, plan))


def test_balance_evacuates_the_groups_of_maintenance_nodes() -> None:
    problem = grouped(24, 12, 120, maintenance=2, tiny=False, pin=False)
    plan = registry.load("balance").plan(problem)
    assert validate(problem, plan) == []
    where = apply(problem, plan)
    assert problem.maintenance is not None and problem.affinity is not None
    stuck = (problem.affinity >= 0) & problem.maintenance[where]
    assert not stuck.any() or any("no node can take the whole group" in n for n in plan.notes)
    runs = [u for u in units(problem, plan.moves) if len(u) > 1]
    assert runs, "groups of maintenance nodes move as units"


@given(seed=st.integers(0, 2**16), n_nodes=st.integers(2, 10), n_ves=st.integers(0, 60),
       maintenance=st.integers(0, 2), max_moves=st.sampled_from([None, 3]))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_groups_move_whole(seed: int, n_nodes: int, n_ves: int, maintenance: int,
                                    max_moves: int | None) -> None:
    for name in ALGORITHMS:
        algorithm = registry.load(name)
        problem = grouped(seed, n_nodes, n_ves, maintenance=maintenance, max_moves=max_moves,
                          tiny=small(algorithm))
        plan = algorithm.plan(problem)
        assert validate(problem, plan) == [], name
        assert together(problem, apply(problem, plan)), name
