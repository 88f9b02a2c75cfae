"""Maintenance drains and returns as pure Problem -> Plan functions, checked by the validator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lbvm.errors import NotFound
from lbvm.maintenance import drain_plan, for_drain, return_plan
from lbvm.scenario import problem_from_dict, synthetic
from lbvm.validate import validate


def cluster(ves: list[dict[str, Any]], *, cap: tuple[int, str] = (16, "64G"),
            pinned: tuple[str, ...] = ()) -> Any:
    nodes = [{"name": n, "pair": p, "capacity": {"cpu": cap[0], "mem": cap[1]}}
             for p, n in (("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2"))]
    for ve in ves:
        ve["pinned"] = ve["id"] in pinned
    return problem_from_dict({"nodes": nodes, "ves": ves})


def ve(name: str, node: str, cpu: float, mem: str) -> dict[str, Any]:
    return {"id": name, "node": node, "demand": {"cpu": cpu, "mem": mem}}


def test_drain_prefers_the_partner_when_it_has_room() -> None:
    problem = for_drain(cluster([ve("1", "a1", 2, "8G"), ve("2", "a1", 1, "4G"),
                                 ve("3", "b1", 1, "4G")]), "a1")
    plan = drain_plan(problem, "a1")
    assert [(m.ve, m.dst, m.kind) for m in plan.moves] == [
        ("1", "a2", "switchover"), ("2", "a2", "switchover")]
    assert all(m.reason.startswith("maintenance drain of a1") for m in plan.moves)
    assert plan.notes[0] == "drain of a1: 2 of 2 VE(s) leave"
    assert validate(problem, plan) == []


def test_drain_spills_to_other_pairs_when_the_partner_is_full() -> None:
    # a2 already holds 40G of 64G (limit 0.9 -> 57.6G): only one 16G VE still fits there.
    ves = [ve("big1", "a1", 1, "16G"), ve("big2", "a1", 1, "16G"), ve("full", "a2", 1, "40G")]
    problem = for_drain(cluster(ves), "a1")
    plan = drain_plan(problem, "a1")
    targets = {m.ve: (m.dst, m.kind) for m in plan.moves}
    assert targets["big1"] == ("a2", "switchover")
    assert targets["big2"][0] in ("b1", "b2") and targets["big2"][1] == "migrate"
    assert "partner full" in plan.moves[1].reason
    assert validate(problem, plan) == []


def test_pinned_and_homeless_ves_stay_and_are_named() -> None:
    ves = [ve("pin", "a1", 1, "4G"), ve("huge", "a1", 1, "60G"), ve("ok", "a1", 1, "4G")]
    problem = for_drain(cluster(ves, pinned=("pin",)), "a1")
    plan = drain_plan(problem, "a1")
    assert [m.ve for m in plan.moves] == ["ok"]
    assert any("VE pin stays on a1: pinned" in n for n in plan.notes)
    assert any("VE huge stays on a1: no allowed node has room" in n for n in plan.notes)
    assert validate(problem, plan) == []


def test_for_drain_lifts_the_budget_and_forbids_the_node() -> None:
    base = cluster([ve(str(i), "a1", 0.1, "1G") for i in range(30)])
    assert base.settings.max_moves == 20
    problem = for_drain(base, "a1")
    assert problem.settings.max_moves is None and problem.maintenance is not None
    assert problem.maintenance.tolist() == [True, False, False, False]
    assert not problem.allowed[:, 0].any()
    plan = drain_plan(problem, "a1")
    assert len(plan.moves) == 30 and validate(problem, plan) == []
    assert validate(base, plan), "the routine budget would refuse 30 moves"
    back = for_drain(problem, "a1", on=False)
    assert back.maintenance is not None
    assert back.allowed[:, 0].all() and not back.maintenance[0]


def test_unknown_node_is_not_found() -> None:
    with pytest.raises(NotFound, match="node 'zz' is not a node of a configured pair"):
        drain_plan(cluster([]), "zz")


def test_return_brings_drained_ves_home() -> None:
    ves = [ve("1", "a2", 2, "8G"), ve("2", "b1", 1, "4G"), ve("3", "b1", 1, "4G")]
    problem = for_drain(cluster(ves, pinned=("3",)), "a1", on=False)
    plan = return_plan(problem, {"1": "a1", "2": "a1", "3": "a1", "gone": "a1"}, "a1")
    assert [(m.ve, m.src, m.dst, m.kind) for m in plan.moves] == [
        ("1", "a2", "a1", "switchover"), ("2", "b1", "a1", "migrate")]
    assert plan.notes[0] == "return to a1: 2 of 4 drained VE(s) go back"
    assert any("VE gone has no recent samples" in n for n in plan.notes)
    assert any("VE 3 stays: pinned" in n for n in plan.notes)
    assert validate(problem, plan) == []


def test_return_refuses_a_home_still_in_maintenance() -> None:
    problem = for_drain(cluster([ve("1", "a2", 1, "4G")]), "a1")
    plan = return_plan(problem, {"1": "a1"}, "a1")
    assert plan.moves == () and "a1 takes no VEs" in plan.notes[1]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), node=st.integers(0, 7))
def test_every_drain_is_valid(seed: int, node: int) -> None:
    """Whatever the cluster, a drain plan passes the shared validator and never targets
    the drained node; every VE on it either leaves or is named in the notes."""
    base = synthetic(8, 60, seed=seed)
    name = base.nodes[node]
    problem = for_drain(base, name)
    plan = drain_plan(problem, name)
    assert validate(problem, plan) == []
    assert all(m.src == name and m.dst != name for m in plan.moves)
    on_node = {problem.ves[v] for v in np.flatnonzero(problem.placement == node)}
    stays = {n.split()[1] for n in plan.notes[1:]}
    assert {m.ve for m in plan.moves} | stays == on_node
