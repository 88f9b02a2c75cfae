"""The rebalancing cycle on a real store: spool files -> ingest -> plan -> validate -> execute.

``write_cluster`` and ``write_config`` are shared with the CLI tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from algorithms.base import Move, Plan, Problem
from algorithms.errors import UnknownAlgorithm
from lblog import spool
from lblog.sample import NodeTotals, Sample, VeRow
from lbvm import journal, lease
from lbvm.config import Config, load
from lbvm.cycle import apply_plan, migrate_one, prepare, run_cycle
from lbvm.errors import ExecutorError, NotFound, StaleData
from lbvm.executor import Outcome, Simulate
from lbvm.store.engine import connect
from lbvm.store.events import list_events
from lbvm.store.ingest import ingest
from lbvm.store.queries import sync_nodes
from lbvm.store.schema import runs, ves

GIB = 1 << 30
HZ = 100
STEP = 300.0
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z
PAIRS = {"pair1": ("vz1a", "vz1b"), "pair2": ("vz2a", "vz2b")}
# ve -> (node, cores used, memory): vz1a is crowded, the other nodes idle.
CLUSTER: dict[str, tuple[str, float, int]] = {
    **{str(101 + i): ("vz1a", 1.0, 4 * GIB) for i in range(6)},
    "201": ("vz1b", 0.2, 1 * GIB),
    "301": ("vz2a", 0.2, 1 * GIB),
    "401": ("vz2b", 0.2, 1 * GIB),
}
NODE_CPUS = 8
NODE_MEM = 32 * GIB


def write_cluster(
    spool_dir: Path,
    cluster: dict[str, tuple[str, float, int]] = CLUSTER,
    *,
    rounds: int = 4,
    end: float = NOW,
) -> int:
    """Write ``rounds`` collection runs of every node with lblog.spool; return files written."""
    nodes = [n for pair in PAIRS.values() for n in pair]
    files = 0
    for r in range(rounds):
        t = end - (rounds - 1 - r) * STEP
        for node in nodes:
            mine = [(ve, cpu, mem) for ve, (where, cpu, mem) in cluster.items() if where == node]
            rows = tuple(
                VeRow(ve, cpu_raw=int(cpu * HZ * STEP * (r + 1)), uptime=1000.0 + r * STEP,
                      mem_bytes=mem, mem_limit_bytes=2 * mem, disk_bytes=10 * GIB, failcnt=0)
                for ve, cpu, mem in mine
            )
            used = sum(cpu for _, cpu, _ in mine)
            totals = NodeTotals(
                cpus=NODE_CPUS,
                cpu_busy_raw=int(used * HZ * STEP * (r + 1)),
                cpu_idle_raw=int((NODE_CPUS - used) * HZ * STEP * (r + 1)),
                mem_total_bytes=NODE_MEM,
                mem_available_bytes=NODE_MEM - sum(m for _, _, m in mine),
                load1=used, load5=used, load15=used,
            )
            spool.write(spool_dir, Sample(node, t, "openvz", HZ, HZ, totals, rows))
            files += 1
    return files


def write_config(folder: Path, *, backend: Sequence[str] | None = None) -> Path:
    """An lbvm.toml for the test cluster (simulate backend unless ``backend`` is a template)."""
    lines = ['database = "sqlite:///lbvm.db"', 'spool = "spool"', ""]
    for name, (a, b) in PAIRS.items():
        lines += ["[[pairs]]", f'name = "{name}"', f'nodes = ["{a}", "{b}"]', ""]
    lines += ["[balance]", 'window = "1h"', 'stale_after = "3650d"', "", "[executor]"]
    if backend is None:
        lines += ['backend = "simulate"']
    else:
        args = ", ".join(f'"{a}"' for a in backend)
        lines += ['backend = "command"', f"command = [{args}]", 'timeout = "30s"']
    path = folder / "lbvm.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config(tmp_path: Path) -> Config:
    cfg = load(write_config(tmp_path))
    write_cluster(cfg.spool)
    return cfg


def ingested(config: Config) -> Iterator[Engine]:
    """An engine on ``config``'s store with its spool ingested and its pairs written."""
    engine = connect(config.database)
    ingest(engine, config.spool)
    with engine.begin() as conn:
        sync_nodes(conn, config)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    yield from ingested(config)


