"""The LB monitor: check and nightly runs, automation levels, stale data, leadership,
reconciliation after a crash, hooks; real processes for the two-monitor and SIGKILL cases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from algorithms.base import Move, Problem, Settings
from lblog import spool
from lblog.collect import collect
from lbvm import demo as sim
from lbvm import journal, lease
from lbvm.errors import ConfigError
from lbvm.monitor import KV, MONITOR_LEASE, Monitor, MonitorSettings, alerts, reconcile
from lbvm.store.engine import connect
from lbvm.store.schema import events, moves, plans, runs, spool_files, ves

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "tests" / "bin"


def make_site(root: Path, *, backend: str = "simulate", now: float | None = None,
              ves: int = 12) -> Path:
    """A small cluster (2 pairs, 12 VEs, crowded) collected into a spool; returns the config.
    With 40 VEs the crowded pair cannot fail over."""
    now = time.time() if now is None else now
    cluster = sim.generate(pairs=2, ves=ves, seed=2008)
    work = sim.Workload(cluster, root / "proc")
    for r in range(3):
        t = now - (2 - r) * sim.INTERVAL
        for node, proc in work.step():
            spool.write(root / "spool", collect(proc, node.name, now=t))
    lines = ['database = "sqlite:///lbvm.db"', 'spool = "spool"', ""]
    for p in range(2):
        lines += ["[[pairs]]", f'name = "pair{p + 1}"', f'nodes = ["vz{p + 1}a", "vz{p + 1}b"]', ""]
    lines += ["[balance]", 'window = "1h"', 'stale_after = "1h"', "", "[executor]",
              f'backend = "{backend}"', 'timeout = "30s"', ""]
    cfg = root / "lbvm.toml"
    cfg.write_text("\n".join(lines))
    truth = root / "cluster"
    truth.mkdir()
    for ve in cluster.ves:
        (truth / ve.ve).write_text(ve.node + "\n")
    return cfg


def engine_of(cfg: Path) -> Engine:
    return connect(f"sqlite:///{cfg.parent / 'lbvm.db'}")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_site(tmp_path)


def fake_crm_resource(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: str) -> Path:
    """PATH with `crm_resource` being ``fake`` (from tests/bin), and the fake's truth folder."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "crm_resource").symlink_to(BIN / fake)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster"))
    return bindir


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return fake_crm_resource(tmp_path, monkeypatch, "fake-crm_resource")


def test_check_reports_and_moves_nothing(site: Path) -> None:
    result = Monitor(site).run_once()
    assert result.active and result.status == "done" and result.moved == 0
    assert result.planned > 0  # the generated cluster is crowded: there is work to report
    eng = engine_of(site)
    with eng.connect() as conn:
        assert conn.execute(select(runs.c.kind)).scalars().all() == ["check"]
        assert conn.execute(select(moves)).first() is None
        assert len(conn.execute(select(spool_files)).all()) == 12  # 3 rounds x 4 nodes
    assert lease.holder(eng, MONITOR_LEASE) is None  # released after the run


def test_check_at_automatic_makes_only_the_mandatory_moves(tmp_path: Path) -> None:
    """A pair that cannot fail over is repaired by the next check, not the next night;
    moves that only even the load out wait for the nightly run."""
    site = make_site(tmp_path, ves=40)
    mon = Monitor(site, settings=MonitorSettings(automation="automatic"))
    result = mon.run_once()
    assert result.active and result.moved > 0
    assert result.held > 0  # the optional moves wait for the night
    eng = engine_of(site)
    frame = journal.moves_frame(eng)
    assert set(frame["state"]) == {"done"}
    assert frame["reason"].str.contains("fail over|over max_utilisation").all()
    with eng.connect() as conn:
        assert conn.execute(select(plans)).first() is None  # the check stores no plan
    again = mon.run_once()  # repaired: nothing mandatory is left
    assert again.moved == 0


def test_nightly_at_report_level_does_not_move(site: Path) -> None:
    result = Monitor(site).run_once(nightly=True)
    assert result.status == "done" and result.moved == 0
    with engine_of(site).connect() as conn:
        assert conn.execute(select(moves)).first() is None


