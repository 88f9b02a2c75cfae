"""Every scenario file under tests/scenarios/ is planned and checked against its expect block."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from algorithms import registry
from lbvm.scenario import Scenario, load, scenario_from_dict
from lbvm.validate import headroom, review, validate

HERE = Path(__file__).parent / "scenarios"
FILES = sorted(HERE.glob("**/*.json"))
IDS = [str(f.relative_to(HERE).with_suffix("")) for f in FILES]


def test_there_are_scenarios_in_every_category() -> None:
    categories = {f.parent.name for f in FILES}
    assert {"balance", "failover", "pins", "maintenance", "budget", "rules"} <= categories


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_scenario(path: Path) -> None:
    check_expect(load(path))


def test_documented_example_holds() -> None:
    """The full example in docs/scenarios.md loads and keeps its own expect block."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "scenarios.md").read_text()
    match = re.search(r"```json\n(.*?)```", text, re.S)
    assert match, "docs/scenarios.md lost its JSON example"
    check_expect(scenario_from_dict(json.loads(match.group(1)), "docs/scenarios.md"))


def check_expect(scenario: Scenario) -> None:
    expect = scenario.expect
    assert expect is not None, f"{scenario.name} has no expect block"
    problem = scenario.problem
    plan = registry.load(scenario.algorithm).plan(problem)
    moves = plan.moves
    story = "\n".join([*(f"{m.ve} {m.src}→{m.dst} {m.kind}: {m.reason}" for m in moves),
                       *plan.notes])

    assert (validate(problem, plan) == []) is expect.valid, story
    if expect.max_moves is not None:
        assert len(moves) <= expect.max_moves, story
    if expect.min_moves is not None:
        assert len(moves) >= expect.min_moves, story
    if expect.score_after_below is not None:
        assert plan.score_after < expect.score_after_below, story
    if expect.improves is not None:
        assert (plan.score_after < plan.score_before) is expect.improves, story
    moved = {m.ve for m in moves}
    assert not moved & set(expect.no_move_of), story
    assert set(expect.moves_of) <= moved, story
    assert not {m.dst for m in moves} & set(expect.no_move_to), story
    if expect.kinds:
        assert {m.kind for m in moves} <= set(expect.kinds), story
    if expect.failover_ok is not None:
        after = _placement_after(scenario, [(m.ve, m.dst) for m in moves])
        assert bool((headroom(problem, after) >= 0).all()) is expect.failover_ok, story
    if expect.notes_contain is not None:
        assert any(expect.notes_contain in n for n in plan.notes), story
    if expect.warnings is not None:
        assert len(review(problem, plan).warnings) == expect.warnings, story


def _placement_after(scenario: Scenario, moves: list[tuple[str, str]]) -> np.ndarray:
    p = scenario.problem
    where = p.placement.copy()
    for ve, dst in moves:
        where[p.ves.index(ve)] = p.nodes.index(dst)
    return where

