"""Ingest: exactly once, rates to the number, resets, duplicates, migrations, bad files."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lblog.sample import VeRow
from lbvm.errors import StoreError
from lbvm.store import ingest as ingest_mod
from lbvm.store.ingest import IngestResult, ingest

Writer = Callable[..., Path]


def rows(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(sa.text(sql))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def cpu_used(engine: Engine, ve: str) -> list[float | None]:
    frame = rows(engine, f"SELECT cpu_used FROM ve_samples WHERE ve = '{ve}' ORDER BY ts")
    return [None if v is None or math.isnan(v) else v for v in frame["cpu_used"]]


def files_in(spool: Path, where: str) -> list[str]:
    return sorted(p.name for p in (spool / where).rglob("*.json"))


def test_rates_to_the_number_and_upserts(store: Engine, spool_dir: Path, write_sample: Writer):
    # VE 101: 150 jiffies (hz 100) in 300 s = 0.005 cores; then 6000 in 300 s = 0.2 cores.
    write_sample("n1", 1000, [VeRow("101", cpu_raw=1000, uptime=50, mem_bytes=1 << 30)],
                 busy=10_000, idle=50_000)  # fmt: skip
    write_sample("n1", 1300, [VeRow("101", cpu_raw=1150, uptime=350, mem_bytes=2 << 30)],
                 busy=70_000, idle=80_000)  # fmt: skip
    write_sample("n1", 1600, [VeRow("101", cpu_raw=7150, uptime=650)], busy=100_000, idle=90_000)
    result = ingest(store, spool_dir, now=5000.0)
    assert result == IngestResult(files=3, ve_rows=3, node_rows=3)
    assert cpu_used(store, "101") == [None, pytest.approx(0.005), pytest.approx(0.2)]
    nodes = rows(store, "SELECT ts, cpu_used FROM node_samples ORDER BY ts")
    # 60,000 busy jiffies at 100 Hz over 300 s = 2 cores; then 30,000 -> 1 core.
    assert nodes["cpu_used"].tolist()[1:] == [pytest.approx(2.0), pytest.approx(1.0)]
    ve = rows(store, "SELECT * FROM ves").iloc[0]
    assert (ve["ve"], ve["node"], ve["first_seen"], ve["last_seen"]) == ("101", "n1", 1000, 1600)
    assert bool(ve["balanced"]) and not bool(ve["pinned"])
    node = rows(store, "SELECT * FROM nodes").iloc[0]
    assert (node["cpus"], node["mem_bytes"], node["last_seen"]) == (8.0, 32 << 30, 1600.0)
    ledger = rows(store, "SELECT status, ingested_at, rows FROM spool_files")
    assert set(ledger["status"]) == {"ingested"} and set(ledger["ingested_at"]) == {5000.0}
    assert ledger["rows"].tolist() == [1, 1, 1]
    assert files_in(spool_dir, "incoming") == []
    assert len(files_in(spool_dir, "done/n1")) == 3


def test_node_capacity_kept_once_set(store: Engine, spool_dir: Path, write_sample: Writer):
    write_sample("n1", 1000, cpus=8)
    ingest(store, spool_dir)
    with store.begin() as conn:
        conn.execute(sa.text("UPDATE nodes SET cpus = 4"))
    write_sample("n1", 1300, cpus=16)
    ingest(store, spool_dir)
    node = rows(store, "SELECT cpus, last_seen FROM nodes").iloc[0]
    assert (node["cpus"], node["last_seen"]) == (4.0, 1300.0)


def test_same_rates_whatever_the_batch_size(tmp_path: Path, db_url: str, write_sample: Writer,
                                            spool_dir: Path):  # fmt: skip
    from lbvm.store.engine import connect

    for t in range(6):
        for node in ("a", "b", "c"):
            ves = [VeRow(f"{node}{i}", cpu_raw=(i + 1) * 300 * t * 100) for i in range(3)]
            write_sample(node, 1000 + 300 * t, ves, busy=t * 3000, idle=t)
    store = connect(db_url)
    result = ingest(store, spool_dir, batch_files=4)
    assert result.files == 18 and result.ve_rows == 54
    frame = rows(store, "SELECT ve, ts, cpu_used FROM ve_samples ORDER BY ve, ts")
    for ve, group in frame.groupby("ve"):
        expected = int(str(ve)[1:]) + 1  # cores
        assert group["cpu_used"].isna().tolist() == [True] + [False] * 5
        assert group["cpu_used"].dropna().tolist() == pytest.approx([expected] * 5)
    store.dispose()


def test_ingest_twice_loads_once(store: Engine, spool_dir: Path, write_sample: Writer):
    write_sample("n1", 1000, [VeRow("101", cpu_raw=1)])
    first = ingest(store, spool_dir)
    # The same file dropped into incoming/ again (e.g. restored from a backup).
    done = next((spool_dir / "done").rglob("*.json"))
    (spool_dir / "incoming" / "n1" / done.name).write_bytes(done.read_bytes())
    second = ingest(store, spool_dir)
    assert (first.files, second.files, second.already) == (1, 0, 1)
    assert rows(store, "SELECT count(*) AS n FROM ve_samples")["n"][0] == 1
    assert files_in(spool_dir, "incoming") == []


def test_crash_between_commit_and_move(store: Engine, spool_dir: Path, write_sample: Writer,
                                       monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    for t in (1000, 1300):
        write_sample("n1", t, [VeRow("101", cpu_raw=t)])

    def crash(*_args: object) -> None:
        raise KeyboardInterrupt("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(ingest_mod, "_move", crash)
        with pytest.raises(KeyboardInterrupt):
            ingest(store, spool_dir)
    assert len(files_in(spool_dir, "incoming")) == 2  # committed but not moved
    again = ingest(store, spool_dir)
    assert (again.files, again.already, again.ve_rows) == (0, 2, 0)
    assert rows(store, "SELECT count(*) AS n FROM ve_samples")["n"][0] == 2
    assert files_in(spool_dir, "incoming") == [] and len(files_in(spool_dir, "done")) == 2


def test_failed_batch_writes_nothing(store: Engine, spool_dir: Path, write_sample: Writer,
                                     monkeypatch: pytest.MonkeyPatch):  # fmt: skip
    write_sample("n1", 1000, [VeRow("101", cpu_raw=1)])

    def broken(*_args: object) -> None:
        raise sa.exc.OperationalError("INSERT INTO events", {}, Exception("disk full"))

    monkeypatch.setattr(ingest_mod, "record_events", broken)
    with pytest.raises(StoreError, match="nothing of that batch was written: disk full"):
        ingest(store, spool_dir)
    for table in ("ve_samples", "node_samples", "ves", "nodes", "spool_files"):
        assert rows(store, f"SELECT count(*) AS n FROM {table}")["n"][0] == 0, table
    assert len(files_in(spool_dir, "incoming")) == 1


def test_bad_files_are_quarantined_and_the_rest_loads(store: Engine, spool_dir: Path,
                                                      write_sample: Writer):  # fmt: skip
    good = write_sample("n1", 1000, [VeRow("101", cpu_raw=1)])
    data = good.read_bytes()
    folder = good.parent
    (folder / "n1-truncated.json").write_bytes(data[: len(data) // 2])
    (folder / "n1-garbage.json").write_bytes(b"\x00\xff not json")
    (folder / "n1-wrongtype.json").write_bytes(
        data.replace(b'"rows":[["101",1,', b'"rows":[["101","many",')
    )
    (folder / "n1-othernode.json").write_bytes(data.replace(b'"node":"n1"', b'"node":"n2"'))
    (folder / "n1-huge.json").write_bytes(
        data.replace(b'"rows":[["101",1,', b'"rows":[["101",1e400,')
    )
    result = ingest(store, spool_dir, now=42.0)
    assert (result.files, result.quarantined, result.ve_rows) == (1, 5, 1)
    assert len(files_in(spool_dir, "quarantine/n1")) == 5
    ledger = rows(
        store, "SELECT name, status, reason FROM spool_files WHERE status = 'quarantined'"
    )
    reasons = dict(zip(ledger["name"], ledger["reason"], strict=True))
    assert "not a complete spool file" in reasons["n1-truncated.json"]
    assert "incoming/n1" in reasons["n1-othernode.json"]
    assert "wrong type" in reasons["n1-wrongtype.json"]
    events = rows(store, "SELECT level, kind, subject, ts FROM events ORDER BY subject")
    assert set(events["kind"]) == {"quarantine"} and set(events["level"]) == {"error"}
    assert "n1/n1-garbage.json" in events["subject"].tolist() and set(events["ts"]) == {42.0}
    # Quarantined names stay known: not retried, not counted as loaded.
    assert ingest(store, spool_dir).files == 0


def test_counter_reset_gives_null_not_negative(store: Engine, spool_dir: Path,
                                               write_sample: Writer):  # fmt: skip
    write_sample("n1", 1000, [VeRow("101", cpu_raw=90_000, uptime=900),
                              VeRow("102", cpu_raw=500, uptime=900)])  # fmt: skip
    # 101 restarted: counter went down. 102 restarted: uptime went down, counter did not.
    write_sample("n1", 1300, [VeRow("101", cpu_raw=3_000, uptime=30),
                              VeRow("102", cpu_raw=600, uptime=30)], busy=0)  # fmt: skip
    write_sample("n1", 1600, [VeRow("101", cpu_raw=33_000, uptime=330),
                              VeRow("102", cpu_raw=30_600, uptime=330)])  # fmt: skip
    ingest(store, spool_dir)
    assert cpu_used(store, "101") == [None, None, pytest.approx(1.0)]
    assert cpu_used(store, "102") == [None, None, pytest.approx(1.0)]
    assert rows(store, "SELECT min(cpu_used) AS m FROM ve_samples")["m"][0] >= 0


def test_node_reboot_gives_null(store: Engine, spool_dir: Path, write_sample: Writer):
    write_sample("n1", 1000, busy=500_000, idle=900_000)
    write_sample("n1", 1300, busy=600, idle=1_000)
    ingest(store, spool_dir)
    used = rows(store, "SELECT cpu_used FROM node_samples ORDER BY ts")["cpu_used"]
    assert used.isna().all()


def test_duplicates_keep_the_first(store: Engine, spool_dir: Path, write_sample: Writer):
    first = write_sample("n1", 1000, [VeRow("101", cpu_raw=10, mem_bytes=1),
                                      VeRow("101", cpu_raw=99, mem_bytes=2)])  # fmt: skip
    # The same run again under another name: every sample in it is a duplicate.
    (first.parent / "n1-copy.json").write_bytes(first.read_bytes())
    result = ingest(store, spool_dir)
    assert (result.files, result.ve_rows, result.node_rows) == (2, 1, 1)
    assert result.duplicates == 4  # the second 101 row, and the copy's two VE rows and node row
    stored = rows(store, "SELECT cpu_raw, mem_bytes FROM ve_samples")
    assert stored.values.tolist() == [[10, 1]]
    # Already stored: a later file repeating (ve, ts) is dropped too, not an error.
    write_sample("n2", 1000, [VeRow("101", cpu_raw=5)])
    again = ingest(store, spool_dir)
    assert (again.files, again.ve_rows, again.duplicates) == (1, 0, 1)


def test_migration_keeps_the_rate_and_moves_the_ve(store: Engine, spool_dir: Path,
                                                   write_sample: Writer):  # fmt: skip
    write_sample("a", 1000, [VeRow("101", cpu_raw=1000)])
    ingest(store, spool_dir)
    write_sample("b", 1300, [VeRow("101", cpu_raw=16_000)])
    ingest(store, spool_dir)
    assert cpu_used(store, "101") == [None, pytest.approx(0.5)]
    assert rows(store, "SELECT node FROM ves")["node"].tolist() == ["b"]
    # A late file from the old node does not move the VE back.
    write_sample("a", 1200, [VeRow("101", cpu_raw=10_000)])
    ingest(store, spool_dir)
    assert rows(store, "SELECT node, last_seen FROM ves").values.tolist() == [["b", 1300.0]]
    assert cpu_used(store, "101")[1] == pytest.approx(0.45)  # 9000 jiffies / 100 Hz / 200 s


def test_ve_appearing_and_disappearing(store: Engine, spool_dir: Path, write_sample: Writer):
    write_sample("n1", 1000, [VeRow("101", cpu_raw=0)])
    write_sample("n1", 1300, [VeRow("102", cpu_raw=0)])  # 101 gone, 102 new
    write_sample("n1", 1600, [VeRow("101", cpu_raw=60_000), VeRow("102", cpu_raw=3000)])
    ingest(store, spool_dir)
    assert cpu_used(store, "101") == [None, pytest.approx(1.0)]  # 600 s gap, still a rate
    assert cpu_used(store, "102") == [None, pytest.approx(0.1)]
    seen = rows(store, "SELECT ve, first_seen, last_seen FROM ves ORDER BY ve")
    assert seen.values.tolist() == [["101", 1000.0, 1600.0], ["102", 1300.0, 1600.0]]


def test_big_counters_are_exact(store: Engine, spool_dir: Path, write_sample: Writer):
    big = 2**63 - 1
    write_sample("n1", 1000, [VeRow("101", cpu_raw=2**62, mem_limit_bytes=big)])
    write_sample("n1", 1300, [VeRow("101", cpu_raw=2**62 + 3000, mem_limit_bytes=big)])
    ingest(store, spool_dir)
    stored = rows(store, "SELECT cpu_raw, mem_limit_bytes FROM ve_samples ORDER BY ts")
    assert stored.values.tolist() == [[2**62, big], [2**62 + 3000, big]]
    assert cpu_used(store, "101") == [None, pytest.approx(0.1)]


def test_symlinks_are_ignored_with_a_warning(store: Engine, spool_dir: Path, tmp_path: Path,
                                             write_sample: Writer):  # fmt: skip
    real = write_sample("n1", 1000, [VeRow("101", cpu_raw=1)])
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "n1-secret.json"
    secret.write_bytes(real.read_bytes().replace(b"1000", b"1300"))
    (real.parent / "n1-link.json").symlink_to(secret)
    (spool_dir / "incoming" / "n9").symlink_to(outside, target_is_directory=True)
    (real.parent / ".n1-tmp.json").write_bytes(b"half")
    result = ingest(store, spool_dir)
    assert (result.files, result.skipped, result.quarantined) == (1, 2, 0)
    assert secret.exists() and (real.parent / "n1-link.json").is_symlink()
    events = rows(store, "SELECT level, kind, message FROM events")
    assert set(events["level"]) == {"warning"} and len(events) == 2
    assert all("symlink ignored" in m for m in events["message"])
    assert (real.parent / ".n1-tmp.json").exists()


def test_progress_and_bad_batch_size(store: Engine, spool_dir: Path, write_sample: Writer):
    for t in range(5):
        write_sample("n1", 1000 + 300 * t)
    seen: list[int] = []
    ingest(store, spool_dir, batch_files=2, progress=seen.append)
    assert seen == [2, 2, 1]
    with pytest.raises(StoreError, match="batch_files"):
        ingest(store, spool_dir, batch_files=0)


def test_empty_or_missing_spool(store: Engine, tmp_path: Path):
    assert ingest(store, tmp_path / "nowhere") == IngestResult()