def test_nightly_execute_moves_on_simulate(site: Path) -> None:
    result = Monitor(site, settings=MonitorSettings(automation="automatic")).run_once(nightly=True)
    assert result.status == "done" and result.moved == result.planned > 0
    frame = journal.moves_frame(engine_of(site))
    assert set(frame["state"]) == {"done"}
    with engine_of(site).connect() as conn:
        where = dict(conn.execute(select(ves.c.ve, ves.c.node)).all())
    assert all(where[r.ve] == r.dst for r in frame.itertuples())


def test_nightly_recommend_stores_the_plan(site: Path) -> None:
    mon = Monitor(site, settings=MonitorSettings(automation="recommend"))
    result = mon.run_once(nightly=True)
    assert result.moved == 0
    with engine_of(site).connect() as conn:
        (row,) = conn.execute(select(plans)).all()
    stored = len(json.loads(row.moves))
    assert row.state == "open" and stored > 0
    assert stored + result.held == result.planned  # below the threshold: held, not stored
    mon.run_once(nightly=True)
    with engine_of(site).connect() as conn:
        states = conn.execute(select(plans.c.state).order_by(plans.c.id)).scalars().all()
    assert states == ["superseded", "open"]


def test_stale_data_is_refused_and_recorded(site: Path) -> None:
    later = time.time() + 7200  # two hours after the last sample; stale_after is 1h
    mon = Monitor(site, settings=MonitorSettings(automation="automatic"), clock=lambda: later)
    result = mon.run_once(nightly=True)
    assert result.status == "stale" and "old" in result.message
    with engine_of(site).connect() as conn:
        kinds = conn.execute(select(events.c.kind).where(events.c.kind == "stale")).all()
        assert conn.execute(select(moves)).first() is None
    assert len(kinds) == 1


def test_second_monitor_stays_passive(site: Path) -> None:
    eng = engine_of(site)
    assert lease.acquire(eng, MONITOR_LEASE, "other-host.example.org:1", 600)
    result = Monitor(site).run_once()
    assert not result.active and result.status == "passive"
    assert "other-host" in result.message
    with eng.connect() as conn:
        assert conn.execute(select(spool_files)).first() is None  # not even ingested


