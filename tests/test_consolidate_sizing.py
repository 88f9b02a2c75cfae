"""consolidate with time profiles: nodes sized on their VEs' summed profile, nodes over
their limit on it relieved; and the wave order of its moves."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from algorithms.base import Move, Problem
from algorithms.consolidate import Consolidate
from algorithms.waves import in_waves
from lbvm.scenario import problem_from_dict
from lbvm.validate import validate

DAY = [4, 4, 4, 0, 0, 0]
NIGHT = [0, 0, 0, 4, 4, 4]


def lone_cluster(profiles: dict[str, list[list[int]]], names: str = "xyz") -> Problem:
    """Nodes of 16 cores in no pair; VEs with the given CPU profiles on each node, and
    their demand the mean of the profile (what a VE uses on average)."""
    ves: list[dict[str, Any]] = []
    for node, cpus in profiles.items():
        ves += [{"id": f"{node}{i}", "node": node,
                 "profile": {"cpu": cpu, "mem": ["1G"] * len(cpu)}}
                for i, cpu in enumerate(cpus)]
    problem = problem_from_dict({
        "nodes": [{"name": n, "capacity": {"cpu": 16, "mem": "64G"}} for n in names],
        "ves": ves})
    assert problem.profile is not None
    return replace(problem, demand=problem.profile.mean(axis=1))


def where(problem: Problem, plan: Any) -> dict[str, str]:
    out = {v: problem.nodes[n] for v, n in zip(problem.ves, problem.placement, strict=True)}
    out.update({m.ve: m.dst for m in plan.moves})
    return out


def test_ves_whose_peaks_alternate_share_a_node() -> None:
    # 12 cores by day on x, 12 by night on y: together 12 at every step, under 90 % of the
    # 14.4-core limit, although their p95s add up to 24
    problem = lone_cluster({"x": [DAY] * 3, "y": [NIGHT] * 3})
    plan = Consolidate().plan(problem)
    assert validate(problem, plan) == [] and len(plan.moves) == 3
    assert len(set(where(problem, plan).values())) == 1
    assert any(n.startswith("node=") and "can be powered down" in n for n in plan.notes)
    assert "1 of 3 node(s) outside pairs carry VEs" in plan.notes


def test_ves_whose_peaks_coincide_stay_apart() -> None:
    # the same means (2 cores each: 12 in all, which would fit), but all busy by day: 24
    problem = lone_cluster({"x": [DAY] * 3, "y": [DAY] * 3})
    assert Consolidate().plan(problem).moves == ()
    # without a profile the mean demand alone would pack them
    assert len(Consolidate().plan(replace(problem, profile=None)).moves) == 3


def test_a_node_over_its_limit_on_its_summed_profile_is_relieved() -> None:
    # x carries 16 cores by day (limit 14.4) though its mean is 8: one VE leaves it, to the
    # node in use (y), not to the empty one (z)
    problem = lone_cluster({"x": [DAY] * 4, "y": [[1] * 6]})
    plan = Consolidate().plan(problem)
    assert validate(problem, plan) == []
    assert [(m.src, m.dst) for m in plan.moves] == [("x", "y")]
    assert plan.moves[0].reason.startswith("relieve x: its VEs' summed profile is over")
    assert any(n.startswith("1 move(s) relieve nodes") for n in plan.notes)


def test_relief_switches_on_an_unused_node_when_nothing_in_use_has_room() -> None:
    problem = lone_cluster({"x": [DAY] * 4, "y": [[12] * 6]})
    plan = Consolidate().plan(problem)
    assert validate(problem, plan) == []
    assert [(m.src, m.dst) for m in plan.moves] == [("x", "z")]


def test_waves_run_moves_on_different_units_side_by_side() -> None:
    # a plan by source: a→d, a→e, b→d, b→e, c→d; units: every node its own
    moves = [Move(v, s, d, "migrate") for v, s, d in
             [("1", "a", "d"), ("2", "a", "e"), ("3", "b", "d"), ("4", "b", "e"),
              ("5", "c", "d")]]
    unit = {n: i for i, n in enumerate("abcde")}
    out = in_waves(moves, unit)
    assert [m.ve for m in out] == ["1", "4", "2", "3", "5"]  # waves {1, 4}, {2, 3}, {5}
    # a unit that sends and receives keeps its moves in their order
    mixed = [Move("1", "a", "b", "migrate"), Move("2", "c", "d", "migrate"),
             Move("3", "b", "c", "migrate")]
    assert [m.ve for m in in_waves(mixed, {n: i for i, n in enumerate("abcd")})] == [
        "1", "2", "3"]


def test_waves_keep_a_large_plan_valid() -> None:
    from lbvm.scenario import synthetic

    problem = synthetic(40, 800, 7)
    problem = replace(problem, settings=replace(problem.settings, max_moves=None))
    plan = Consolidate().plan(problem)
    assert len(plan.moves) > 20 and validate(problem, plan) == []
    assert np.isfinite(plan.score_after)
