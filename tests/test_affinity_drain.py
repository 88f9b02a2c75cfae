"""Maintenance drains and returns move an affinity group as a unit (lbvm.maintenance).

Pairs a1+a2 and b1+b2, 16 cores and 64G each, max_utilisation 0.9 (57.6G of memory).
"""

from __future__ import annotations

from typing import Any

from lbvm.maintenance import drain_plan, for_drain, return_plan
from lbvm.scenario import problem_from_dict
from lbvm.validate import validate


def cluster(ves: list[dict[str, Any]]) -> Any:
    nodes = [{"name": n, "pair": p, "capacity": {"cpu": 16, "mem": "64G"}}
             for p, n in (("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2"))]
    return problem_from_dict({"nodes": nodes, "ves": ves})


def ve(name: str, node: str, mem: str, **rules: Any) -> dict[str, Any]:
    return {"id": name, "node": node, "demand": {"cpu": 1, "mem": mem}, **rules}


def shop(node: str, mem: str = "16G", **extra: Any) -> list[dict[str, Any]]:
    return [ve("app", node, mem, affinity="shop", **extra),
            ve("db", node, mem, affinity="shop")]


def test_drain_moves_the_group_to_one_node_one_member_after_the_other() -> None:
    # a2 has room for one 16G member but not both: the group goes to pair B together
    problem = for_drain(cluster([*shop("a1"), ve("solo", "a1", "4G"),
                                 ve("full", "a2", "30G")]), "a1")
    plan = drain_plan(problem, "a1")
    assert validate(problem, plan) == []
    moves = [(m.ve, m.dst) for m in plan.moves]
    assert [ve for ve, _ in moves[:2]] == ["app", "db"] and moves[0][1] == moves[1][1]
    assert moves[0][1] in ("b1", "b2")
    assert "(affinity group of app, db moves as a unit)" in plan.moves[0].reason
    assert ("solo", "a2") in moves
    assert plan.notes[0] == "drain of a1: 3 of 3 VE(s) leave"


def test_drain_goes_to_the_partner_when_it_takes_the_whole_group() -> None:
    problem = for_drain(cluster(shop("a1")), "a1")
    plan = drain_plan(problem, "a1")
    assert [(m.ve, m.dst, m.kind) for m in plan.moves] == [
        ("app", "a2", "switchover"), ("db", "a2", "switchover")]


def test_a_member_rule_chooses_the_groups_node() -> None:
    problem = for_drain(cluster([*shop("a1", allowed_nodes=["b2"])]), "a1")
    plan = drain_plan(problem, "a1")
    assert {m.dst for m in plan.moves} == {"b2"} and validate(problem, plan) == []


def test_a_group_no_node_can_take_stays_whole_and_is_named() -> None:
    # each member alone would fit elsewhere (30G), the two together (60G) nowhere
    problem = for_drain(cluster(shop("a1", "30G")), "a1")
    plan = drain_plan(problem, "a1")
    assert plan.moves == ()
    assert "affinity group of app, db stays on a1: no allowed node has room for the whole " \
           "group" in plan.notes


def test_a_pinned_member_keeps_the_group() -> None:
    ves = shop("a1")
    ves[1]["pinned"] = True
    problem = for_drain(cluster([*ves, ve("solo", "a1", "4G")]), "a1")
    plan = drain_plan(problem, "a1")
    assert [m.ve for m in plan.moves] == ["solo"]
    assert "affinity group of app, db stays on a1: db is pinned, out of balancing or not " \
           "measured" in plan.notes


def test_return_brings_the_group_home_together() -> None:
    problem = for_drain(cluster([*shop("b1"), ve("x", "b2", "4G")]), "a1", on=False)
    plan = return_plan(problem, {"app": "a1", "x": "a1", "db": "a1"}, "a1")
    assert [m.ve for m in plan.moves] == ["app", "db", "x"]
    assert validate(problem, plan) == []
