"""Behaviour specific to the built-in ``balance`` algorithm (the contract suite covers the rest)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import algorithms.balance as balance_module
from algorithms.balance import Balance
from algorithms.base import Problem
from lbvm.scenario import problem_from_dict, synthetic
from lbvm.validate import headroom, validate


def four_nodes(ves: list[dict[str, Any]], **extra: Any) -> Problem:
    nodes = [{"name": n, "pair": n[0].upper(), "capacity": {"cpu": 16, "mem": "64G"}}
             for n in ("a1", "a2", "b1", "b2")]
    return problem_from_dict({"nodes": nodes, "ves": ves, **extra})


def ve(name: str, node: str, cpu: float, mem: str, **extra: Any) -> dict[str, Any]:
    return {"id": name, "node": node, "demand": {"cpu": cpu, "mem": mem}, **extra}


def test_docstring_states_objective_needs_limits_and_cost() -> None:
    doc = balance_module.__doc__ or ""
    for words in ("What it optimises", "What it needs", "Limits", "Cost in V, N"):
        assert words in doc


def test_reason_names_resource_node_and_spread() -> None:
    problem = four_nodes([ve(f"v{i}", "a1", 1, "12G") for i in range(4)])
    plan = Balance().plan(problem)
    assert plan.moves
    pattern = re.compile(r"^(cpu|mem) \d\.\d\d→\d\.\d\d on a1; spread \d\.\d{3}→\d\.\d{3}$")
    for m in plan.moves:
        assert pattern.match(m.reason), m.reason


def test_over_full_node_is_relieved_first() -> None:
    problem = four_nodes([ve("big1", "a1", 8, "8G"), ve("big2", "a1", 7, "8G"),
                          ve("v2", "b1", 1, "20G"), ve("v3", "b2", 1, "20G")])
    plan = Balance().plan(problem)
    assert plan.moves[0].ve in ("big1", "big2")
    assert plan.moves[0].reason.startswith("node over max_utilisation; cpu 0.94")
    assert any("1 node(s) over max_utilisation at the start" in n for n in plan.notes)
    assert validate(problem, plan) == []


def test_pair_that_cannot_fail_over_is_repaired_first() -> None:
    problem = four_nodes([ve("v1", "a1", 1, "30G"), ve("v2", "a2", 1, "30G"),
                          ve("v3", "a2", 1, "10G"), ve("v4", "b1", 1, "30G")])
    before = headroom(problem)
    assert before[0, 1] < 0 <= before[1, 1]
    plan = Balance().plan(problem)
    first = plan.moves[0]
    assert first.reason.startswith("pair a1+a2 cannot fail over")
    assert first.kind == "migrate" and first.dst in ("b1", "b2")
    after = problem.placement.copy()
    for m in plan.moves:
        after[problem.ves.index(m.ve)] = problem.nodes.index(m.dst)
    assert (headroom(problem, after) >= 0).all()


def test_unrepairable_pair_is_noted() -> None:
    problem = four_nodes([ve("v1", "a1", 1, "40G", pinned=True),
                          ve("v2", "a2", 1, "40G", pinned=True)])
    plan = Balance().plan(problem)
    assert plan.moves == ()
    assert any("pair a1+a2 still cannot fail over" in n for n in plan.notes)


def test_maintenance_evacuation_comes_before_balancing() -> None:
    problem = four_nodes(
        [*(ve(f"v{i}", "a1", 1, "8G") for i in range(4)), ve("m1", "b2", 1, "4G")],
        rules={"maintenance": ["b2"]})
    plan = Balance().plan(problem)
    assert plan.moves[0].ve == "m1"
    assert plan.moves[0].reason.startswith("evacuate maintenance node")
    assert all(m.dst != "b2" for m in plan.moves)
    assert len(plan.moves) > 1  # then it balances a1


def test_ve_on_a_forbidden_node_is_moved() -> None:
    problem = four_nodes([ve("v1", "a1", 1, "4G"), ve("v2", "b1", 1, "4G")],
                         rules={"allowed": {"v1": ["b1", "b2"]}})
    plan = Balance().plan(problem)
    assert (plan.moves[0].ve, plan.moves[0].dst) == ("v1", "b2")
    assert plan.moves[0].reason.startswith("rules forbid this node")


def test_stuck_evacuation_is_noted() -> None:
    problem = four_nodes([ve("huge", "a1", 1, "60G")],
                         rules={"allowed": {"huge": ["a1", "a2"]}, "maintenance": ["a1"]},
                         settings={"max_utilisation": {"cpu": 0.9, "mem": 0.5}})
    plan = Balance().plan(problem)
    assert plan.moves == ()
    assert any("no room or no allowed node to evacuate: huge" in n for n in plan.notes)


def test_min_gain_stops_small_moves() -> None:
    problem = four_nodes([ve("v1", "a1", 1, "8G"), ve("v2", "a1", 1, "8G")])
    assert Balance().plan(problem).moves
    # 4 nodes: a move would have to cut the spread, or the peak of the node it relieves,
    # by all of it
    strict = replace(problem, settings=replace(problem.settings, min_gain=4.0))
    assert Balance().plan(strict).moves == ()


def test_zero_weights_balance_nothing() -> None:
    problem = four_nodes([ve("v1", "a1", 1, "8G"), ve("v2", "a1", 1, "8G")])
    flat = replace(problem, settings=replace(problem.settings, weights=np.zeros(2)))
    plan = Balance().plan(flat)
    assert plan.moves == () and "nothing to balance" in plan.notes[0]


def test_bad_shapes_are_refused() -> None:
    problem = four_nodes([ve("v1", "a1", 1, "8G")])
    with pytest.raises(ValueError, match=r"problem\.allowed has shape \(1, 3\)"):
        Balance().plan(replace(problem, allowed=np.ones((1, 3), dtype=bool)))


def test_larger_cluster_gets_much_more_even() -> None:
    problem = synthetic(200, 4000, 7)
    problem = replace(problem, settings=replace(problem.settings, max_moves=400, min_gain=1e-6))
    plan = Balance().plan(problem)
    assert validate(problem, plan) == []
    after = problem.placement.copy()
    index = {v: i for i, v in enumerate(problem.ves)}
    for m in plan.moves:
        after[index[m.ve]] = problem.nodes.index(m.dst)
    std_before = problem.utilisation().std(axis=0)
    std_after = problem.utilisation(after).std(axis=0)
    assert (std_after < std_before / 2).all()
    assert len({m.ve for m in plan.moves}) <= 0.1 * problem.n_ves


def test_a_move_is_taken_back_rather_than_reversed() -> None:
    # on this cluster the greedy later finds a moved VE better where it started
    problem = synthetic(11, 66, 6, pinned_share=0.1)
    problem = replace(problem, settings=replace(problem.settings, max_moves=None, min_gain=1e-5))
    plan = Balance().plan(problem)
    assert any("taken back" in n for n in plan.notes)
    assert validate(problem, plan) == []
    path: dict[str, list[str]] = {}
    for m in plan.moves:
        path.setdefault(m.ve, [m.src]).append(m.dst)
    assert all(len(p) == len(set(p)) for p in path.values())
    after = problem.placement.copy()
    for m in plan.moves:
        after[problem.ves.index(m.ve)] = problem.nodes.index(m.dst)
    assert Balance().plan(replace(problem, placement=after)).moves == ()
