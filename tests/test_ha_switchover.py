"""The live switchover backend against fake vzctl, crm_resource, drbdadm and ssh that
change their answers during the test: every step journalled, rollbacks run, no VE left
suspended."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from algorithms.base import Move, Plan
from lbvm.executor import execute
from lbvm.store.engine import connect
from lbvm.store.events import list_events
from lbvm.switchover import LiveSwitchover, SwitchoverSettings, steps_frame

BIN = Path(__file__).resolve().parent / "bin"
HEALTHY = "r101 role:Primary\n  disk:UpToDate\n  vz1b role:Secondary\n    peer-disk:UpToDate\n"
SYNCING = ("r101 role:Primary\n  disk:UpToDate\n  vz1b role:Secondary\n"
           "    replication:SyncSource peer-disk:Inconsistent done:42.10\n")
FORWARD = ["check", "suspend", "dump", "recheck", "move", "undump", "resume", "kill"]


@pytest.fixture
def vz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake tools on PATH; VE 101 running on vz1a, its resource vz101 there, DRBD healthy."""
    state = tmp_path / "vz"
    state.mkdir()
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, fake in (("vzctl", "fake-vzctl"), ("crm_resource", "fake-crm_resource"),
                       ("drbdadm", "fake-drbdadm"), ("ssh", "fake-ssh")):
        os.symlink(BIN / fake, tools / name)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VZ", str(state))
    monkeypatch.setenv("FAKE_CLUSTER", str(state))
    (state / "vz1a.101").write_text("running\n")
    (state / "vz101").write_text("vz1a\n")
    (state / "drbd-status").write_text(HEALTHY)
    return state


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")
    from lbvm.store.schema import ha_ves, ves

    with engine.begin() as conn:
        conn.execute(ves.insert().values(ve="101", node="vz1a", balanced=True, pinned=False))
        conn.execute(ha_ves.insert().values(reporter="vz1a", ve="101", drbd="r101",
                                            cluster="vz101", source="map"))
    yield engine
    engine.dispose()


def backend(engine: Engine, tmp_path: Path) -> LiveSwitchover:
    dump = tmp_path / "dump"
    dump.mkdir(exist_ok=True)
    return LiveSwitchover(SwitchoverSettings(dumpdir=str(dump), ssh=("ssh", "-o", "x=y"),
                                             step_timeout=10), engine)


def switch(engine: Engine, tmp_path: Path) -> tuple[str, list[str]]:
    plan = Plan("manual", (Move("101", "vz1a", "vz1b", "switchover"),), 0.0, 0.0)
    [result] = execute(engine, plan, backend(engine, tmp_path), run_id=None)
    steps = steps_frame(engine, move_ids=[result.move_id])
    return result.state, list(steps["step"])


def where(vz: Path) -> dict[str, str]:
    """Where VE 101 is, and in which state: {"<node>.101": state}."""
    return {p.name: p.read_text().strip() for p in vz.glob("vz1*.101")}


def test_switchover_moves_the_ve_and_journals_every_step(vz: Path, engine: Engine,
                                                           tmp_path: Path) -> None:
    state, steps = switch(engine, tmp_path)
    assert state == "done" and steps == FORWARD
    assert where(vz) == {"vz1b.101": "running"} and (vz / "vz101").read_text() == "vz1b\n"
    frame = steps_frame(engine, ve="101")
    assert list(frame["exit_code"]) == [0] * len(FORWARD)
    assert json.loads(frame["argv"][1]) == ["ssh", "-o", "x=y", "vz1a",
                                            "vzctl chkpnt 101 --suspend"]
    assert json.loads(frame["argv"][5])[3:5] == ["vz1b", f"vzctl restore 101 --undump "
                                                 f"--dumpfile {tmp_path}/dump/dump.101"]
    logged = list_events(engine, kind="switchover")
    assert len(logged) == len(FORWARD) and "resume on vz1b" in " ".join(logged["message"])


def test_a_failed_checkpoint_resumes_the_ve_on_its_source(vz: Path, engine: Engine,
                                                            tmp_path: Path) -> None:
    (vz / "fail.chkpnt-dump").touch()
    state, steps = switch(engine, tmp_path)
    assert state == "failed" and steps == ["check", "suspend", "dump", "rollback_resume"]
    assert where(vz) == {"vz1a.101": "running"} and (vz / "vz101").read_text() == "vz1a\n"


def test_a_partner_going_inconsistent_mid_way_stops_before_the_move(
        vz: Path, engine: Engine, tmp_path: Path) -> None:
    (vz / "after.chkpnt-dump").write_text(SYNCING)
    state, steps = switch(engine, tmp_path)
    assert state == "failed" and steps == ["check", "suspend", "dump", "recheck",
                                           "rollback_resume"]
    assert where(vz) == {"vz1a.101": "running"} and (vz / "vz101").read_text() == "vz1a\n"
    out = steps_frame(engine, ve="101").set_index("step").loc["recheck", "output"]
    assert "DRBD r101 is Connected SyncSource 42.1% UpToDate/Inconsistent" in str(out)


def test_a_failed_restore_is_rolled_back_on_both_nodes(vz: Path, engine: Engine,
                                                       tmp_path: Path) -> None:
    (vz / "fail.restore-resume").touch()
    state, steps = switch(engine, tmp_path)
    assert state == "failed"
    assert steps == [*FORWARD[:7], "rollback_kill", "rollback_move", "rollback_resume"]
    assert where(vz) == {"vz1a.101": "running"} and (vz / "vz101").read_text() == "vz1a\n"


def test_an_unhealthy_mirror_refuses_before_anything_is_suspended(
        vz: Path, engine: Engine, tmp_path: Path) -> None:
    (vz / "drbd-status").write_text(SYNCING)
    state, steps = switch(engine, tmp_path)
    assert (state, steps) == ("failed", ["check"])
    assert where(vz) == {"vz1a.101": "running"}
    assert "vzctl" not in (vz / "calls.log").read_text()


def test_migrate_moves_need_a_fallback(engine: Engine, tmp_path: Path) -> None:
    from lbvm.errors import ExecutorError
    from lbvm.executor import Simulate

    move = Move("101", "vz1a", "vz2a", "migrate")
    with pytest.raises(ExecutorError, match="inside a pair only"):
        backend(engine, tmp_path).argv(move)
    both = LiveSwitchover(SwitchoverSettings(), engine, fallback=Simulate())
    assert both.argv(move) == ["simulate", "101", "vz1a", "vz2a"]
