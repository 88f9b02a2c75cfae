"""Retention: hourly rollups built before raw rows go, idempotent, late files rebuilt,
long windows answered from the rollups."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lblog.sample import VeRow
from lbvm.errors import StoreError
from lbvm.store import bulk, queries, retention, rollup
from lbvm.store.ingest import ingest
from lbvm.store.schema import node_samples, ve_samples

Writer = Callable[..., Path]
DAY, HOUR = 86400.0, 3600.0
T0 = 1_700_006_400.0  # a whole hour
DAYS, PER_HOUR, VES = 20, 4, 3
NOW = T0 + DAYS * DAY + 1800  # half past the last hour's start: that hour is not complete


def rows(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def raw_frame() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    ts = T0 + np.arange(DAYS * 24 * PER_HOUR) * (HOUR / PER_HOUR)
    n = len(ts)
    cpu = rng.gamma(2.0, 0.5, size=(VES, n))
    cpu[0, 7] = np.nan  # a reset interval
    return pd.DataFrame(
        {
            "ve": np.repeat([f"v{i}" for i in range(VES)], n),
            "node": "n1",
            "ts": np.tile(ts, VES),
            "cpu_hz": 100,
            "cpu_used": cpu.ravel(),
            "mem_bytes": rng.integers(1 << 20, 1 << 30, size=VES * n),
            "disk_bytes": 5 << 30,
            "failcnt": np.tile(np.arange(n) // 10, VES),
        }
    )


@pytest.fixture
def filled(store: Engine) -> pd.DataFrame:
    frame = raw_frame()
    nodes = pd.DataFrame(
        {
            "node": "n1",
            "ts": frame["ts"].unique(),
            "cpu_used": 2.0,
            "mem_total_bytes": 64 << 30,
            "mem_available_bytes": 16 << 30,
            "load1": 1.5,
        }
    )
    with store.begin() as conn:
        bulk.insert_frame(conn, ve_samples, frame)
        bulk.insert_frame(conn, node_samples, nodes)
        conn.execute(sa.text("INSERT INTO ves (ve, node, balanced, pinned) "
                             "SELECT DISTINCT ve, node, true, false FROM ve_samples"))  # fmt: skip
    return frame


def test_rollups_then_raw_deleted_and_idempotent(store: Engine, filled: pd.DataFrame) -> None:
    result = retention.run(store, NOW, raw_days=14, rollup_days=365)
    hours = DAYS * 24  # every complete hour (the one NOW is in was never sampled)
    assert (result.hours, result.ve_rollups, result.node_rollups) == (hours, hours * VES, hours)
    cut = T0 + (DAYS - 14) * DAY
    kept = rows(store, "SELECT min(ts) AS first, count(*) AS n FROM ve_samples")
    assert kept["first"][0] == cut
    assert result.raw_deleted == int((filled["ts"] < cut).sum())
    # One hour, by hand: p95 is numpy's linear percentile, NaN left out as SQL would.
    hour = T0 + 7 * HOUR
    got = rows(store, f"SELECT * FROM ve_rollups WHERE ve = 'v1' AND hour = {hour}").iloc[0]
    raw = filled[(filled["ve"] == "v1") & (filled["ts"] >= hour) & (filled["ts"] < hour + HOUR)]
    assert got["cpu_p95"] == pytest.approx(np.percentile(raw["cpu_used"], 95))
    assert got["cpu_mean"] == pytest.approx(raw["cpu_used"].mean())
    assert got["mem_max"] == raw["mem_bytes"].max() and got["mem_last"] == raw["mem_bytes"].iloc[-1]
    assert (got["samples"], got["cpu_n"], got["node"]) == (PER_HOUR, PER_HOUR, "n1")
    first = rows(store, f"SELECT cpu_n FROM ve_rollups WHERE ve = 'v0' AND hour = {T0 + HOUR}")
    assert first["cpu_n"][0] == PER_HOUR - 1  # the NaN
    node = rows(store, f"SELECT * FROM node_rollups WHERE hour = {hour}").iloc[0]
    assert (node["mem_used_max"], node["load1_mean"]) == (48 << 30, 1.5)
    before = rows(store, "SELECT * FROM ve_rollups ORDER BY ve, hour")
    again = retention.run(store, NOW, raw_days=14, rollup_days=365)
    assert again == retention.RetentionResult()
    pd.testing.assert_frame_equal(rows(store, "SELECT * FROM ve_rollups ORDER BY ve, hour"), before)
    # A year on, rollups past rollup_days go too.
    later = retention.run(store, T0 + 375 * DAY, raw_days=14, rollup_days=365)
    assert later.rollups_deleted == 10 * 24 * (VES + 1)  # the first 10 days, VEs and node
    assert rows(store, "SELECT min(hour) AS h FROM ve_rollups")["h"][0] == T0 + 10 * DAY
    assert rows(store, "SELECT count(*) AS n FROM ve_samples")["n"][0] == 0


def test_long_windows_read_the_rollups(store: Engine, filled: pd.DataFrame) -> None:
    start, end = T0 - 1, T0 + DAYS * DAY
    raw_max = queries.window_demand(store, start=start, end=end, statistic="max")
    raw_mean = queries.window_demand(store, start=start, end=end, statistic="mean")
    retention.run(store, NOW, raw_days=14, rollup_days=365)
    got_max = queries.window_demand(store, start=start, end=end, statistic="max")
    got_mean = queries.window_demand(store, start=start, end=end, statistic="mean")
    pd.testing.assert_frame_equal(got_max, raw_max)  # exact: max of hourly maxima
    pd.testing.assert_frame_equal(got_mean, raw_mean, rtol=1e-9)  # sample-weighted means
    p95 = queries.window_demand(store, start=start, end=end, statistic="p95")
    hourly = rows(store, "SELECT ve, cpu_p95 FROM ve_rollups").groupby("ve")["cpu_p95"]
    np.testing.assert_allclose(p95["cpu"], hourly.quantile(0.95).sort_index())
    stats = queries.ve_stats(store, start=start, end=end)
    last = filled.sort_values("ts").groupby("ve").last()
    assert stats["mem_bytes"].tolist() == last["mem_bytes"].astype(float).tolist()
    assert stats["cpu"].to_numpy() == pytest.approx(raw_mean["cpu"].to_numpy())
    # failcnt rises by 1 every 10 samples: DAYS*24*PER_HOUR // 10 - ... over the window
    n = DAYS * 24 * PER_HOUR
    assert stats["failcnt_delta"].tolist() == [float((n - 1) // 10)] * VES
    # A short window inside raw retention still reads the raw samples.
    short = queries.window_demand(store, start=end - DAY, end=end)
    assert len(short) == VES and short["cpu"].notna().all()


def test_late_file_rebuilds_its_hour(store: Engine, spool_dir: Path, write_sample: Writer) -> None:
    base = T0 + 10 * DAY
    for i in range(4):
        write_sample("n1", base + 900 * i, [VeRow("101", cpu_raw=9000 * i, mem_bytes=100)])
    ingest(store, spool_dir, now=base + 3 * HOUR)
    retention.run(store, base + 3 * HOUR, raw_days=14, rollup_days=365)
    one = rows(store, f"SELECT samples, mem_max FROM ve_rollups WHERE hour = {base}")
    assert one.values.tolist() == [[4, 100.0]]
    # A file for that hour arrives late (a node's backlog): the next run rebuilds the hour.
    write_sample("n1", base + 450, [VeRow("101", cpu_raw=4500, mem_bytes=900)])
    ingest(store, spool_dir, now=base + 5 * HOUR)
    result = retention.run(store, base + 5 * HOUR, raw_days=14, rollup_days=365)
    assert result.hours >= 1
    one = rows(store, f"SELECT samples, mem_max FROM ve_rollups WHERE hour = {base}")
    assert one.values.tolist() == [[5, 900.0]]
    events = rows(store, "SELECT kind FROM events WHERE kind = 'retention'")
    assert len(events) == 1


def test_late_file_older_than_raw_is_merged_into_its_hour(
    store: Engine, spool_dir: Path, write_sample: Writer
) -> None:
    base = T0 + DAY
    for i in range(4):  # VE 101 on n1, on time
        write_sample("n1", base + 900 * i, [VeRow("101", cpu_raw=9000 * i, mem_bytes=100 + i)])
    ingest(store, spool_dir, now=base + HOUR)
    now = base + 20 * DAY
    retention.run(store, now, raw_days=14, rollup_days=365)  # the hour's raw samples go
    assert rows(store, f"SELECT count(*) AS n FROM ve_samples WHERE ts < {now}")["n"][0] == 0
    # Two weeks on, a node's backlog arrives: n3 (VE 103, no rollup for it yet) and one
    # more sample of VE 101 from n1.
    late = [write_sample("n3", base + 600 * i, [VeRow("103", cpu_raw=60_000 * i,
                                                      mem_bytes=i << 30)])
            for i in (1, 2, 3)]  # fmt: skip
    write_sample("n1", base + 450, [VeRow("101", cpu_raw=4500, mem_bytes=900)])
    ingest(store, spool_dir, now=now + 600)
    result = retention.run(store, now + HOUR, raw_days=14, rollup_days=365)
    assert result.late_merged == 4 + 4  # VE samples and node samples
    got = rows(store, f"SELECT * FROM ve_rollups WHERE hour = {base} ORDER BY ve").set_index("ve")
    new = got.loc["103"]  # exact: the hour had no row for it
    assert (new["samples"], new["cpu_n"], new["node"]) == (3, 2, "n3")
    assert (new["cpu_mean"], new["cpu_max"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert (new["mem_max"], new["mem_last"]) == (3 << 30, 3 << 30)
    assert new["mem_p95"] == pytest.approx(np.percentile([1 << 30, 2 << 30, 3 << 30], 95))
    old = got.loc["101"]  # merged: counts add up, maxima exact, the last values stay
    assert (old["samples"], old["mem_max"], old["mem_last"], old["node"]) == (5, 900, 103, "n1")
    assert old["mem_mean"] == pytest.approx((100 + 101 + 102 + 103 + 900) / 5)
    assert old["mem_p95"] == 900  # the larger p95: the late part's only sample
    node = rows(store, f"SELECT node, samples FROM node_rollups WHERE hour = {base} ORDER BY node")
    assert node.values.tolist() == [["n1", 5], ["n3", 3]]
    assert rows(store, f"SELECT count(*) AS n FROM ve_samples WHERE ts < {now}")["n"][0] == 0
    events = rows(store, "SELECT message FROM events WHERE kind = 'retention'")["message"]
    assert events.str.contains("merged 8 late sample").any()
    # The same file delivered again is known to the ledger: not merged twice.
    again = spool_dir / "incoming" / "n3" / late[0].name
    shutil.copy(spool_dir / "done" / "n3" / late[0].name, again)
    ingest(store, spool_dir, now=now + 2 * HOUR)
    assert not again.exists()
    assert retention.run(store, now + 2 * HOUR, raw_days=14, rollup_days=365).late_merged == 0
    twice = rows(store, f"SELECT * FROM ve_rollups WHERE hour = {base} ORDER BY ve")
    pd.testing.assert_frame_equal(twice.set_index("ve"), got)


def test_merge_keeps_rows_only_one_side_has() -> None:
    stored = pd.DataFrame({"ve": ["a", "b"], "hour": 0.0, "node": "n1", "samples": [12, 12],
                           "cpu_mean": [1.0, 2.0], "cpu_p95": [1.5, 3.0], "cpu_max": [2.0, 4.0],
                           "cpu_n": [12, 11], "mem_mean": [10.0, 20.0], "mem_p95": [15.0, 25.0],
                           "mem_max": [18.0, 30.0], "mem_last": [11.0, 21.0],
                           "disk_last": [5.0, 6.0], "failcnt_growth": [1.0, np.nan],
                           "failcnt_last": [3.0, np.nan]})  # fmt: skip
    late = pd.concat([
        stored.iloc[[1]].assign(ve="c", node="n2"),
        stored.iloc[[1]].assign(samples=4, cpu_n=4, cpu_mean=6.0, cpu_p95=7.0, cpu_max=9.0,
                                mem_last=99.0, failcnt_growth=2.0, failcnt_last=8.0),
    ])  # fmt: skip
    out = rollup.merge(stored, late, "ve").set_index("ve")
    assert list(out.loc["a"]) == list(stored.set_index("ve").loc["a"])
    assert out.loc["c", "node"] == "n2" and out.loc["c", "samples"] == 12
    b = out.loc["b"]
    assert (b["samples"], b["cpu_n"], b["cpu_max"], b["cpu_p95"]) == (16, 15, 9.0, 7.0)
    assert b["cpu_mean"] == pytest.approx((2.0 * 11 + 6.0 * 4) / 15)
    kept = (b["mem_last"], b["node"], b["failcnt_growth"], b["failcnt_last"])
    assert kept == (21.0, "n1", 2.0, 8.0)


def test_bad_retention_settings(store: Engine) -> None:
    with pytest.raises(StoreError, match="rollup_days"):
        retention.run(store, NOW, raw_days=30, rollup_days=7)
    with pytest.raises(StoreError, match="raw_days"):
        retention.run(store, NOW, raw_days=0)


def test_empty_store_is_fine(store: Engine) -> None:
    assert retention.run(store, NOW) == retention.RetentionResult()
    later = retention.run(store, NOW + DAY)  # a day of hours with no samples: nothing written
    assert later == retention.RetentionResult(hours=24)
