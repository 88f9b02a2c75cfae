"""Engine and queries: connection errors, window statistics, tables, small writes, events."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lblog.sample import VeRow
from lbvm.config import Config, NodeConfig, PairConfig
from lbvm.errors import NotFound, StoreError
from lbvm.store import bulk, queries
from lbvm.store.engine import connect
from lbvm.store.events import list_events, record_event
from lbvm.store.ingest import ingest
from lbvm.store.schema import ve_samples

Writer = Callable[..., Path]
CONFIG = Config(
    pairs=(PairConfig("p1", ("n1", "n2")),),
    nodes=(NodeConfig("n2", cpus=4.0),),
)


def test_bad_url_is_one_clear_line() -> None:
    with pytest.raises(StoreError, match="not a database URL"):
        connect("no-such-thing")
    with pytest.raises(StoreError) as caught:
        connect("postgresql+psycopg://lbvm:s3cret@127.0.0.1:1/none")
    message = str(caught.value)
    assert "s3cret" not in message and "***" in message and "\n" not in message


def test_connect_is_idempotent_and_sqlite_uses_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    connect(url).dispose()
    engine = connect(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    engine.dispose()


def _fill(store: Engine, frame: pd.DataFrame) -> None:
    """Samples and, as ingest writes them, a ves row for each of their VEs."""
    with store.begin() as conn:
        bulk.insert_frame(conn, ve_samples, frame)
        names = frame.drop_duplicates("ve")
        rows = [{"ve": v, "node": n} for v, n in zip(names["ve"], names["node"], strict=True)]
        conn.execute(queries.ves.insert(), rows)


def test_window_demand_statistics_match_numpy(store: Engine) -> None:
    rng = np.random.default_rng(7)
    n_ves, n_samples = 30, 40
    cpu = rng.gamma(2.0, 0.5, size=(n_ves, n_samples))
    mem = rng.integers(1 << 20, 1 << 34, size=(n_ves, n_samples))
    cpu[3, 5] = np.nan  # a reset interval: ignored, as SQL ignores NULL
    frame = pd.DataFrame(
        {
            "ve": np.repeat([f"ve{i:03d}" for i in range(n_ves)], n_samples),
            "node": "n1",
            "ts": np.tile(np.arange(n_samples) * 300.0 + 1000, n_ves),
            "cpu_used": cpu.ravel(),
            "mem_bytes": mem.ravel(),
        }
    )
    _fill(store, frame)
    end = 1000 + 300.0 * (n_samples - 1)
    start = 1000 + 300.0 * 9  # excludes the first 10 samples (start is exclusive)
    p95 = queries.window_demand(store, start=start, end=end)
    assert list(p95.columns) == ["cpu", "mem"] and p95.index.name == "ve"
    assert list(p95.index) == sorted(frame["ve"].unique())
    want_cpu = np.nanpercentile(cpu[:, 10:], 95, axis=1)
    want_mem = np.percentile(mem[:, 10:].astype(float), 95, axis=1)
    np.testing.assert_allclose(p95["cpu"].to_numpy(), want_cpu, rtol=1e-9)
    np.testing.assert_allclose(p95["mem"].to_numpy(), want_mem, rtol=1e-9)
    peak = queries.window_demand(store, start=start, end=end, statistic="max")
    np.testing.assert_allclose(peak["cpu"].to_numpy(), np.nanmax(cpu[:, 10:], axis=1))
    mean = queries.window_demand(store, start=start, end=end, statistic="mean")
    np.testing.assert_allclose(mean["mem"].to_numpy(), mem[:, 10:].mean(axis=1), rtol=1e-9)
    with pytest.raises(StoreError, match="statistic 'p950'"):
        queries.window_demand(store, start=start, end=end, statistic="p950")
    empty = queries.window_demand(store, start=0, end=1)
    assert empty.empty and list(empty.columns) == ["cpu", "mem"]


@pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)
def test_window_demand_reads_the_index_alone_on_postgresql(store: Engine) -> None:
    """Once vacuumed, PostgreSQL answers window_demand from the (ve, ts) index, which
    carries cpu_used and mem_bytes: no heap page is read per sample."""
    names, n = [f"ve{i:03d}" for i in range(200)], 200  # stored in time order, as ingested
    _fill(store, pd.DataFrame({
        "ve": np.tile(names, n), "node": "n1", "ts": np.repeat(np.arange(n) * 300.0, 200),
        "cpu_used": np.repeat(np.arange(n) / n, 200), "mem_bytes": np.repeat(np.arange(n), 200),
    }))  # fmt: skip
    with store.connect() as conn:
        index = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_ve_samples_ve_ts' "
            "AND schemaname = current_schema()"
        ).scalar_one()
        assert "(ve, ts) INCLUDE (cpu_used, mem_bytes)" in index
        conn.rollback()
        conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("ANALYZE ves")
        for _ in range(40):  # a transaction open elsewhere keeps new rows from all-visible
            conn.exec_driver_sql("VACUUM ANALYZE ve_samples")
            pages = conn.exec_driver_sql(
                "SELECT relpages, relallvisible FROM pg_class WHERE oid = 've_samples'::regclass"
            ).one()
            if pages[0] == pages[1]:
                break
            time.sleep(0.5)
        else:
            pytest.skip("other transactions kept VACUUM from marking the pages all-visible")
    seen: list[str] = []

    @sa.event.listens_for(store, "before_cursor_execute")
    def explain(conn, cursor, statement, parameters, context, executemany):
        if "percentile_cont" in statement:
            cursor.execute("EXPLAIN (ANALYZE) " + statement, parameters)
            seen.extend(row[0] for row in cursor.fetchall())

    demand = queries.window_demand(store, start=300.0 * 99, end=300.0 * 199)
    sa.event.remove(store, "before_cursor_execute", explain)
    plan = "\n".join(seen)
    assert "Index Only Scan" in plan and "Heap Fetches: 0" in plan, plan
    want = np.percentile(np.arange(100, 200), 95)
    assert demand["cpu"].tolist() == pytest.approx([want / n] * 200)
    assert demand["mem"].tolist() == pytest.approx([want] * 200)


def _cluster(store: Engine, spool_dir: Path, write_sample: Writer) -> None:
    # VE 101 on n1: 1 core then 3 cores; failcnt 5 -> 7 -> reset to 1 (growth 2 + 1).
    # VE 201 on n2: 0.5 core.
    for i, (raw, fail) in enumerate([(0, 5), (30_000, 7), (120_000, 1)]):
        t = 1000 + 300 * i
        write_sample("n1", t, [VeRow("101", cpu_raw=raw, mem_bytes=(i + 1) << 30,
                                     disk_bytes=10 << 30, failcnt=fail)])  # fmt: skip
        write_sample("n2", t, [VeRow("201", cpu_raw=15_000 * i, mem_bytes=1 << 30)], cpus=8)
    ingest(store, spool_dir)


def test_ve_table(store: Engine, spool_dir: Path, write_sample: Writer) -> None:
    _cluster(store, spool_dir, write_sample)
    with store.begin() as conn:
        queries.sync_nodes(conn, CONFIG)
        queries.set_flags(conn, "201", pinned=True)
    table = queries.ve_table(store, window=3600, now=1600)
    assert list(table.columns) == queries.VE_COLUMNS
    one = table.set_index("ve").loc["101"]
    assert (one["node"], one["pair"], one["balanced"], one["pinned"]) == ("n1", "p1", True, False)
    assert one["cpu"] == pytest.approx(2.0)  # mean of 1 and 3 cores
    assert one["cpu_p95"] == pytest.approx(1 + 0.95 * 2)
    assert one["mem_bytes"] == 3 << 30 and one["disk_bytes"] == 10 << 30
    assert one["mem_p95"] == pytest.approx((1 + 0.95 * 2) * (1 << 30))
    assert one["failcnt_delta"] == 3 and one["last_seen"] == 1600
    assert bool(table.set_index("ve").loc["201", "pinned"])
    later = queries.ve_table(store, window=60, now=9000)  # nothing in the window
    assert later["cpu"].isna().all() and len(later) == 2


def test_node_table(store: Engine, spool_dir: Path, write_sample: Writer) -> None:
    _cluster(store, spool_dir, write_sample)
    table = queries.node_table(store, CONFIG, window=3600, now=1600).set_index("node")
    assert list(table.reset_index().columns) == queries.NODE_COLUMNS
    n1, n2 = table.loc["n1"], table.loc["n2"]
    assert (n1["pair"], n1["cpus"], n1["ves"]) == ("p1", 8.0, 1)
    assert n2["cpus"] == 4.0  # config override of the reported 8
    assert n1["cpu_used"] == pytest.approx(1 + 0.95 * 2)
    assert n2["cpu_used"] == pytest.approx(0.5) and n2["cpu_util"] == pytest.approx(0.125)
    assert n1["mem_util"] == pytest.approx(n1["mem_used"] / (32 << 30))
    assert not n1["maintenance"] and n1["last_seen"] == 1600


def test_small_reads_and_writes(store: Engine, spool_dir: Path, write_sample: Writer) -> None:
    assert queries.newest_sample_time(store) is None
    _cluster(store, spool_dir, write_sample)
    assert queries.newest_sample_time(store) == 1600
    assert queries.latest_placement(store).to_dict() == {"101": "n1", "201": "n2"}
    with store.begin() as conn:
        queries.set_ve_node(conn, "101", "n2")
        queries.set_flags(conn, "101", balanced=False)
        queries.set_maintenance(conn, "n1", True)
    row = queries.get_ve(store, "101")
    assert (row["node"], bool(row["balanced"]), bool(row["pinned"])) == ("n2", False, False)
    table = queries.node_table(store, CONFIG, now=1600).set_index("node")
    assert bool(table.loc["n1", "maintenance"]) and table.loc["n2", "ves"] == 2
    with pytest.raises(NotFound, match="'999'"):
        queries.get_ve(store, "999")
    with store.begin() as conn, pytest.raises(NotFound, match="'999'"):
        queries.set_ve_node(conn, "999", "n1")
    with store.begin() as conn, pytest.raises(NotFound, match="'999'"):
        queries.set_flags(conn, "999", pinned=True)


def test_events(store: Engine) -> None:
    with store.begin() as conn:
        record_event(conn, "info", "run", None, "first", ts=10.0)
        record_event(conn, "error", "quarantine", "n1/x.json", "bad file", ts=20.0)
        with pytest.raises(StoreError, match="'fatal'"):
            record_event(conn, "fatal", "run", None, "no")
    frame = list_events(store)
    assert frame["message"].tolist() == ["bad file", "first"]
    assert list_events(store, kind="run")["ts"].tolist() == [10.0]
    assert list_events(store, since=15.0)["subject"].tolist() == ["n1/x.json"]


def test_sync_nodes_records_pairs(store: Engine) -> None:
    with store.begin() as conn:
        queries.sync_nodes(conn, CONFIG)
        pairs: dict[str, str] = dict(conn.execute(sa.text("SELECT name, pair FROM nodes")).all())
    assert pairs == {"n1": "p1", "n2": "p1"}
    with store.begin() as conn:
        queries.sync_nodes(conn, Config())
        assert set(conn.execute(sa.text("SELECT pair FROM nodes")).scalars()) == {None}


def test_window_demand_split_in_parallel_gives_the_same(
    store: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    names = [f"ve{i:02d}" for i in range(12)]
    frame = pd.DataFrame(
        {
            "ve": np.repeat(names, 20),
            "node": "n1",
            "ts": np.tile(np.arange(20) * 300.0, 12),
            "cpu_used": rng.random(240),
            "mem_bytes": rng.integers(1, 1 << 40, 240),
        }
    )
    _fill(store, frame)
    whole = queries.window_demand(store, start=-1, end=1e9)
    monkeypatch.setattr(queries, "SPLIT_MIN_VES", 2)
    monkeypatch.setattr(queries, "MAX_PARALLEL", 3)
    if store.dialect.name == "postgresql":
        assert len(queries._split_points(store, 3)) == 2
    split = queries.window_demand(store, start=-1, end=1e9)
    pd.testing.assert_frame_equal(whole, split)
    assert len(split) == 12
