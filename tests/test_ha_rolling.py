"""Rolling upgrades through fake ssh: node by node, refused on a degraded pair, stopped at
a node that does not come back, resumed where it stopped; and maintenance refusals."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from conftest import make_sample
from sqlalchemy import Engine
from test_ha_state import (
    NODES,
    config,
    engine,
    healthy,
    load_ha_into,
    members,
    report,
    write_ha,
)

from algorithms.base import Problem
from lblog import spool
from lblog.ha.report import with_ha
from lbm.cli import main
from lbvm import hastate
from lbvm.config import Config
from lbvm.executor import Simulate
from lbvm.model import build_problem
from lbvm.rolling import Rolling, RollingError, RollingSettings
from lbvm.store.schema import rolling, ves

__all__ = ["config", "engine"]  # pytest fixtures shared with test_ha_state
BIN = Path(__file__).resolve().parent / "bin"
UPGRADE = ["sh", "-c", 'echo "$FAKE_NODE" >> "$FAKE_VZ/upgraded"']


@pytest.fixture
def vz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    state = tmp_path / "vz"
    state.mkdir()
    tools = tmp_path / "bin"
    tools.mkdir()
    os.symlink(BIN / "fake-ssh", tools / "ssh")
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_VZ", str(state))
    return state


def upgraded(vz: Path) -> list[str]:
    path = vz / "upgraded"
    return path.read_text().split() if path.exists() else []


def placement(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.ve: r.node for r in conn.execute(sa.select(ves.c.ve, ves.c.node))}


def comes_back(config: Config, engine: Engine, vz: Path, *, never: str = "") -> Callable[[], None]:
    """The ingest step: the node last upgraded reports again (unless it is ``never``)."""

    def ingest() -> None:
        done = upgraded(vz)
        if done and done[-1] != never:
            node = done[-1]
            spool.write(config.spool, with_ha(make_sample(node, time.time()), report(node)))
        load_ha_into(engine, config.spool)

    return ingest


def roll(config: Config, engine: Engine, ingest: Callable[[], None],
         clock: list[float] | None = None) -> Rolling:
    def problems() -> Problem:
        return hastate.apply(build_problem(engine, config), engine, config)

    ticks = clock if clock is not None else [time.time()]

    def sleep(seconds: float) -> None:
        ticks[0] += seconds

    return Rolling(engine, config, UPGRADE, Simulate(engine), problems, ingest,
                   settings=RollingSettings(command_timeout=10, wait_timeout=600,
                                            poll_every=30, ssh=("ssh",)),
                   clock=lambda: max(ticks[0], time.time()), sleep=sleep)


@pytest.fixture
def cluster(config: Config, engine: Engine) -> dict[str, str]:
    now = time.time()
    write_ha(config.spool, healthy(now), now - 5)
    load_ha_into(engine, config.spool)
    return placement(engine)


@pytest.mark.slow
def test_rolling_upgrade_goes_node_by_node_and_brings_ves_home(
        config: Config, engine: Engine, vz: Path, cluster: dict[str, str]) -> None:
    run_id = roll(config, engine, comes_back(config, engine, vz)).run()
    assert upgraded(vz) == NODES
    assert placement(engine) == cluster
    with engine.connect() as conn:
        states = conn.execute(sa.select(rolling.c.node, rolling.c.state)
                              .where(rolling.c.run_id == run_id)).all()
    assert [tuple(s) for s in states] == [(n, "done") for n in NODES]


def test_refused_while_a_pair_is_degraded(config: Config, engine: Engine, vz: Path,
                                          cluster: dict[str, str]) -> None:
    write_ha(config.spool, {"vz2a": report("vz2a", nodes=members(vz2b={"unclean": True}))},
             time.time())
    load_ha_into(engine, config.spool)
    with pytest.raises(RollingError, match=r"refusing to start: degraded pair.*vz2b unclean"):
        roll(config, engine, comes_back(config, engine, vz)).run()
    assert upgraded(vz) == [] and placement(engine) == cluster


@pytest.mark.slow
def test_a_node_that_does_not_come_back_stops_the_run_and_resume_continues(
        config: Config, engine: Engine, vz: Path, cluster: dict[str, str]) -> None:
    with pytest.raises(RollingError, match="vz1a did not come back healthy within 600 s"):
        roll(config, engine, comes_back(config, engine, vz, never="vz1a")).run()
    assert upgraded(vz) == ["vz1a"]  # nothing went past vz1a
    on_vz1a = [ve for ve, node in cluster.items() if node == "vz1a"]
    assert all(placement(engine)[ve] == "vz1b" for ve in on_vz1a)  # on the healthy partner
    roll(config, engine, comes_back(config, engine, vz)).run()  # resumes
    assert upgraded(vz) == NODES  # the command did not run twice on vz1a
    assert placement(engine) == cluster


def test_dry_run_prints_the_sequence(config: Config, engine: Engine, vz: Path,
                                     cluster: dict[str, str]) -> None:
    assert config.path is not None
    result = CliRunner().invoke(main, ["--config", str(config.path), "maintenance", "rolling",
                                       "--command", json.dumps(UPGRADE), "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("1. vz1a: drain (101→vz1b (switchover)")
    assert lines[1].startswith('   run ["sh", "-c", ') and len(lines) == 16
    assert upgraded(vz) == []


def test_maintenance_is_refused_when_the_partner_is_not_healthy(
        config: Config, engine: Engine, cluster: dict[str, str]) -> None:
    write_ha(config.spool, {n: report(n, nodes=members(vz1b={"standby": True}))
                            for n in ("vz1a", "vz1b")}, time.time())
    load_ha_into(engine, config.spool)
    assert config.path is not None
    cli = ["--config", str(config.path), "maintenance"]
    refused = CliRunner().invoke(main, [*cli, "vz1a", "on", "--yes"])
    assert refused.exit_code == 1
    assert "maintenance of vz1a refused: its pair is not healthy: node vz1b standby" in (
        refused.output)
    dry = CliRunner().invoke(main, [*cli, "vz1b", "on", "--dry-run"])  # its own standby
    assert dry.exit_code == 0, dry.output