def placement(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.ve: r.node for r in conn.execute(sa.select(ves.c.ve, ves.c.node))}


def run_rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(runs).order_by(runs.c.id)).mappings()]


def test_plan_only_executes_nothing(engine: Engine, config: Config) -> None:
    before = placement(engine)
    result = run_cycle(engine, config, execute=False, now=NOW)
    assert result.status == "done" and result.valid and result.results == ()
    assert result.plan.moves, "the crowded node should give the balancer something to do"
    assert result.plan.score_after < result.plan.score_before
    assert result.plan.moves[0].src == "vz1a"
    assert placement(engine) == before
    assert journal.moves_frame(engine).empty
    (run,) = run_rows(engine)
    assert (run["kind"], run["algorithm"], run["status"]) == ("plan", "balance", "done")
    assert run["score_before"] == pytest.approx(result.plan.score_before)


def test_execute_moves_and_journals(engine: Engine, config: Config) -> None:
    result = run_cycle(engine, config, execute=True, now=NOW)
    assert result.status == "done"
    assert [r.state for r in result.results] == ["done"] * len(result.plan.moves)
    now_at = placement(engine)
    for move in result.plan.moves:
        assert now_at[move.ve] == move.dst
    frame = journal.moves_frame(engine, run_id=result.run_id)
    assert list(frame["ve"]) == [m.ve for m in result.plan.moves]
    assert set(frame["state"]) == {"done"}
    (run,) = run_rows(engine)
    assert (run["kind"], run["status"]) == ("rebalance", "done")
    assert run["message"] == f"{len(result.plan.moves)} done of {len(result.plan.moves)} moves"
    assert lease.holder(engine, lease.MOVER) is None, "the mover lease must be released"


def test_refused_plan_executes_nothing(engine: Engine, config: Config) -> None:
    class Reckless:
        name: ClassVar[str] = "reckless"
        summary: ClassVar[str] = "moves everything onto vz2a"

        def plan(self, problem: Problem) -> Plan:
            moves = tuple(
                Move(ve, problem.nodes[int(problem.placement[i])], "vz2a", "migrate")
                for i, ve in enumerate(problem.ves)
                if problem.nodes[int(problem.placement[i])] != "vz2a"
            )
            return Plan(self.name, moves, problem.score(), 0.0)

    before = placement(engine)
    result = run_cycle(engine, config, algorithm=Reckless(), execute=True, now=NOW)
    assert result.status == "refused" and not result.valid
    assert any("vz2a" in r for r in result.reasons)
    assert result.results == ()
    assert placement(engine) == before
    assert journal.moves_frame(engine).empty
    (run,) = run_rows(engine)
    assert (run["algorithm"], run["status"]) == ("reckless", "refused")
    events = list_events(engine)
    assert "plan refused" in events["message"].iloc[0]


def test_errors_close_the_run_as_failed(engine: Engine, config: Config) -> None:
    with pytest.raises(UnknownAlgorithm, match=r"available: .*balance"):
        run_cycle(engine, config, algorithm="no-such", execute=True, now=NOW)
    with pytest.raises(StaleData):
        run_cycle(engine, replace(config, balance=replace(config.balance, stale_after=60.0)),
                  execute=False, now=NOW + 3600)
    assert [(r["status"], r["algorithm"]) for r in run_rows(engine)] == [
        ("failed", "no-such"), ("failed", "balance")]
    assert "unknown algorithm 'no-such'" in str(run_rows(engine)[0]["message"])


def test_a_failed_move_fails_the_run(engine: Engine, config: Config) -> None:
    class Broken(Simulate):
        def run(self, move: Move, argv: Sequence[str]) -> Outcome:
            return Outcome(False, 1, "target refused", tuple(argv))

    result = run_cycle(engine, config, execute=True, backend=Broken(engine), now=NOW)
    assert result.status == "failed"
    states = [r.state for r in result.results]
    assert states[0] == "failed" and set(states[1:]) <= {"skipped"}
    (run,) = run_rows(engine)
    assert run["status"] == "failed"
    assert str(run["message"]).startswith("1 failed")