def test_hooks_hear_hotspots_and_moves(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook_log = tmp_path / "hook.log"
    monkeypatch.setenv("FAKE_HOOK_LOG", str(hook_log))
    settings = MonitorSettings(automation="automatic", hook=(str(BIN / "fake-hook"),))
    result = Monitor(site, settings=settings).run_once(nightly=True)
    got = [json.loads(line) for line in hook_log.read_text().splitlines() if line.strip()]
    kinds = [g["event"] for g in got]
    assert kinds == ["move_done"] * result.moved and result.moved > 0
    assert all(g["dst"] and g["move_id"] for g in got)


def test_alerts_name_hot_nodes_and_broken_pairs() -> None:
    settings = Settings(max_utilisation=np.array([0.9, 0.9]),
                        failover_overcommit=np.array([1.0, 1.0]), weights=np.ones(2))
    problem = Problem(
        ves=("a", "b", "c"), nodes=("n1", "n2", "n3", "n4"), resources=("cpu", "mem"),
        demand=np.array([[7.5, 1.0], [2.0, 1.0], [1.0, 1.0]]),
        capacity=np.full((4, 2), 8.0), placement=np.array([0, 1, 2]),
        pair=np.array([0, 0, 1, 1]), movable=np.ones(3, bool), allowed=np.ones((3, 4), bool),
        move_cost=np.zeros((3, 2)), settings=settings,
    )  # fmt: skip
    got = alerts(problem)
    assert got[0] == {"event": "hotspot", "node": "n1", "resource": "cpu",
                      "utilisation": 0.9375, "limit": 0.9}
    assert got[1] == {"event": "failover_broken", "nodes": ["n1", "n2"], "resource": "cpu",
                      "short_by": 1.5}
    assert len(got) == 2


def _journal_running(eng: Engine, ve: str, src: str, dst: str) -> int:
    (move_id,) = journal.record_plan(eng, None, [Move(ve, src, dst, "migrate")], "test")
    journal.mark_running(eng, move_id, ["test"])
    return move_id


def test_reconcile_simulate_reads_the_store(site: Path) -> None:
    mon = Monitor(site)
    mon.run_once()  # ingest: the store knows every VE's node
    eng = mon.engine
    with eng.connect() as conn:
        where = dict(conn.execute(select(ves.c.ve, ves.c.node)).all())
    a, b = sorted(where)[:2]
    done = _journal_running(eng, a, "vz9a", where[a])  # the store already has it on dst
    failed = _journal_running(eng, b, where[b], "vz9b")  # still on src
    found = {r.move_id: r.state for r in reconcile(eng, mon.config)}
    assert found == {done: "done", failed: "failed"}
    assert str(journal.get_move(eng, done).output).startswith("reconciled after a restart")


def test_reconcile_with_a_location_query(tmp_path: Path) -> None:
    cfg = make_site(tmp_path, backend="crm_resource")
    mon = Monitor(cfg, runner=lambda argv, timeout: (0, "resource 101 is running on: vz2b\n"))
    mon.run_once()
    eng = mon.engine
    other = _journal_running(eng, "101", "vz1a", "vz1b")  # found on neither end
    (got,) = mon.reconcile()
    assert (got.move_id, got.state, got.found) == (other, "unknown", "vz2b")
    with eng.connect() as conn:
        assert conn.execute(select(ves.c.node).where(ves.c.ve == "101")).scalar() == "vz2b"


def test_reconcile_waits_for_a_live_mover(site: Path) -> None:
    mon = Monitor(site)
    mon.run_once()
    _journal_running(mon.engine, "101", "vz1a", "vz1b")
    assert lease.acquire(mon.engine, lease.MOVER, "other-host.example.org:7", 600)
    assert mon.reconcile() == ()  # someone is moving VEs right now: their rows, not ours
    assert len(journal.running_moves(mon.engine)) == 1


def test_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="automation"):
        MonitorSettings(automation="yolo")
    with pytest.raises(ConfigError, match="HH:MM"):
        MonitorSettings(nightly_at="25:00")
    with pytest.raises(ConfigError, match="check_every"):
        MonitorSettings(check_every=0)
    assert MonitorSettings(nightly_at="3:05").nightly_time == (3, 5)


def test_reload_reads_the_config_again_and_keeps_it_when_bad(site: Path) -> None:
    mon = Monitor(site)
    assert mon.config.balance.max_moves == 20
    site.write_text(site.read_text().replace('window = "1h"', 'window = "1h"\nmax_moves = 3'))
    mon.reloading.set()
    mon.reload()
    assert mon.config.balance.max_moves == 3 and not mon.reloading.is_set()
    site.write_text("this is [not toml")
    mon.reload()
    assert mon.config.balance.max_moves == 3  # the bad file was refused, the old one kept


def test_log_lines_are_key_value() -> None:
    line = str(KV("moved", ve="101", reason="node vz1a hot", n=3, nodes=["a", "b"]))
    assert line == 'event=moved ve=101 reason="node vz1a hot" n=3 nodes=a,b'


