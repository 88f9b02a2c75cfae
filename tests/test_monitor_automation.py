"""Automation levels, the migration threshold and mandatory moves (lbvm.automation), on small
hand-made problems whose numbers can be checked by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from fournodes import move, plan_of, problem

from lbvm.automation import (
    apply_threshold,
    cooldown_mask,
    decide,
    judge,
    required_gain,
    select_moves,
    ve_levels,
)
from lbvm.store.engine import connect
from lbvm.store.schema import ves
from lbvm.validate import validate


def test_threshold_maps_to_multiples_of_min_gain() -> None:
    assert [required_gain(t, 0.02) for t in (2, 3, 4, 5)] == pytest.approx(
        [0.2, 0.1, 0.04, 0.02])
    assert required_gain(1, 0.02) == math.inf
    with pytest.raises(ValueError, match="threshold"):
        required_gain(6, 0.02)


def test_mandatory_moves_are_judged_from_the_problem() -> None:
    cpu = {"hot": 9.5, "a": 1.0, "b": 1.0, "m": 1.0, "f": 1.0}
    where = {"hot": "n1", "a": "n2", "b": "n2", "m": "n3", "f": "n4"}
    anti = np.array([0, 0, -1, -1, -1])  # a and b (sorted: a, b, f, hot, m) share pair n1+n2
    allowed = np.ones((5, 4), bool)
    allowed[2, 3] = False  # f may not be on n4
    p = problem(cpu, where, maintenance=np.array([False, False, True, False]),
                anti_affinity=anti, allowed=allowed)
    got = judge(p, plan_of(move("hot", "n1", "n4"), move("m", "n3", "n1"), move("f", "n4", "n2"),
                           move("a", "n2", "n3"), move("b", "n2", "n1")))
    assert [j.mandatory.split()[0] if j.mandatory else "" for j in got] == [
        "relieves", "evacuates", "leaves", "separates", ""]
    assert got[0].gain < 0  # mandatory whatever it does to the score


def test_joining_a_split_affinity_group_is_mandatory() -> None:
    p = problem({"a": 1.0, "b": 1.0, "c": 1.0}, {"a": "n1", "b": "n3", "c": "n4"},
                affinity=np.array([0, 0, -1]))
    join, elsewhere = judge(p, plan_of(move("b", "n3", "n1"), move("c", "n4", "n3")))
    assert join.mandatory == "joins affinity group 0 on n1" and elsewhere.mandatory == ""


def test_broken_failover_makes_leaving_the_pair_mandatory() -> None:
    p = problem({"a": 6.0, "b": 6.0}, {"a": "n1", "b": "n2"})
    p = replace(p, settings=replace(p.settings, failover_overcommit=np.array([1.0, 1.0])))
    leave, stay = judge(p, plan_of(move("a", "n1", "n3")))[0], judge(
        p, plan_of(move("a", "n1", "n2")))[0]
    assert leave.mandatory.startswith("restores the failover headroom")
    assert stay.mandatory == ""


def test_threshold_keeps_mandatory_and_big_gains_and_revalidates() -> None:
    # x leaving n3 (a loss on its own) is what makes room there for y (a big gain).
    p = problem({"y": 6.0, "v": 2.0, "x": 4.0, "w": 1.0},
                {"y": "n1", "v": "n1", "x": "n3", "w": "n4"})
    full = plan_of(move("x", "n3", "n4"), move("y", "n1", "n3"))
    assert validate(p, full) == []
    gains = [j.gain for j in judge(p, full)]
    assert gains[0] < 0 < gains[1]
    kept, held, mandatory = apply_threshold(p, full, 5)
    assert kept.moves == () and mandatory == frozenset()
    assert all("below" in h.why for h in held)  # y's gain is judged where x stayed: a loss
    # Whatever leaves x out, y is re-validated after the moves kept before it.
    kept, held, _ = select_moves(p, full, lambda j: "left out" if j.move.ve == "x" else "")
    assert kept.moves == () and held[0].why == "left out"
    assert "no longer valid" in held[1].why
    assert "n3 cpu" in held[1].why  # the validator's own words: n3 would be over its limit
    alone = move("y", "n1", "n2")
    kept, held, _ = apply_threshold(p, plan_of(alone), 5)
    assert kept.moves == (alone,) and held == ()
    assert kept.score_after < kept.score_before == pytest.approx(p.score())


def test_threshold_one_keeps_only_mandatory_moves() -> None:
    p = problem({"m": 1.0, "a": 3.0, "b": 3.0}, {"m": "n3", "a": "n1", "b": "n1"},
                maintenance=np.array([False, False, True, False]))
    full = plan_of(move("a", "n1", "n2"), move("m", "n3", "n1"))
    for threshold, expected in ((1, 1), (5, 2)):
        kept, _, mandatory = apply_threshold(p, full, threshold)
        assert len(kept.moves) == expected and mandatory == {full.moves[1]}
        assert validate(p, kept) == []


FOUR = {"p": 2.0, "q": 2.0, "r": 2.0, "s": 2.0}
ON_N1 = {"p": "n1", "q": "n1", "r": "n1", "s": "n1"}
SPREAD = plan_of(move("p", "n1", "n2"), move("q", "n1", "n3"), move("r", "n1", "n4"))


@pytest.mark.parametrize(
    ("cluster", "levels", "executed", "stored", "held"),
    [
        ("automatic", {}, "pqr", "", ""),
        ("recommend", {}, "", "pqr", ""),
        ("report", {}, "", "", "pqr"),
        ("automatic", {"p": "report", "q": "recommend"}, "r", "q", "p"),
        ("recommend", {"r": "automatic"}, "r", "pq", ""),
        ("report", {"q": "recommend"}, "", "q", "pr"),
    ],
)
def test_levels_split_the_plan(
    cluster: str, levels: dict[str, str], executed: str, stored: str, held: str
) -> None:
    p = problem(FOUR, ON_N1)
    got = decide(p, SPREAD, level=cluster, ve_levels=levels, threshold=3)
    assert "".join(m.ve for m in got.execute.moves) == executed
    assert "".join(m.ve for m in got.recommend.moves) == stored
    assert "".join(h.move.ve for h in got.held) == held
    assert validate(p, got.execute) == []


def test_report_level_holds_even_mandatory_moves() -> None:
    p = problem({"m": 1.0}, {"m": "n3"}, maintenance=np.array([False, False, True, False]))
    evacuate = plan_of(move("m", "n3", "n1"))
    got = decide(p, evacuate, level="automatic", ve_levels={"m": "report"}, threshold=1)
    assert got.execute.moves == () and "report" in got.held[0].why
    got = decide(p, evacuate, level="automatic", ve_levels={}, threshold=1)
    assert got.execute.moves == evacuate.moves and got.mandatory == set(evacuate.moves)


def test_levels_and_cooldowns_come_from_the_store(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")
    with engine.begin() as conn:
        conn.execute(sa.insert(ves), [
            {"ve": "101", "node": "n1", "automation": "report", "cooldown_until": 200.0},
            {"ve": "102", "node": "n1", "automation": None, "cooldown_until": 50.0},
            {"ve": "103", "node": "n1", "automation": "recommend", "cooldown_until": None},
        ])  # fmt: skip
    assert ve_levels(engine) == {"101": "report", "103": "recommend"}
    mask = cooldown_mask(engine, ["103", "101", "102", "999"], 100.0)
    assert mask.tolist() == [False, True, False, False]
    assert cooldown_mask(engine, [], 100.0).shape == (0,)
    engine.dispose()
