"""Ingest paths beyond the basics: worker processes, COPY quoting, late files mixed with
new ones, last_seen rebuilt after a killed run, and the nodes' clock skew."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import make_sample
from sqlalchemy.engine import Engine

from lblog import spool
from lblog.sample import VeRow
from lbvm.store import ingest as ingest_mod
from lbvm.store.engine import connect
from lbvm.store.ingest import ingest
from lbvm.store.schema import ingest_runs

Writer = Callable[..., Path]


def rows(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def fill(write_sample: Writer, nodes: int = 3, samples: int = 8) -> None:
    for t in range(samples):
        for n in range(nodes):
            ves = [
                VeRow(f"n{n}v{i}", cpu_raw=(i + 1) * 100 * 300 * t, uptime=10.0 + 300 * t,
                      mem_bytes=i << 20, failcnt=t if i else None)
                for i in range(3)
            ]  # fmt: skip
            write_sample(f"n{n}", 1000 + 300 * t, ves, busy=t * 3000, idle=t)


SAMPLES = "SELECT ve, node, ts, cpu_raw, cpu_hz, cpu_used, uptime, mem_bytes, failcnt " \
          "FROM ve_samples ORDER BY ve, ts"  # fmt: skip


@pytest.mark.slow
def test_worker_processes_store_the_same(db_url: str, tmp_path: Path, spool_dir: Path,
                                         write_sample: Writer) -> None:  # fmt: skip
    fill(write_sample)
    copy = tmp_path / "copy"
    shutil.copytree(spool_dir, copy)
    one = connect(db_url)
    ingest(one, spool_dir, jobs=0, batch_files=5)
    expected = rows(one, SAMPLES)
    with one.begin() as conn:
        for table in ("ve_samples", "node_samples", "spool_files", "ves", "nodes"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    result = ingest(one, copy, jobs=2, batch_files=5)
    assert result.files == 24 and result.ve_rows == 72
    pd.testing.assert_frame_equal(rows(one, SAMPLES), expected)
    assert expected["cpu_used"].notna().sum() == 3 * 3 * 7
    one.dispose()


def test_odd_ve_names_are_stored_as_written(store: Engine, spool_dir: Path,
                                            write_sample: Writer) -> None:  # fmt: skip
    names = ['a,b', 'say "hi"', "two\nlines", "tab\there", " pad ", "ünï", "x\\y"]
    write_sample("n1", 1000, [VeRow(v, cpu_raw=1, mem_bytes=5) for v in names])
    write_sample("n1", 1300, [VeRow(v, cpu_raw=3001, mem_bytes=None) for v in names])
    assert ingest(store, spool_dir).ve_rows == 14
    got = rows(store, "SELECT ve, cpu_used, mem_bytes FROM ve_samples ORDER BY ts")
    assert sorted(got["ve"][:7]) == sorted(names)
    assert got["cpu_used"][7:].tolist() == pytest.approx([0.1] * 7)
    assert got["mem_bytes"][7:].isna().all()


def test_late_file_beside_new_ones_in_one_batch(store: Engine, spool_dir: Path,
                                                write_sample: Writer) -> None:  # fmt: skip
    write_sample("n1", 1000, [VeRow("101", cpu_raw=0), VeRow("102", cpu_raw=0)])
    write_sample("n1", 1600, [VeRow("101", cpu_raw=60_000), VeRow("102", cpu_raw=60_000)])
    ingest(store, spool_dir)
    # 1300 arrives late for 101 (and again for 102, already stored: a duplicate), with
    # 1900 for both: 101 and 102 take the general path, 103 the fast one.
    write_sample("n1", 1300, [VeRow("101", cpu_raw=30_000)])
    write_sample("n1", 1900, [VeRow("101", cpu_raw=90_000), VeRow("102", cpu_raw=90_000),
                              VeRow("103", cpu_raw=5)])  # fmt: skip
    (spool_dir / "incoming/n1/n1-again.json").write_bytes(
        spool.encode(make_sample("n1", 1600, [VeRow("102", cpu_raw=1)]), time.time())
    )
    got = ingest(store, spool_dir)
    assert (got.files, got.ve_rows, got.duplicates) == (3, 4, 2)  # the again file's VE+node
    used = rows(store, "SELECT ve, ts, cpu_used FROM ve_samples WHERE ve = '101' ORDER BY ts")
    assert used["cpu_used"].tolist()[1:] == pytest.approx([1.0, 1.0, 1.0])
    ves = rows(store, "SELECT ve, last_seen FROM ves ORDER BY ve")
    assert ves.values.tolist() == [["101", 1900.0], ["102", 1900.0], ["103", 1900.0]]


def test_last_seen_rebuilt_after_a_killed_run(store: Engine, spool_dir: Path,
                                              write_sample: Writer) -> None:  # fmt: skip
    fill(write_sample, nodes=2, samples=3)
    ingest(store, spool_dir)
    with store.begin() as conn:  # what a run killed before its end leaves behind
        conn.execute(sa.insert(ingest_runs).values(started_at=1.0, status="running"))
        conn.execute(sa.text("UPDATE ves SET last_seen = 1000, node = 'elsewhere'"))
        conn.execute(sa.text("UPDATE nodes SET last_seen = NULL"))
    ingest(store, spool_dir)  # nothing new to load
    assert set(rows(store, "SELECT last_seen FROM ves")["last_seen"]) == {1600.0}
    assert set(rows(store, "SELECT node FROM ves")["node"]) == {"n0", "n1"}
    assert set(rows(store, "SELECT last_seen FROM nodes")["last_seen"]) == {1600.0}
    runs = rows(store, "SELECT status FROM ingest_runs ORDER BY id")["status"].tolist()
    assert runs == ["done", "interrupted", "done"]


def _skewed(spool_dir: Path, node: str, t: float, written: float | None, mtime: float) -> None:
    doc = json.loads(spool.encode(make_sample(node, t, [VeRow(f"{node}-1", cpu_raw=1)])))
    if written is not None:
        doc["written"] = written
    path = spool.node_dir(spool_dir, node) / f"{node}-{t:.0f}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    os.utime(path, (mtime, mtime))


def test_clock_skew_per_node_once_per_run(store: Engine, spool_dir: Path) -> None:
    now = 1_800_000_000.0
    for i in range(3):  # ahead by 500 s, by the written key
        _skewed(spool_dir, "fast", now + 300 * i, now + 300 * i + 500, now + 300 * i)
    for i in range(3):  # behind by 200 s: no written key (an older agent), time counts
        _skewed(spool_dir, "slow", now + 300 * i - 200, None, now + 300 * i)
    _skewed(spool_dir, "fine", now, now + 3, now)
    # A file flushed from a backlog: collected long ago, written now: no skew.
    _skewed(spool_dir, "fine", now - 7200, now + 303, now + 300)
    ingest(store, spool_dir, now=now)
    events = rows(store, "SELECT subject, level, message FROM events WHERE kind = 'skew'")
    assert sorted(events["subject"]) == ["fast", "slow"] and set(events["level"]) == {"warning"}
    assert any("+500 s" in m for m in events["message"])
    assert any("-200 s" in m for m in events["message"])
    clock = rows(store, "SELECT node, skew, files FROM node_clock ORDER BY node")
    assert clock.values.tolist() == [["fast", 500.0, 3], ["fine", 3.0, 2], ["slow", -200.0, 3]]
    # A stricter threshold, on the next run: one event per node, fine's too.
    _skewed(spool_dir, "fine", now + 600, now + 603, now + 600)
    ingest(store, spool_dir, now=now + 600, skew_threshold=1.0)
    events = rows(store, "SELECT subject FROM events WHERE kind = 'skew'")
    assert events["subject"].tolist().count("fine") == 1


def test_written_key_must_be_a_number(store: Engine, spool_dir: Path) -> None:
    _skewed(spool_dir, "n1", 1000.0, None, 1000.0)
    path = next((spool_dir / "incoming/n1").glob("*.json"))
    path.write_text(path.read_text().replace('"version":', '"written":"soon","version":'))
    assert ingest(store, spool_dir).quarantined == 1
    reason = rows(store, "SELECT reason FROM spool_files")["reason"][0]
    assert "key 'written' is not a positive number" in reason


def test_late_file_in_the_batch_after_its_successor(
    store: Engine, spool_dir: Path, write_sample: Writer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batch 1 stores 101 at 1000 and 1600, slowly; batch 2, prepared while batch 1 is
    # being written, brings 1300 late and 1600 again: it must wait to see batch 1.
    insert = ingest_mod._insert_ves

    def slow(*args: object) -> None:
        time.sleep(0.5)
        insert(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_mod, "_insert_ves", slow)
    write_sample("n1", 1000, [VeRow("101", cpu_raw=0)])
    write_sample("n1", 1600, [VeRow("101", cpu_raw=60_000)])
    folder = spool.node_dir(spool_dir, "n1")
    for name, t, ves in [
        ("n1-29990101T000000.000000Z.json", 1300, [VeRow("101", cpu_raw=30_000),
                                                   VeRow("102", cpu_raw=5)]),
        ("n1-29990101T000001.000000Z.json", 1600, [VeRow("101", cpu_raw=1)]),
    ]:  # fmt: skip
        (folder / name).write_bytes(spool.encode(make_sample("n1", t, ves), time.time()))
    got = ingest(store, spool_dir, batch_files=2)
    assert (got.files, got.ve_rows, got.duplicates) == (4, 4, 2)
    used = rows(store, "SELECT ts, cpu_raw, cpu_used FROM ve_samples WHERE ve = '101' "
                       "ORDER BY ts")  # fmt: skip
    assert used["cpu_raw"].tolist() == [0, 30_000, 60_000]
    assert used["cpu_used"].tolist()[1:] == pytest.approx([1.0, 1.0])
    ves = rows(store, "SELECT ve, last_seen FROM ves ORDER BY ve")
    assert ves.values.tolist() == [["101", 1600.0], ["102", 1300.0]]
