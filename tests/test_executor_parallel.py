"""The executor's scheduling: moves in parallel only where safe, per-node limits, the pause,
cooldowns, and the location check after each move. Backends here are in-process and gated by
events, so the order of things is observed, never timed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from algorithms.base import Move, Plan
from lbvm import executor, journal
from lbvm.executor import Limits, Outcome, Simulate, dependencies, execute
from lbvm.presets import Location
from lbvm.store.engine import connect
from lbvm.store.schema import ves

PAIRS = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C", "c2": "C"}


def mv(ve: str, src: str, dst: str) -> Move:
    return Move(ve, src, dst, "switchover" if PAIRS[src] == PAIRS[dst] else "migrate")


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")
    with engine.begin() as conn:
        conn.execute(sa.insert(ves), [{"ve": v, "node": n} for v, n in
                                      [("1", "a1"), ("2", "b1"), ("3", "c1"), ("4", "a2")]])
    yield engine
    engine.dispose()


def where(engine: Engine) -> dict[str, tuple[str, float | None]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ves.c.ve, ves.c.node, ves.c.cooldown_until)).all()
    return {r.ve: (r.node, r.cooldown_until) for r in rows}


class Gated(Simulate):
    """Each move waits for its gate; ``started`` says which moves are running right now."""

    def __init__(self, engine: Engine, fail: Sequence[str] = ()) -> None:
        super().__init__(engine)
        self.gates: dict[str, threading.Event] = {}
        self.started: dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.most = 0
        self.fail = set(fail)

    def gate(self, ve: str) -> threading.Event:
        with self.lock:
            self.started.setdefault(ve, threading.Event())
            return self.gates.setdefault(ve, threading.Event())

    def run(self, move: Move, argv: Sequence[str]) -> Outcome:
        gate = self.gate(move.ve)
        with self.lock:
            self.running.add(move.ve)
            self.most = max(self.most, len(self.running))
        self.started[move.ve].set()
        assert gate.wait(10), f"gate of {move.ve} never opened"
        with self.lock:
            self.running.discard(move.ve)
        if move.ve in self.fail:
            return Outcome(False, 3, "tool says no", tuple(argv))
        return super().run(move, argv)


def wait_for(what: Callable[[], bool]) -> None:
    for _ in range(400):
        if what():
            return
        time.sleep(0.025)
    raise AssertionError("timed out waiting")


def in_thread(fn: object, *args: object, **kw: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn(*args, **kw)))  # type: ignore[operator]
    t.start()
    return t, out


def test_dependencies_follow_the_pairs_touched() -> None:
    moves = [mv("1", "a1", "b1"), mv("2", "c1", "c2"), mv("3", "b2", "b1"), mv("4", "a2", "c2")]
    assert dependencies(moves, PAIRS) == [set(), set(), {0}, {0, 1}]
    assert dependencies(moves, {}) == [set(), set(), {0}, {1}]  # unpaired: only the node


def test_independent_moves_run_together_dependent_ones_wait(engine: Engine) -> None:
    plan = Plan("t", (mv("1", "a1", "a2"), mv("2", "b1", "b2"), mv("4", "a2", "a1")), 0, 0)
    backend = Gated(engine)
    limits = Limits(max_parallel=3, max_per_node=2, pairs=PAIRS)
    t, out = in_thread(execute, engine, plan, backend, run_id=None, limits=limits)
    backend.gate("1")
    backend.gate("2")
    assert backend.started["1"].wait(10) and backend.started["2"].wait(10)
    assert not backend.started.get("4", threading.Event()).is_set()  # pair A is busy
    assert [r.state for r in journal.running_moves(engine)] == ["running", "running"]
    backend.gates["1"].set()
    backend.gate("4").set()
    assert backend.started["4"].wait(10)
    backend.gates["2"].set()
    t.join(10)
    assert [r.state for r in out[0]] == ["done"] * 3  # type: ignore[attr-defined]
    assert backend.most == 2
    assert {v: n for v, (n, _) in where(engine).items()} == {
        "1": "a2", "2": "b2", "3": "c1", "4": "a1"}


def test_limits_cap_parallel_moves(engine: Engine) -> None:
    plan = Plan("t", (mv("1", "a1", "a2"), mv("2", "b1", "b2"), mv("3", "c1", "c2")), 0, 0)
    for limits, most in ((Limits(max_parallel=2, max_per_node=1, pairs=PAIRS), 2),
                         (Limits(max_parallel=1, pairs=PAIRS), 1)):
        backend = Gated(engine)
        for ve in "123":
            backend.gate(ve).set()
        back = Plan("t", tuple(Move(m.ve, m.dst, m.src, m.kind) for m in plan.moves), 0, 0)
        execute(engine, plan, backend, run_id=None, limits=limits)
        execute(engine, back, backend, run_id=None, limits=limits)
        assert backend.most <= most


def test_a_failure_lets_moves_in_flight_finish_and_starts_nothing_more(engine: Engine) -> None:
    plan = Plan("t", (mv("1", "a1", "a2"), mv("2", "b1", "b2"), mv("3", "c1", "c2")), 0, 0)
    backend = Gated(engine, fail=["1"])
    limits = Limits(max_parallel=2, pairs=PAIRS)
    t, out = in_thread(execute, engine, plan, backend, run_id=None, limits=limits)
    backend.gate("1")
    backend.gate("2")
    assert backend.started["1"].wait(10) and backend.started["2"].wait(10)
    backend.gates["1"].set()  # fails while 2 is still running
    wait_for(lambda: journal.moves_frame(engine)["state"].tolist()[:1] == ["failed"])
    backend.gates["2"].set()
    t.join(10)
    assert [r.state for r in out[0]] == ["failed", "done", "skipped"]  # type: ignore[attr-defined]
    row = journal.moves_frame(engine).iloc[2]
    assert row["output"] == f"skipped: move {out[0][0].move_id} of VE 1 failed"  # type: ignore[index]


def test_cooldowns_start_when_moves_end(engine: Engine) -> None:
    plan = Plan("t", (mv("1", "a1", "a2"), mv("2", "b1", "b2")), 0, 0)
    backend = Gated(engine, fail=["2"])
    for ve in "12":
        backend.gate(ve).set()
    limits = Limits(cooldown=3600, failed_cooldown=6 * 3600, pairs=PAIRS)
    execute(engine, plan, backend, run_id=None, limits=limits, now=1000.0)
    got = where(engine)
    assert got["1"] == ("a2", 4600.0) and got["2"] == ("b1", 1000.0 + 6 * 3600)
    assert got["3"] == ("c1", None)


def test_pause_between_moves(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    paused: list[float] = []
    monkeypatch.setattr(executor, "_pause", lambda seconds, stop: paused.append(seconds))
    plan = Plan("t", (mv("1", "a1", "a2"), mv("2", "b1", "b2"), mv("3", "c1", "c2")), 0, 0)
    execute(engine, plan, Simulate(engine), run_id=None, limits=Limits(pause=2.0))
    assert paused == [2.0, 2.0]  # between 1 and 2, between 2 and 3; none after the last
    assert len(journal.moves_frame(engine)) == 3


def test_a_pause_ends_when_stopping(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(executor.time, "sleep", slept.append)
    stop = threading.Event()
    stop.set()
    executor._pause(3600.0, stop)
    assert slept == []
    clock = iter(range(100))
    monkeypatch.setattr(executor.time, "monotonic", lambda: next(clock) * 0.05)
    executor._pause(0.2, None)
    assert 0 < len(slept) <= 4 and max(slept) <= 0.05


class Liar(Simulate):
    """Claims every move worked; ``truth`` says where each VE really is afterwards."""

    def __init__(self, engine: Engine, truth: dict[str, str | None]) -> None:
        super().__init__(engine)
        self.truth = truth

    def run(self, move: Move, argv: Sequence[str]) -> Outcome:
        return Outcome(True, 0, "migration completed", tuple(argv))

    def locate(self, ve: str, candidates: Sequence[str]) -> Location:
        found = self.truth.get(ve, "?")
        return Location(None, False) if found == "?" else Location(found, True)


def test_the_location_after_a_move_is_the_truth(engine: Engine) -> None:
    plan = Plan("t", (mv("1", "a1", "a2"),), 0, 0)
    truth: dict[str, str | None] = {"1": "a1"}  # did not move
    (r,) = execute(engine, plan, Liar(engine, truth), run_id=None)
    assert r.state == "failed" and r.outcome is not None
    assert "reported success but VE 1 is still on a1" in r.outcome.output
    assert where(engine)["1"][0] == "a1"
    truth["1"] = "b2"  # went somewhere else
    (r,) = execute(engine, plan, Liar(engine, truth), run_id=None)
    assert r.state == "unknown" and where(engine)["1"][0] == "b2"
    truth["1"] = "?"  # the query cannot tell: trust the tool
    (r,) = execute(engine, Plan("t", (mv("1", "b2", "b1"),), 0, 0), Liar(engine, truth),
                   run_id=None)
    assert r.state == "done" and where(engine)["1"][0] == "b1"
