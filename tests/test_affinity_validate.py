"""An affinity group moves as a unit: the shared validator and the monitor's filtering.

Cluster: pairs n1+n2 and n3+n4, 10 cores each (max_utilisation 0.9); the group g1+g2 sits
on n1, x elsewhere.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from fournodes import move, plan_of
from fournodes import problem as four_nodes

from algorithms.base import Problem
from lbvm.automation import apply_threshold, decide
from lbvm.validate import units, validate


def problem(cpu: dict[str, float], where: dict[str, str], group: tuple[str, ...] = ("g1", "g2"),
            **kw: object) -> Problem:
    """The four-node cluster with ``group`` as one affinity group and no move budget."""
    base = four_nodes(cpu, where, **kw)
    return replace(base, settings=replace(base.settings, max_moves=None),
                   affinity=np.array([0 if v in group else -1 for v in base.ves]))


BASE = problem({"g1": 2, "g2": 3, "x": 1}, {"g1": "n1", "g2": "n1", "x": "n2"})


def test_group_moved_as_a_unit_is_accepted() -> None:
    plan = plan_of(move("g1", "n1", "n3"), move("g2", "n1", "n3"))
    assert validate(BASE, plan) == []
    assert units(BASE, plan.moves) == [[0, 1]]


def test_group_left_split_at_the_end_is_rejected() -> None:
    reasons = validate(BASE, plan_of(move("g2", "n1", "n3")))
    assert reasons == ["move 0 (g2 → n3): affinity group of g1, g2 is left on 2 nodes; its "
                       "members move one right after the other to one node"]


def test_another_move_inside_a_group_move_is_rejected() -> None:
    plan = plan_of(move("g1", "n1", "n3"), move("x", "n2", "n4"), move("g2", "n1", "n3"))
    reasons = validate(BASE, plan)
    assert units(BASE, plan.moves) == [[0], [1], [2]]
    assert len(reasons) == 1 and reasons[0].startswith("move 0 (g1 → n3): affinity group")


def test_members_sent_to_two_nodes_are_rejected() -> None:
    plan = plan_of(move("g1", "n1", "n3"), move("g2", "n1", "n4"))
    reasons = validate(BASE, plan)
    assert [r.split(":")[0] for r in reasons] == ["move 0 (g1 → n3)", "move 1 (g2 → n4)"]


def test_capacity_is_checked_after_each_member() -> None:
    # n3 carries 5 cores: with g1 (2) it is under its limit of 9, with g2 (3) more it is not
    crowded = problem({"g1": 2, "g2": 3, "x": 5}, {"g1": "n1", "g2": "n1", "x": "n3"})
    reasons = validate(crowded, plan_of(move("g1", "n1", "n3"), move("g2", "n1", "n3")))
    assert len(reasons) == 1
    assert reasons[0].startswith("move 1 (g2 n1→n3): n3 cpu 10 over its limit 9")


def test_joining_a_group_split_before_the_plan_is_accepted() -> None:
    split = problem({"g1": 2, "g2": 3, "x": 1}, {"g1": "n1", "g2": "n2", "x": "n2"})
    assert validate(split, plan_of(move("g2", "n2", "n1"))) == []
    assert validate(split, plan_of()) == []  # the plan did not split it


def test_monitor_keeps_or_holds_a_group_move_whole() -> None:
    maint = replace(BASE, maintenance=np.array([True, False, False, False]))
    plan = plan_of(move("g1", "n1", "n3"), move("g2", "n1", "n3"))
    kept, held, mandatory = apply_threshold(maint, plan, 1)  # mandatory moves only
    assert kept.moves == plan.moves and not held and mandatory == set(plan.moves)
    # one member at automation level report holds back the whole group move
    decision = decide(maint, plan, level="automatic", ve_levels={"g2": "report"}, threshold=1)
    assert decision.execute.moves == () and len(decision.held) == 2
    # a member to recommend puts the whole group move in the stored plan
    decision = decide(maint, plan, level="automatic", ve_levels={"g1": "recommend"},
                      threshold=1)
    assert decision.execute.moves == () and decision.recommend.moves == plan.moves