def test_someone_else_holding_the_lease_blocks_execution(engine: Engine, config: Config) -> None:
    assert lease.acquire(engine, lease.MOVER, "other-host:1", 600)
    with pytest.raises(ExecutorError, match="being moved by other-host:1"):
        run_cycle(engine, config, execute=True, now=NOW)
    assert journal.moves_frame(engine).empty
    assert run_rows(engine)[0]["status"] == "failed"


def test_moves_left_running_become_unknown(engine: Engine, config: Config) -> None:
    (old,) = journal.record_plan(engine, None, (Move("201", "vz1b", "vz2b", "migrate"),), "x")
    journal.mark_running(engine, old, ["x"])
    run_cycle(engine, config, execute=True, now=NOW)
    assert journal.get_move(engine, old).state == "unknown"
    assert journal.running_moves(engine) == []


def test_two_step_cycle_lets_a_caller_decline(engine: Engine, config: Config) -> None:
    prepared = prepare(engine, config, kind="rebalance", now=NOW)
    assert prepared.plan.moves and not prepared.reasons
    assert run_rows(engine)[0]["status"] == "running"
    result = apply_plan(engine, config, prepared, execute=False)
    assert result.status == "done" and journal.moves_frame(engine).empty
    assert str(run_rows(engine)[0]["message"]).endswith("planned, not executed")


def test_migrate_one(engine: Engine, config: Config) -> None:
    result = migrate_one(engine, config, "201", "vz1a", execute=True, now=NOW)
    assert result.status == "done"
    (move,) = result.plan.moves
    assert (move.src, move.dst, move.kind) == ("vz1b", "vz1a", "switchover")
    assert move.bytes == 1 * GIB
    assert placement(engine)["201"] == "vz1a"
    cross = migrate_one(engine, config, "301", "vz1b", execute=False, now=NOW)
    assert cross.plan.moves[0].kind == "migrate"
    assert cross.plan.moves[0].bytes == 11 * GIB
    assert placement(engine)["301"] == "vz2a"


def test_migrate_refusals(engine: Engine, config: Config) -> None:
    same = migrate_one(engine, config, "101", "vz1a", execute=True, now=NOW)
    assert same.status == "refused" and same.reasons[0] == "VE 101 is already on vz1a"
    with pytest.raises(NotFound, match="VE 'nope'"):
        migrate_one(engine, config, "nope", "vz1b", execute=True, now=NOW)
    with pytest.raises(NotFound, match="node 'vz9z'"):
        migrate_one(engine, config, "101", "vz9z", execute=True, now=NOW)
    assert [r["status"] for r in run_rows(engine)] == ["refused", "failed", "failed"]
    assert placement(engine)["101"] == "vz1a"


def test_migrate_over_capacity_is_refused_by_the_validator(tmp_path: Path) -> None:
    cfg = load(write_config(tmp_path))
    # vz2b at 29 of 32 GiB: one more 4 GiB VE breaks max_utilisation and pair2's failover.
    crowded = dict(CLUSTER, **{str(501 + i): ("vz2b", 0.1, 7 * GIB) for i in range(4)})
    write_cluster(cfg.spool, crowded)
    engine = connect(cfg.database)
    try:
        ingest(engine, cfg.spool)
        result = migrate_one(engine, cfg, "101", "vz2b", execute=True, now=NOW)
        assert result.status == "refused"
        assert any("vz2b" in r for r in result.reasons)
        assert placement(engine)["101"] == "vz1a"
        assert journal.moves_frame(engine).empty
    finally:
        engine.dispose()


def test_problem_matches_the_written_cluster(engine: Engine, config: Config) -> None:
    prepared = prepare(engine, config, now=NOW)
    p = prepared.problem
    assert p.nodes == ("vz1a", "vz1b", "vz2a", "vz2b")
    assert set(p.ves) == set(CLUSTER)
    cpu = dict(zip(p.ves, p.demand[:, 0], strict=True))
    assert cpu["101"] == pytest.approx(1.0, rel=0.01)
    assert np.all(p.pair == np.array([0, 0, 1, 1]))
