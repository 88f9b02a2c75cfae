"""``optimal`` moves an affinity group as one unit: off a maintenance node, within its
members' must rules, and not at all when a pinned member holds it.

Cluster (from test_affinity_groups): pairs a1+a2 and b1+b2, 16 cores each, max_utilisation
0.9; the group g1+g2 starts on a1.
"""

from __future__ import annotations

import numpy as np
from test_affinity_groups import assert_moved_as_unit, cluster, group_moves, maint

from algorithms.optimal import Optimal
from lbvm.validate import validate


def test_optimal_evacuates_a_group_from_a_maintenance_node_as_a_unit() -> None:
    problem = cluster({"g1": ("a1", 5), "g2": ("a1", 5), "x": ("b1", 4), "y": ("b2", 4)},
                      maintenance=maint("a1"))
    plan = Optimal().plan(problem)
    dst = assert_moved_as_unit(problem, plan)
    assert dst != "a1"


def test_optimal_sends_the_group_where_every_member_may_go() -> None:
    allowed = np.ones((4, 4), bool)
    allowed[0, 1] = False  # g1 may not run on a2, the emptiest target
    allowed[1, 2] = False  # g2 may not run on b1
    problem = cluster({"g1": ("a1", 5), "g2": ("a1", 5), "x": ("b1", 2), "y": ("b2", 6)},
                      maintenance=maint("a1"), allowed=allowed)
    plan = Optimal().plan(problem)
    assert assert_moved_as_unit(problem, plan) == "b2"


def test_a_pinned_member_keeps_the_group_in_place() -> None:
    problem = cluster({"g1": ("a1", 5), "g2": ("a1", 5), "x": ("b1", 4), "y": ("b2", 4)},
                      maintenance=maint("a1"), pinned=("g1",))
    plan = Optimal().plan(problem)
    assert validate(problem, plan) == []
    assert group_moves(plan) == []
    assert any("no node can take the whole group" in n for n in plan.notes), plan.notes


def test_a_split_group_gathers_on_its_pinned_members_node() -> None:
    problem = cluster({"g1": ("a1", 4), "g2": ("b1", 4), "x": ("b2", 4)}, pinned=("g1",))
    plan = Optimal().plan(problem)
    assert validate(problem, plan) == []
    assert group_moves(plan) == [("g2", "a1")]


def test_the_group_moves_after_the_move_that_makes_room_for_it() -> None:
    # a1 is closed; the only node with room for 6 + 6 cores is b1 once x leaves it
    allowed = np.ones((3, 4), bool)
    allowed[:2, 1] = False
    allowed[:2, 3] = False
    allowed[2, 0] = False
    problem = cluster({"g1": ("a1", 6), "g2": ("a1", 6), "x": ("b1", 6)},
                      maintenance=maint("a1"), allowed=allowed)
    plan = Optimal().plan(problem)
    assert assert_moved_as_unit(problem, plan) == "b1"
    assert plan.moves[0].ve == "x"
