"""The migration journal: forward-only states, one committed transaction per step."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from algorithms.base import Move
from lbvm import journal
from lbvm.errors import NotFound, StoreError
from lbvm.store.engine import connect
from lbvm.store.schema import metadata, runs

MOVES = (
    Move("101", "vz1a", "vz1b", "switchover", "vz1a above the mean"),
    Move("102", "vz1a", "vz2a", "migrate", ""),
    Move("103", "vz2b", "vz1b", "switchover", "evacuate"),
)


def _sqlite(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")
    yield engine
    engine.dispose()


def _postgresql() -> Iterator[Engine]:
    url = os.environ.get("LBVM_TEST_DATABASE_URL")
    if not url:
        pytest.skip("LBVM_TEST_DATABASE_URL is not set")
    schema = f"journal_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    metadata.create_all(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    gen = _sqlite(tmp_path) if request.param == "sqlite" else _postgresql()
    yield from gen


def test_plan_is_journalled_in_order(engine: Engine) -> None:
    run_id = journal.start_run(engine, "rebalance", "balance", now=100.0)
    ids = journal.record_plan(engine, run_id, MOVES, "simulate", now=101.0)
    assert len(ids) == 3 and ids == sorted(ids)
    frame = journal.moves_frame(engine)
    assert list(frame.columns) == list(journal.COLUMNS)
    assert list(frame["id"]) == ids
    assert list(frame["ve"]) == ["101", "102", "103"]
    assert set(frame["state"]) == {"planned"}
    assert list(frame["reason"].fillna("")) == ["vz1a above the mean", "", "evacuate"]
    assert set(frame["run_id"]) == {run_id}
    assert set(frame["backend"]) == {"simulate"}
    assert journal.record_plan(engine, run_id, (), "simulate") == []


def test_forward_transitions_record_argv_output_and_times(engine: Engine) -> None:
    ids = journal.record_plan(engine, None, MOVES, "command", now=10.0)
    journal.mark_running(engine, ids[0], ["vzmigrate", "--online", "vz1b", "101"], now=11.0)
    assert [m.id for m in journal.running_moves(engine)] == [ids[0]]
    journal.mark_finished(engine, ids[0], "done", 0, "ok\n", now=12.0)
    row = journal.get_move(engine, ids[0])
    assert (row.state, row.exit_code, row.output) == ("done", 0, "ok\n")
    assert row.argv == ("vzmigrate", "--online", "vz1b", "101")
    assert (row.planned_at, row.started_at, row.finished_at) == (10.0, 11.0, 12.0)
    assert journal.running_moves(engine) == []

    journal.mark_running(engine, ids[1], ["x"], now=13.0)
    journal.mark_finished(engine, ids[1], "failed", 3, "no space", now=14.0)
    assert journal.skip(engine, ids, "skipped: an earlier move failed", now=15.0) == 1
    states = journal.moves_frame(engine).set_index("id")["state"].to_dict()
    assert states == {ids[0]: "done", ids[1]: "failed", ids[2]: "skipped"}
    stored = journal.moves_frame(engine, ve="102")["argv"].iloc[0]
    assert json.loads(stored) == ["x"]


@pytest.mark.parametrize(
    ("first", "then"),
    [
        (None, "done"),  # planned -> done skips running
        (None, "failed"),
        ("running", "skipped"),  # a started move cannot be skipped
        ("done", "failed"),  # final states are final
        ("done", "unknown"),
    ],
)
def test_illegal_transitions_are_refused(engine: Engine, first: str | None, then: str) -> None:
    (move_id,) = journal.record_plan(engine, None, MOVES[:1], "simulate")
    if first is not None:
        journal.mark_running(engine, move_id, ["simulate"])
        if first != "running":
            journal.mark_finished(engine, move_id, first, 0, "")
    before = journal.get_move(engine, move_id)
    with pytest.raises(StoreError, match=f"move {move_id} is .*cannot become {then}"):
        journal.mark_finished(engine, move_id, then, 1, "x")
    assert journal.get_move(engine, move_id) == before


def test_a_move_cannot_start_twice(engine: Engine) -> None:
    (move_id,) = journal.record_plan(engine, None, MOVES[:1], "simulate")
    journal.mark_running(engine, move_id, ["a"])
    with pytest.raises(StoreError, match="is running; it cannot become running"):
        journal.mark_running(engine, move_id, ["b"])
    assert journal.get_move(engine, move_id).argv == ("a",)


def test_unknown_and_bad_states(engine: Engine) -> None:
    with pytest.raises(NotFound, match="move 999 is not in the journal"):
        journal.mark_running(engine, 999, ["x"])
    with pytest.raises(NotFound):
        journal.get_move(engine, 999)
    (move_id,) = journal.record_plan(engine, None, MOVES[:1], "simulate")
    with pytest.raises(StoreError, match="'running' is not a final state"):
        journal.mark_finished(engine, move_id, "running", None, None)
    journal.mark_finished(engine, move_id, "unknown", None, "executor died")
    assert journal.get_move(engine, move_id).state == "unknown"


def test_filters(engine: Engine) -> None:
    r1 = journal.start_run(engine, "migrate", None, now=1.0)
    journal.record_plan(engine, r1, MOVES[:1], "simulate", now=50.0)
    r2 = journal.start_run(engine, "rebalance", "balance", now=2.0)
    journal.record_plan(engine, r2, MOVES, "simulate", now=100.0)
    assert len(journal.moves_frame(engine)) == 4
    assert len(journal.moves_frame(engine, ve="101")) == 2
    assert len(journal.moves_frame(engine, since=60.0)) == 3
    assert len(journal.moves_frame(engine, run_id=r1)) == 1
    assert journal.moves_frame(engine, ve="nope").empty


def test_runs_ledger(engine: Engine) -> None:
    run_id = journal.start_run(engine, "rebalance", "balance", now=5.0)
    journal.finish_run(engine, run_id, "done", 0.3, 0.1, "3 moves done", now=9.0)
    with engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).one()._mapping
    assert (row["status"], row["score_before"], row["score_after"]) == ("done", 0.3, 0.1)
    assert (row["started_at"], row["finished_at"], row["message"]) == (5.0, 9.0, "3 moves done")
    with pytest.raises(StoreError, match="already finished"):
        journal.finish_run(engine, run_id, "failed", None, None, "again")
    with pytest.raises(StoreError, match="cannot finish with status 'running'"):
        journal.finish_run(engine, run_id, "running", None, None, None)
    with pytest.raises(StoreError, match="run kind"):
        journal.start_run(engine, "", None)
    frame = journal.runs_frame(engine)
    assert list(frame["id"]) == [run_id]
