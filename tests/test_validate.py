"""The shared validator: each check rejects the right move, with a reason naming it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from algorithms.base import Move, Plan, Problem
from lbvm.errors import PlanRejected
from lbvm.scenario import problem_from_dict
from lbvm.validate import check, headroom, review, validate


def cluster(**settings: Any) -> Problem:
    """Pair A (a1, a2), pair B (b1, b2), lone node c; cpu 10 and mem 100 each."""
    nodes = [
        {"name": n, "pair": p, "capacity": {"cpu": 10, "mem": 100}}
        for n, p in (("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B"), ("c", None))
    ]
    ves = [
        {"id": "v1", "node": "a1", "demand": {"cpu": 4, "mem": 40}, "disk": 60},
        {"id": "v2", "node": "a1", "demand": {"cpu": 1, "mem": 10}},
        {"id": "v3", "node": "b1", "demand": {"cpu": 5, "mem": 45}},
        {"id": "pin", "node": "a2", "demand": {"cpu": 1, "mem": 5}, "pinned": True},
        {"id": "only-a", "node": "a2", "demand": {"cpu": 1, "mem": 5}},
    ]
    base = {"max_utilisation": {"cpu": 0.9, "mem": 0.9},
            "failover_overcommit": {"cpu": 1.0, "mem": 1.0}, "max_moves": None}
    return problem_from_dict({
        "nodes": nodes, "ves": ves, "settings": {**base, **settings},
        "rules": {"allowed": {"only-a": ["a1", "a2"]}},
    })


def plan(*moves: tuple[str, str, str, str]) -> Plan:
    return Plan("test", tuple(Move(v, s, d, k) for v, s, d, k in moves), 0.0, 0.0)  # type: ignore[arg-type]


def only_reason(problem: Problem, p: Plan) -> str:
    reasons = validate(problem, p)
    assert len(reasons) == 1, reasons
    return reasons[0]


def test_good_plan_is_valid() -> None:
    p = plan(("v2", "a1", "a2", "switchover"), ("v1", "a1", "c", "migrate"))
    assert validate(cluster(), p) == []
    check(cluster(), p)


def test_unknown_names() -> None:
    reason = only_reason(cluster(), plan(("nope", "a1", "zz", "migrate")))
    assert "move 0" in reason and "'nope'" in reason and "'zz'" in reason


def test_ve_must_be_on_src_at_that_point() -> None:
    p = plan(("v2", "a1", "c", "migrate"), ("v2", "a1", "b2", "migrate"))
    reasons = validate(cluster(), p)
    assert len(reasons) == 2 and all(r.startswith("move 1") for r in reasons)
    assert "v2 is on c" in reasons[0]
    assert "already moved in move 0" in reasons[1]


def test_a_ve_moves_at_most_once() -> None:
    p = plan(("v2", "a1", "c", "migrate"), ("v2", "c", "b2", "migrate"))
    reason = only_reason(cluster(), p)
    assert reason.startswith("move 1 (v2 c→b2)") and "at most once" in reason


def test_same_node() -> None:
    assert "same node" in only_reason(cluster(), plan(("v2", "a1", "a1", "switchover")))


def test_pinned() -> None:
    assert "pin is pinned" in only_reason(cluster(), plan(("pin", "a2", "a1", "switchover")))


def test_host_rule() -> None:
    reason = only_reason(cluster(), plan(("only-a", "a2", "c", "migrate")))
    assert "only-a is not allowed on c" in reason


def test_maintenance_target() -> None:
    problem = cluster()
    maint = np.array([False, False, False, False, True])
    problem = replace(problem, maintenance=maint)
    assert "c is in maintenance" in only_reason(problem, plan(("v2", "a1", "c", "migrate")))


def test_kind_must_match_pairs() -> None:
    assert "make it a switchover" in only_reason(cluster(), plan(("v2", "a1", "a2", "migrate")))
    assert "make it a migrate" in only_reason(cluster(), plan(("v2", "a1", "c", "switchover")))


def test_capacity_after_each_step() -> None:
    # v3 (cpu 5) onto a2 (cpu 2 used): 7 ≤ 9 fine alone, but v1 first makes a2 11 > 9
    reasons = validate(cluster(failover_overcommit={"cpu": 9, "mem": 9}),
                       plan(("v1", "a1", "a2", "switchover"), ("v3", "b1", "a2", "migrate")))
    assert [r.split(":")[1].split()[:2] for r in reasons] == [["a2", "cpu"], ["a2", "mem"]]
    assert all(r.startswith("move 1 (v3 b1→a2)") for r in reasons)


def test_capacity_order_matters() -> None:
    # a1 holds 8 cpu and has 5: v3 (5) fits only after v1 (4) has left
    problem = cluster(max_utilisation={"cpu": 0.8, "mem": 1.0},
                      failover_overcommit={"cpu": 9, "mem": 9})
    fine = plan(("v1", "a1", "c", "migrate"), ("v3", "b1", "a1", "migrate"))
    assert validate(problem, fine) == []
    bad = plan(("v3", "b1", "a1", "migrate"), ("v1", "a1", "c", "migrate"))
    assert "a1 cpu 10 over its limit 8" in only_reason(problem, bad)


def test_node_already_over_may_shrink() -> None:
    problem = cluster()
    over = replace(problem, capacity=problem.capacity * np.array([[0.5, 1.0]] * 5))
    assert validate(over, plan(("v2", "a1", "c", "migrate"))) == []


def test_failover_headroom_of_target_pair() -> None:
    # pair B may carry 80 mem when failing over; it has 45, v1 would add 40
    reason = only_reason(cluster(failover_overcommit={"cpu": 1.0, "mem": 0.8}),
                         plan(("v1", "a1", "b2", "migrate")))
    assert "pair b1+b2 could not fail over: mem" in reason


def test_switchover_inside_a_pair_ignores_pair_headroom() -> None:
    problem = cluster(failover_overcommit={"cpu": 0.1, "mem": 0.1})  # every pair short
    assert validate(problem, plan(("v2", "a1", "a2", "switchover"))) == []


def test_move_budget() -> None:
    p = plan(("v2", "a1", "c", "migrate"), ("v1", "a1", "a2", "switchover"))
    assert "max_moves is 1" in only_reason(cluster(max_moves=1), p)


def test_byte_budget_names_the_move_that_breaks_it() -> None:
    p = plan(("v2", "a1", "a2", "switchover"), ("v1", "a1", "c", "migrate"))
    # switchover copies mem (10), migrate copies mem + disk (40 + 60)
    reason = only_reason(cluster(max_bytes=50), p)
    assert reason.startswith("move 1") and "110 bytes" in reason


def test_moves_per_node() -> None:
    p = plan(("v2", "a1", "c", "migrate"), ("v1", "a1", "c", "migrate"))
    reasons = validate(cluster(max_moves_per_node=1), p)
    assert [r.split(": ")[1].split()[0] for r in reasons] == ["a1", "c"]
    assert all(r.startswith("move 1") and "max_moves_per_node" in r for r in reasons)


def test_check_raises_with_every_reason() -> None:
    p = plan(("pin", "a2", "c", "migrate"), ("zz", "a1", "c", "migrate"))
    with pytest.raises(PlanRejected) as err:
        check(cluster(), p)
    assert len(err.value.reasons) == 2


def test_headroom_per_pair() -> None:
    problem = cluster()
    room = headroom(problem)
    # pair A: 40+10+5+5 = 60 mem, 7 cpu; pair B: 45 mem, 5 cpu; limit 100 mem, 10 cpu
    np.testing.assert_allclose(room, [[3, 40], [5, 55]])
    moved = problem.placement.copy()
    moved[2] = 0  # v3 onto a1
    np.testing.assert_allclose(headroom(problem, moved), [[-2, -5], [10, 100]])


def ruled(**extra: Any) -> Problem:
    problem = cluster()
    return replace(problem, **extra)


def test_anti_affinity_keeps_group_members_in_different_pairs() -> None:
    # v1 (a1, pair A) and v3 (b1, pair B) form a group: v3 may not join pair A
    problem = ruled(anti_affinity=np.array([0, -1, 0, -1, -1]))
    roomy = replace(problem, settings=replace(problem.settings,
                                              failover_overcommit=np.array([9.0, 9.0])))
    reason = only_reason(roomy, plan(("v3", "b1", "a2", "migrate")))
    assert "shares a pair with v1" in reason and "anti-affinity" in reason
    assert validate(problem, plan(("v3", "b1", "c", "migrate"))) == []
    # inside its own pair it may move
    assert validate(problem, plan(("v3", "b1", "b2", "switchover"))) == []


def test_affinity_group_must_share_a_node_at_the_end() -> None:
    problem = ruled(affinity=np.array([0, 0, -1, -1, -1]))  # v1 and v2 on a1
    reason = only_reason(problem, plan(("v2", "a1", "a2", "switchover")))
    assert reason.startswith("move 0 (v2 → a2): affinity group of v1, v2 is left on 2 nodes")
    both = plan(("v2", "a1", "a2", "switchover"), ("v1", "a1", "a2", "switchover"))
    assert validate(problem, both) == []


def test_should_rules_are_warnings_unless_strict() -> None:
    pref = np.zeros((5, 5), dtype=bool)
    pref[1, :2] = True  # v2 prefers pair A
    problem = ruled(preferred=pref)
    p = plan(("v2", "a1", "c", "migrate"))
    assert validate(problem, p) == []
    found = review(problem, p)
    assert found.ok and len(found.warnings) == 1
    assert "c is not a preferred node of v2" in found.warnings[0]
    assert validate(problem, p, strict_should=True) == list(found.warnings)
    assert review(problem, plan(("v2", "a1", "a2", "switchover"))).warnings == ()
