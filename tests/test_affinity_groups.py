"""Affinity groups move as a unit: evacuations, repairs and balancing (algorithms.groups).

Cluster: pairs a1+a2 and b1+b2, 16 cores and 64 units of memory each, max_utilisation 0.9;
the group g1+g2 (affinity group 0) starts on a1.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from algorithms import registry
from algorithms.balance import Balance
from algorithms.base import Plan, Problem, Settings
from lbvm.validate import validate

NODES = ("a1", "a2", "b1", "b2")


def cluster(ves: dict[str, tuple[str, float]], *, pinned: tuple[str, ...] = (),
            group: tuple[str, ...] = ("g1", "g2"), **kw: object) -> Problem:
    """VEs name -> (node, cores), memory 1 each; kw replaces Problem fields."""
    names = tuple(ves)
    settings = Settings(max_utilisation=np.array([0.9, 0.9]),
                        failover_overcommit=np.array([2.0, 2.0]), weights=np.array([1.0, 0.0]),
                        max_moves=None, min_gain=0.02)
    base = Problem(
        ves=names, nodes=NODES, resources=("cpu", "mem"),
        demand=np.array([[ves[v][1], 1.0] for v in names]),
        capacity=np.tile([16.0, 64.0], (4, 1)),
        placement=np.array([NODES.index(ves[v][0]) for v in names]),
        pair=np.array([0, 0, 1, 1]), movable=np.array([v not in pinned for v in names]),
        allowed=np.ones((len(names), 4), bool), move_cost=np.ones((len(names), 2)),
        settings=settings,
        affinity=np.array([0 if v in group else -1 for v in names]),
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def maint(*nodes: str) -> np.ndarray:
    return np.array([n in nodes for n in NODES])


def group_moves(plan: Plan) -> list[tuple[str, str]]:
    return [(m.ve, m.dst) for m in plan.moves if m.ve in ("g1", "g2")]


def assert_moved_as_unit(problem: Problem, plan: Plan) -> str:
    """The plan is valid and moves g1 and g2 one right after the other to one node: which."""
    assert validate(problem, plan) == [], plan
    ves = [m.ve for m in plan.moves]
    i = ves.index("g1") if ves.index("g1") < ves.index("g2") else ves.index("g2")
    assert {ves[i], ves[i + 1]} == {"g1", "g2"}
    assert plan.moves[i].dst == plan.moves[i + 1].dst
    assert all("affinity group of g1, g2 moves as a unit" in m.reason
               for m in plan.moves[i:i + 2])
    return plan.moves[i].dst


def test_balance_moves_a_group_off_an_overloaded_node_as_a_unit() -> None:
    # a1 carries 6 + 6 + 4 (pinned) = 16 cores, over 0.9 × 16: only the group can leave
    problem = cluster({"g1": ("a1", 6), "g2": ("a1", 6), "x": ("a1", 4), "y": ("b1", 2)},
                      pinned=("x",))
    plan = Balance().plan(problem)
    dst = assert_moved_as_unit(problem, plan)
    assert dst != "a1" and "node over max_utilisation" in plan.moves[0].reason


@pytest.mark.parametrize("name", ["balance", "peak", "sandpiper", "consolidate"])
def test_maintenance_evacuates_the_group_together(name: str) -> None:
    problem = cluster({"g1": ("a1", 3), "g2": ("a1", 3), "v": ("a1", 2), "w": ("b1", 2)},
                      maintenance=maint("a1"), allowed=np.tile(~maint("a1"), (4, 1)))
    plan = registry.load(name).plan(problem)
    assert assert_moved_as_unit(problem, plan) != "a1"
    assert "v" in {m.ve for m in plan.moves}


def test_a_member_with_a_must_rule_takes_the_group_along() -> None:
    allowed = np.tile(~maint("a1"), (3, 1))
    allowed[1] = maint("b2")  # g2 may only run on b2
    problem = cluster({"g1": ("a1", 3), "g2": ("a1", 3), "w": ("b1", 2)},
                      maintenance=maint("a1"), allowed=allowed)
    assert assert_moved_as_unit(problem, Balance().plan(problem)) == "b2"


def test_no_node_for_the_whole_group_is_noted_not_split() -> None:
    # every other node has room for one member (8 cores) but not both
    problem = cluster({"g1": ("a1", 8), "g2": ("a1", 8), "f2": ("a2", 6), "f3": ("b1", 6),
                       "f4": ("b2", 6)}, pinned=("f2", "f3", "f4"), maintenance=maint("a1"))
    plan = Balance().plan(problem)
    assert validate(problem, plan) == [] and group_moves(plan) == []
    assert any("affinity group of g1, g2: no node can take the whole group" in n
               for n in plan.notes), plan.notes


def test_a_pinned_member_pins_the_group() -> None:
    problem = cluster({"g1": ("a1", 3), "g2": ("a1", 3), "w": ("b1", 2)}, pinned=("g2",),
                      maintenance=maint("a1"))
    plan = Balance().plan(problem)
    assert validate(problem, plan) == [] and group_moves(plan) == []
    assert any("affinity group of g1, g2: no node can take" in n for n in plan.notes)


def test_a_split_group_gathers_on_one_node() -> None:
    problem = cluster({"g1": ("a1", 3), "g2": ("b1", 3), "w": ("b2", 2)})
    plan = Balance().plan(problem)
    assert validate(problem, plan) == []
    where = {m.ve: m.dst for m in plan.moves}
    assert where.get("g1", "a1") == where.get("g2", "b1")
    assert "the group is split" in plan.moves[0].reason


def test_balancing_moves_a_group_when_it_gains_enough() -> None:
    # everything else is pinned: a1 (6 + 6 + 2) against an empty pair B
    problem = cluster({"g1": ("a1", 6), "g2": ("a1", 6), "x": ("a1", 2), "y": ("a2", 2)},
                      pinned=("x", "y"), settings=replace(
                          cluster({}).settings, max_utilisation=np.array([1.0, 1.0])))
    plan = Balance().plan(problem)
    assert assert_moved_as_unit(problem, plan) in ("b1", "b2")
    assert plan.score_after < plan.score_before
    # a higher bar for moves leaves the group where it is
    strict = replace(problem, settings=replace(problem.settings, min_gain=10.0))
    assert Balance().plan(strict).moves == ()
