"""The contract every registered algorithm must keep, on seeded random clusters of HA pairs.

Parametrised over ``registry.available()``, so a newly registered algorithm is checked the
same way as the built-in ones.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algorithms import registry
from algorithms.base import Algorithm, Plan, Problem
from lbvm.scenario import synthetic
from lbvm.validate import validate

ALGORITHMS = sorted(registry.available())


def report_only(algorithm: Algorithm) -> bool:
    """Algorithms that only report (``threshold``) plan no moves by design."""
    return algorithm.name == "threshold"


def small(algorithm: Algorithm) -> bool:
    """Exact algorithms declare ``max_cells`` (V × N they accept): they get small clusters."""
    return getattr(algorithm, "max_cells", None) is not None


def random_problem(seed: int, n_nodes: int = 12, n_ves: int = 120, *, pinned: float = 0.1,
                   maintenance: int = 0, ruled: float = 0.0, lone: int = 0,
                   max_moves: int | None = None, max_bytes: float | None = None,
                   per_node: int | None = None, groups: bool = False, tiny: bool = False
                   ) -> Problem:
    """A skewed cluster with optional pins, maintenance nodes, host rules, nodes outside any
    pair (``lone``: the last ones), budgets, and ``groups``: affinity and anti-affinity
    groups and should rules. ``tiny`` caps it at 6 nodes and 18 VEs (for exact solvers)."""
    if tiny:
        n_nodes, n_ves = min(n_nodes, 6), min(n_ves, 18)
        maintenance, lone = min(maintenance, 1), min(lone, 1)
    rng = np.random.default_rng(seed)
    p = synthetic(n_nodes, n_ves, seed, pinned_share=pinned)
    maint = np.zeros(p.n_nodes, dtype=bool)
    maint[rng.choice(p.n_nodes, size=min(maintenance, p.n_nodes), replace=False)] = True
    allowed = np.ones((p.n_ves, p.n_nodes), dtype=bool)
    ruled_ves = rng.random(p.n_ves) < ruled
    allowed[ruled_ves] = rng.random((int(ruled_ves.sum()), p.n_nodes)) < 0.5
    allowed[:, maint] = False
    s = replace(p.settings, max_moves=max_moves, max_moves_per_node=per_node, min_gain=0.02,
                max_bytes=None if max_bytes is None else int(max_bytes))
    pair = p.pair.copy()
    pair[len(pair) - min(lone, len(pair)):] = -1
    out = replace(p, allowed=allowed, maintenance=maint, settings=s, pair=pair)
    if not groups or not p.n_ves:
        return out
    # three anti-affinity groups of three, two affinity pairs sharing a node, should rules
    anti = np.full(p.n_ves, -1)
    anti[rng.choice(p.n_ves, size=min(9, p.n_ves), replace=False)] = np.arange(
        min(9, p.n_ves)) % 3
    affinity = np.full(p.n_ves, -1)
    for g, node in enumerate(np.unique(p.placement)[:2]):
        on = np.flatnonzero((p.placement == node) & (anti < 0))[:2]
        affinity[on] = g
    pref = np.zeros((p.n_ves, p.n_nodes), dtype=bool)
    some = rng.random(p.n_ves) < 0.2
    pref[some] = rng.random((int(some.sum()), p.n_nodes)) < 0.5
    return replace(out, anti_affinity=anti, affinity=affinity, preferred=pref)


def apply(problem: Problem, plan: Plan) -> np.ndarray:
    return problem.placement_after(plan.moves)


@pytest.fixture(params=ALGORITHMS)
def algorithm(request: pytest.FixtureRequest) -> Algorithm:
    return registry.load(request.param)


CASES = {
    "plain": {},
    "pins-and-rules": {"pinned": 0.3, "ruled": 0.3},
    "maintenance": {"maintenance": 2},
    "move-budget": {"max_moves": 5},
    "byte-budget": {"max_bytes": 200 * 1024**3},
    "per-node-budget": {"per_node": 2},
    "large": {"n_nodes": 40, "n_ves": 800},
    "nodes-outside-pairs": {"lone": 3},
    "groups-and-should-rules": {"groups": True},
    "groups-and-maintenance": {"groups": True, "maintenance": 2, "pinned": 0.2},
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_plan_keeps_the_contract(algorithm: Algorithm, case: str, seed: int) -> None:
    problem = random_problem(seed, **CASES[case], tiny=small(algorithm))  # type: ignore[arg-type]
    plan = algorithm.plan(problem)
    assert isinstance(plan, Plan)
    assert plan.algorithm == algorithm.name
    assert validate(problem, plan) == []
    after = apply(problem, plan)
    np.testing.assert_allclose(problem.load(after).sum(0), problem.load().sum(0))
    assert plan.score_before == pytest.approx(problem.score())
    assert plan.score_after == pytest.approx(problem.score(after))
    moved = {m.ve for m in plan.moves}
    pinned = {v for v, ok in zip(problem.ves, problem.movable, strict=True) if not ok}
    assert not moved & pinned
    assert problem.maintenance is not None
    maint = {n for n, m in zip(problem.nodes, problem.maintenance, strict=True) if m}
    assert not {m.dst for m in plan.moves} & maint
    s = problem.settings
    assert s.max_moves is None or len(plan.moves) <= s.max_moves
    assert s.max_bytes is None or sum(m.bytes for m in plan.moves) <= s.max_bytes
    if s.max_moves_per_node is not None:
        touched = [n for m in plan.moves for n in (m.src, m.dst)]
        assert max(map(touched.count, set(touched)), default=0) <= s.max_moves_per_node
    assert all(m.reason for m in plan.moves)


@pytest.mark.parametrize("seed", [4, 5])
def test_deterministic(algorithm: Algorithm, seed: int) -> None:
    problem = random_problem(seed, pinned=0.2, maintenance=1, ruled=0.2, groups=True,
                             tiny=small(algorithm))
    assert algorithm.plan(problem) == algorithm.plan(problem)


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_converges(algorithm: Algorithm, seed: int) -> None:
    problem = random_problem(seed, 16, 200, tiny=small(algorithm))
    plan = algorithm.plan(problem)
    assert bool(plan.moves) is not report_only(algorithm), "a skewed cluster should need moves"
    again = algorithm.plan(replace(problem, placement=apply(problem, plan)))
    # nothing, or a stray move worth its cost that one move per VE could not make
    assert len(again.moves) <= 1
    assert not {(m.ve, m.dst) for m in again.moves} & {(m.ve, m.src) for m in plan.moves}


@pytest.mark.parametrize("seed", [9, 10])
def test_no_ve_moves_back_and_forth(algorithm: Algorithm, seed: int) -> None:
    problem = random_problem(seed, 20, 300, maintenance=1, tiny=small(algorithm))
    path: dict[str, list[str]] = {}
    for m in algorithm.plan(problem).moves:
        path.setdefault(m.ve, [m.src]).append(m.dst)
    for ve, nodes in path.items():
        assert len(nodes) == len(set(nodes)), f"{ve} revisits a node: {nodes}"


def test_even_cluster_needs_nothing(algorithm: Algorithm) -> None:
    problem = random_problem(11, 8, 80, pinned=0.0)
    even = replace(problem, placement=np.arange(80) % 8,
                   demand=np.tile(problem.demand[:1], (80, 1)),
                   capacity=np.tile(problem.capacity[:1], (8, 1)))
    assert even.score() == pytest.approx(0.0, abs=1e-12)
    assert algorithm.plan(even).moves == ()


def test_empty_cluster(algorithm: Algorithm) -> None:
    plan = algorithm.plan(random_problem(12, 6, 0))
    assert plan.moves == ()


@given(
    seed=st.integers(0, 2**16),
    n_nodes=st.integers(2, 10),
    n_ves=st.integers(0, 60),
    pinned=st.sampled_from([0.0, 0.3]),
    maintenance=st.integers(0, 2),
    ruled=st.sampled_from([0.0, 0.5]),
    lone=st.integers(0, 3),
    max_moves=st.sampled_from([None, 3]),
    groups=st.booleans(),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_property_plans_validate_and_converge(seed: int, n_nodes: int, n_ves: int,
                                              pinned: float, maintenance: int, ruled: float,
                                              lone: int, max_moves: int | None,
                                              groups: bool) -> None:
    for name in ALGORITHMS:
        algorithm = registry.load(name)
        problem = random_problem(seed, n_nodes, n_ves, pinned=pinned, maintenance=maintenance,
                                 ruled=ruled, lone=lone, max_moves=max_moves, groups=groups,
                                 tiny=small(algorithm))
        plan = algorithm.plan(problem)
        assert validate(problem, plan) == [], name
        after = apply(problem, plan)
        np.testing.assert_allclose(problem.load(after).sum(0), problem.load().sum(0))
        assert algorithm.plan(problem) == plan, f"{name} is not deterministic"
        if max_moves is None:
            # a second run may find a move worth its cost that the first could not make
            # (each VE moves once per plan), but never sends a VE back where it came from
            again = algorithm.plan(replace(problem, placement=after))
            left = {(m.ve, m.src) for m in plan.moves}
            assert not {(m.ve, m.dst) for m in again.moves} & left, name
            assert len(again.moves) <= max(2, len(plan.moves) // 4), name
