"""``consolidate`` evacuates an affinity group as a unit, switching on a powered-down pair
when no pair in use can take the whole group.

Cluster (from test_affinity_groups): pairs a1+a2 and b1+b2, 16 cores each, max_utilisation
0.9; the group g1+g2 starts on a1.
"""

from __future__ import annotations

from test_affinity_groups import assert_moved_as_unit, cluster, group_moves, maint

from algorithms.consolidate import Consolidate
from lbvm.validate import validate


def test_a_group_that_fits_no_pair_in_use_switches_one_on() -> None:
    # a1 is in maintenance and a2 (10 cores used) has no room for 5 + 5 more: only the
    # powered-down pair b1+b2 can take the group
    problem = cluster({"g1": ("a1", 5), "g2": ("a1", 5), "x": ("a2", 10)},
                      maintenance=maint("a1"))
    plan = Consolidate().plan(problem)
    assert assert_moved_as_unit(problem, plan) in ("b1", "b2")
    assert any("switched on" in n for n in plan.notes), plan.notes
    assert not any("no node can take the whole group" in n for n in plan.notes), plan.notes


def test_a_group_that_fits_a_pair_in_use_switches_nothing_on() -> None:
    problem = cluster({"g1": ("a1", 3), "g2": ("a1", 3), "x": ("a2", 4)},
                      maintenance=maint("a1"))
    plan = Consolidate().plan(problem)
    assert assert_moved_as_unit(problem, plan) == "a2"
    assert any("pair=b1+b2 can be powered down" in n for n in plan.notes), plan.notes


def test_a_group_with_a_pinned_member_switches_nothing_on() -> None:
    problem = cluster({"g1": ("a1", 5), "g2": ("a1", 5), "x": ("a2", 10)},
                      maintenance=maint("a1"), pinned=("g1",))
    plan = Consolidate().plan(problem)
    assert validate(problem, plan) == []
    assert group_moves(plan) == []
    assert not any("switched on" in n for n in plan.notes), plan.notes
    assert any("no node can take the whole group" in n for n in plan.notes), plan.notes