def test_location_is_checked_after_each_move(
    tmp_path: Path, fake_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_site(tmp_path, backend="crm_resource")
    result = Monitor(cfg, settings=MonitorSettings(automation="automatic")).run_once(nightly=True)
    assert result.moved > 0
    truth = {p.name: p.read_text().strip() for p in (tmp_path / "cluster").iterdir()
             if p.name.isdigit()}
    with engine_of(cfg).connect() as conn:
        where = dict(conn.execute(select(ves.c.ve, ves.c.node)).all())
    assert where == truth


# -- real processes ----------------------------------------------------------------------

RUN_ONCE = """
import json, sys
from lbvm.monitor import Monitor, MonitorSettings
s = MonitorSettings(automation="automatic", lease_ttl=float(sys.argv[2]))
r = Monitor(sys.argv[1], settings=s).run_once(nightly=True)
print(json.dumps({"active": r.active, "status": r.status, "moved": r.moved}))
"""

SERVE = """
import logging, sys
from lbvm.monitor import Monitor, MonitorSettings
logging.basicConfig(level=logging.INFO, format="%(message)s")
s = MonitorSettings(check_every=1, lease_ttl=1.5)
m = Monitor(sys.argv[1], settings=s)
m.install_signals()
m.serve()
"""


def _wait_for(what: Callable[[], object], timeout: float = 20.0) -> object:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = what()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


@pytest.mark.slow
def test_two_serving_monitors_one_acts(site: Path, tmp_path: Path) -> None:
    logs = [tmp_path / f"monitor{i}.log" for i in range(2)]
    procs = []
    for path in logs:
        with path.open("w") as err:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen([sys.executable, "-c", SERVE, str(site)], stderr=err))
    eng = engine_of(site)

    def checks() -> int:
        with eng.connect() as conn:
            return len(conn.execute(select(runs).where(runs.c.kind == "check")).all())

    try:
        _wait_for(lambda: all("event=serving" in p.read_text() for p in logs))
        _wait_for(lambda: checks() >= 2)  # the active one checks every second
        for p in procs:
            p.send_signal(signal.SIGHUP)
        seen = checks()
        _wait_for(lambda: checks() > seen)  # reloaded and rescheduled: a check right away
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=30) for p in procs]
    text = [p.read_text() for p in logs]
    assert codes == [0, 0], text
    active = [t.count("event=active ") for t in text]
    assert sorted(active) == [0, 1], text
    assert all("event=reloaded" in t and "event=stopped" in t for t in text), text
    assert lease.holder(eng, MONITOR_LEASE) is None


@pytest.mark.slow
@pytest.mark.parametrize(("hang_first", "state"), [("0", "done"), ("1", "failed")])
def test_sigkill_mid_move_is_reconciled(
    tmp_path: Path, fake_path: Path, monkeypatch: pytest.MonkeyPatch, hang_first: str, state: str
) -> None:
    cfg = make_site(tmp_path, backend="crm_resource")
    monkeypatch.setenv("FAKE_MOVE_SLEEP", "60")
    monkeypatch.setenv("FAKE_HANG_FIRST", hang_first)
    proc = subprocess.Popen([sys.executable, "-c", RUN_ONCE, str(cfg), "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eng = engine_of(cfg)
    pidfile = tmp_path / "cluster" / "move.pid"
    try:
        _wait_for(lambda: journal.running_moves(eng) and pidfile.exists())
        if hang_first == "0":
            _wait_for(lambda: (tmp_path / "cluster" / "moves.log").exists())
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the tool outlives the monitor
    (row,) = journal.running_moves(eng)
    truth = (tmp_path / "cluster" / row.ve).read_text().strip()
    assert truth == (row.dst if state == "done" else row.src)

    monkeypatch.delenv("FAKE_MOVE_SLEEP")
    result = Monitor(cfg).run_once()  # leases of the dead process are broken, not waited for
    assert result.active
    assert [(r.move_id, r.state, r.found) for r in result.reconciled] == [(row.id, state, truth)]
    assert journal.get_move(eng, row.id).state == state
    with eng.connect() as conn:
        assert conn.execute(select(ves.c.node).where(ves.c.ve == row.ve)).scalar() == truth
        killed = conn.execute(select(runs.c.status).where(runs.c.id == row.run_id)).scalar()
    assert killed == "failed"
    later = journal.moves_frame(eng)
    assert not later["state"].isin(["planned", "running"]).any()  # nothing left dangling


@pytest.mark.slow
def test_sigterm_mid_move_finishes_that_move_only(
    tmp_path: Path, fake_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = make_site(tmp_path, backend="crm_resource")
    monkeypatch.setenv("FAKE_MOVE_SLEEP", "1")
    script = RUN_ONCE.replace(
        "r = Monitor(sys.argv[1], settings=s).run_once(nightly=True)",
        "m = Monitor(sys.argv[1], settings=s)\nm.install_signals()\nr = m.run_once(nightly=True)",
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(cfg), "60"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    eng = engine_of(cfg)
    _wait_for(lambda: journal.running_moves(eng))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    frame = journal.moves_frame(eng)
    assert len(frame) > 2  # the plan had more moves than the one in flight
    first = frame.iloc[0]
    assert first["state"] == "done"  # the move in flight ran to its end and was recorded
    assert set(frame["state"].iloc[1:]) == {"skipped"}  # nothing else started
    assert json.loads(out)["moved"] == 1
