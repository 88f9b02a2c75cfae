"""The executor: argv templates, real processes with timeouts, and the journal they leave.

The fake tools in tests/bin/ record their argv to $FAKE_TOOL_LOG; they are put first on PATH.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from algorithms.base import Move, Plan
from lbvm import journal
from lbvm.config import Config, ExecutorConfig
from lbvm.errors import ExecutorError
from lbvm.executor import (
    Command,
    Outcome,
    Simulate,
    backend_from_config,
    check_template,
    execute,
)
from lbvm.store.engine import connect
from lbvm.store.schema import events, ves

BIN = Path(__file__).resolve().parent / "bin"
PLAN = Plan(
    "balance",
    (
        Move("101", "vz1a", "vz1b", "switchover", "vz1a is the busiest"),
        Move("102", "vz1a", "vz2a", "migrate", "pair1 cannot fail over"),
        Move("103", "vz2b", "vz1b", "switchover", "even out memory"),
    ),
    0.3,
    0.1,
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")
    with engine.begin() as conn:
        conn.execute(
            sa.insert(ves),
            [{"ve": "101", "node": "vz1a"}, {"ve": "102", "node": "vz1a"},
             {"ve": "103", "node": "vz2b"}],
        )
    yield engine
    engine.dispose()


@pytest.fixture
def tool_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "tool.log"
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def nodes(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.ve: r.node for r in conn.execute(sa.select(ves.c.ve, ves.c.node))}


def event_rows(engine: Engine) -> list[tuple[str, str | None, str]]:
    q = sa.select(events.c.level, events.c.subject, events.c.message).order_by(events.c.id)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(q)]


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie nobody reaped yet).

    A SIGKILLed process takes a moment to die: poll a little before giving up.
    """
    for _ in range(100):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


# -- templates and ids --------------------------------------------------------------------


def test_template_substitutes_each_argument() -> None:
    cmd = Command(["vzmigrate", "--online", "--remove-area=no", "{dst}", "{ve}"], 60, 100)
    move = Move("101", "vz1a", "vz1b", "switchover")
    assert cmd.argv(move) == ["vzmigrate", "--online", "--remove-area=no", "vz1b", "101"]
    pct = Command(["ssh", "root@{src}", "pct", "migrate", "{ve}", "{dst}"], 60, 100)
    assert pct.argv(move) == ["ssh", "root@vz1a", "pct", "migrate", "101", "vz1b"]


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ([], "non-empty list"),
        ([""], "non-empty list"),
        (["vzmigrate", "{host}"], r"unknown placeholder \{host\}"),
        (["vzmigrate", "{ve!r}"], r"unknown placeholder \{ve\}"),
        (["vzmigrate", "{ve:>10}"], r"unknown placeholder \{ve\}"),
        (["vzmigrate", "{0}"], r"unknown placeholder \{0\}"),
        (["vzmigrate", "{ve.__class__}"], "unknown placeholder"),
        (["vzmigrate", "{ve"], "expected '}'"),
    ],
)
def test_bad_templates_are_refused(template: list[str], match: str) -> None:
    with pytest.raises(ExecutorError, match=match):
        check_template(template)


@pytest.mark.parametrize(
    "ve", ["101", "web-a7f3", "ct@vz1a", "a1b2c3d4-0000-1111-2222-333344445555", "vm.example:1"]
)
def test_plain_ve_ids_pass(ve: str) -> None:
    assert Simulate().argv(Move(ve, "vz1a", "node_2.example.org", "migrate"))[1] == ve


@pytest.mark.parametrize(
    ("ve", "src", "dst", "match"),
    [
        ("-rf", "vz1a", "vz1b", "VE id '-rf' is not valid"),
        ("../etc", "vz1a", "vz1b", "is not valid"),
        ("a b", "vz1a", "vz1b", "is not valid"),
        ("", "vz1a", "vz1b", "is not valid"),
        ("x" * 129, "vz1a", "vz1b", "is not valid"),
        ("101", "vz1a", "--ssh=evil", "host name '--ssh=evil'"),
        ("101", "vz1a;reboot", "vz1b", "host name"),
        ("101", "vz1a", "vz1b.", "host name"),
        ("101", "vz1a", "a" * 64, "host name"),
        ("101\n", "vz1a", "vz1b", "is not valid"),
        ("101", "vz1a", "vz1b\n", "host name"),
    ],
)
def test_unsafe_ids_are_refused(ve: str, src: str, dst: str, match: str) -> None:
    move = Move(ve, src, dst, "migrate")
    for backend in (Simulate(), Command(["vzmigrate", "{dst}", "{ve}"], 60, 100)):
        with pytest.raises(ExecutorError, match=match):
            backend.argv(move)


def test_backend_from_config() -> None:
    assert isinstance(backend_from_config(Config()), Simulate)
    cfg = Config(executor=ExecutorConfig("command", ("prlctl", "migrate", "{ve}", "{dst}"), 90, 50))
    cmd = backend_from_config(cfg)
    assert isinstance(cmd, Command)
    assert (cmd.template, cmd.timeout, cmd.output_tail) == (
        ("prlctl", "migrate", "{ve}", "{dst}"), 90.0, 50)
    unknown = r"\[executor\].backend: unknown backend 'ssh'.*vzmigrate"
    with pytest.raises(ExecutorError, match=unknown):
        backend_from_config(Config(executor=ExecutorConfig(backend="ssh")))
    preset = backend_from_config(Config(executor=ExecutorConfig(backend="prlctl")))
    assert preset.name == "prlctl"
    assert preset.argv(Move("101", "vz1a", "vz2a", "migrate"))[-3:] == [
        "migrate", "101", "vz2a"]
    bad = Config(executor=replace(ExecutorConfig(), backend="command", command=("x", "{node}")))
    with pytest.raises(ExecutorError, match="placeholder"):
        backend_from_config(bad)


# -- real processes ----------------------------------------------------------------------


@pytest.mark.slow
def test_command_success_records_argv_and_combined_output(tool_log: Path) -> None:
    cmd = Command(["vzmigrate", "--online", "{dst}", "{ve}"], 30, 4000)
    move = Move("101", "vz1a", "vz1b", "switchover")
    out = cmd.run(move, cmd.argv(move))
    assert out == Outcome(True, 0, out.output, ("vzmigrate", "--online", "vz1b", "101"))
    assert "Starting online migration of CT --online vz1b 101" in out.output
    assert "Migration completed" in out.output
    assert calls(tool_log) == ["[--online][vz1b][101]"]


@pytest.mark.slow
def test_command_failure_and_missing_tool(tool_log: Path) -> None:
    cmd = Command(["vzmigrate-fail", "{dst}", "{ve}"], 30, 4000)
    move = Move("101", "vz1a", "vz1b", "switchover")
    out = cmd.run(move, cmd.argv(move))
    assert (out.ok, out.exit_code) == (False, 7)
    assert out.output.rstrip().endswith("no space left on device")
    missing = Command(["no-such-migrate-tool", "{ve}"], 30, 4000)
    out = missing.run(move, missing.argv(move))
    assert (out.ok, out.exit_code) == (False, 127)
    assert out.output == "no-such-migrate-tool: command not found"


@pytest.mark.slow
def test_output_is_only_the_tail(tool_log: Path) -> None:
    cmd = Command(["vzmigrate-noisy", "{ve}"], 30, 50)
    move = Move("101", "vz1a", "vz1b", "switchover")
    out = cmd.run(move, cmd.argv(move))
    assert out.ok and len(out.output) == 50
    assert out.output.endswith("2998\n2999\n3000\n")


@pytest.mark.slow
@pytest.mark.parametrize("ignore_term", [False, True])
def test_timeout_kills_the_process_group(
    tool_log: Path, monkeypatch: pytest.MonkeyPatch, ignore_term: bool
) -> None:
    monkeypatch.setenv("FAKE_TOOL_IGNORE_TERM", "1" if ignore_term else "0")
    cmd = Command(["vzmigrate-hang", "{dst}", "{ve}"], 0.5, 4000, kill_grace=0.3)
    move = Move("101", "vz1a", "vz1b", "switchover")
    out = cmd.run(move, cmd.argv(move))
    assert (out.ok, out.exit_code) == (False, None)
    assert out.output.startswith("copying memory of CT vz1b 101")
    assert out.output.endswith("timed out after 0.5 s")
    child = int(Path(f"{tool_log}.child").read_text())
    assert gone(child), "the tool's background child survived the timeout"


# -- execute and the journal ---------------------------------------------------------------


@pytest.mark.slow
def test_execute_stops_after_a_failure_and_skips_the_rest(engine: Engine, tool_log: Path) -> None:
    plan = replace(PLAN, moves=(PLAN.moves[0], replace(PLAN.moves[1], ve="fail-102"),
                                PLAN.moves[2]))
    # A backend that sends VEs named fail-* to the failing fake tool.
    cmd = Command(["vzmigrate", "{dst}", "{ve}"], 30, 4000)
    failing = Command(["vzmigrate-fail", "{dst}", "{ve}"], 30, 4000)

    class Routed:
        name = "command"

        def argv(self, move: Move) -> list[str]:
            return (failing if move.ve.startswith("fail") else cmd).argv(move)

        def run(self, move: Move, argv: Sequence[str]) -> Outcome:
            return cmd.run(move, argv)

    run_id = journal.start_run(engine, "rebalance", "balance")
    results = execute(engine, plan, Routed(), run_id=run_id)
    assert [r.state for r in results] == ["done", "failed", "skipped"]
    assert results[2].outcome is None
    assert calls(tool_log) == ["[vz1b][101]", "[vz2a][fail-102]"]

    frame = journal.moves_frame(engine, run_id=run_id)
    assert list(frame["state"]) == ["done", "failed", "skipped"]
    assert list(frame["exit_code"].iloc[:2]) == [0, 7]
    assert json.loads(frame["argv"].iloc[0]) == ["vzmigrate", "vz1b", "101"]
    assert json.loads(frame["argv"].iloc[1]) == ["vzmigrate-fail", "vz2a", "fail-102"]
    assert pd.isna(frame["argv"].iloc[2])
    assert "no space left on device" in frame["output"].iloc[1]
    assert frame["output"].iloc[2] == f"skipped: move {results[1].move_id} of VE fail-102 failed"
    assert frame["started_at"].iloc[:2].notna().all() and frame["finished_at"].notna().all()
    assert nodes(engine) == {"101": "vz1b", "102": "vz1a", "103": "vz2b"}
    levels = [e[0] for e in event_rows(engine)]
    assert levels == ["info", "error", "warning"]
    assert "exit 7" in event_rows(engine)[1][2]


@pytest.mark.slow
def test_execute_records_a_timeout(engine: Engine, tool_log: Path) -> None:
    cmd = Command(["vzmigrate-hang", "{dst}", "{ve}"], 0.3, 4000, kill_grace=0.2)
    results = execute(engine, replace(PLAN, moves=PLAN.moves[:2]), cmd, run_id=None)
    assert [r.state for r in results] == ["failed", "skipped"]
    row = journal.get_move(engine, results[0].move_id)
    assert (row.state, row.exit_code) == ("failed", None)
    assert row.output is not None and row.output.endswith("timed out after 0.3 s")
    assert calls(tool_log) == ["[vz1b][101]"]
    assert nodes(engine)["101"] == "vz1a"


def test_simulate_moves_the_store_only(engine: Engine) -> None:
    run_id = journal.start_run(engine, "demo", "balance")
    results = execute(engine, PLAN, Simulate(engine), run_id=run_id)
    assert [r.state for r in results] == ["done"] * 3
    frame = journal.moves_frame(engine)
    assert [json.loads(a) for a in frame["argv"]] == [
        ["simulate", "101", "vz1a", "vz1b"],
        ["simulate", "102", "vz1a", "vz2a"],
        ["simulate", "103", "vz2b", "vz1b"],
    ]
    assert set(frame["backend"]) == {"simulate"} and set(frame["exit_code"]) == {0}
    assert nodes(engine) == {"101": "vz1b", "102": "vz2a", "103": "vz1b"}
    assert [e[1] for e in event_rows(engine)] == ["101", "102", "103"]


def test_simulate_fails_on_a_stale_placement(engine: Engine) -> None:
    stale = replace(PLAN, moves=(Move("103", "vz1a", "vz2a", "migrate"), PLAN.moves[0]))
    results = execute(engine, stale, Simulate(engine), run_id=None)
    assert [r.state for r in results] == ["failed", "skipped"]
    assert results[0].outcome is not None
    assert results[0].outcome.output == "VE 103 is on vz2b, not on vz1a"
    assert nodes(engine)["101"] == "vz1a"


def test_bad_id_writes_nothing(engine: Engine) -> None:
    bad = replace(PLAN, moves=(*PLAN.moves, Move("--all", "vz1a", "vz1b", "switchover")))
    with pytest.raises(ExecutorError, match="VE id '--all' is not valid"):
        execute(engine, bad, Simulate(engine), run_id=None)
    assert journal.moves_frame(engine).empty
    assert nodes(engine) == {"101": "vz1a", "102": "vz1a", "103": "vz2b"}


def test_interrupted_executor_leaves_unknown_and_skipped(engine: Engine) -> None:
    class Dies(Simulate):
        def run(self, move: Move, argv: Sequence[str]) -> Outcome:
            if move.ve == "102":
                raise KeyboardInterrupt
            return super().run(move, argv)

    with pytest.raises(KeyboardInterrupt):
        execute(engine, PLAN, Dies(engine), run_id=None)
    frame = journal.moves_frame(engine)
    assert list(frame["state"]) == ["done", "unknown", "skipped"]
    assert "KeyboardInterrupt" in frame["output"].iloc[1]
    assert journal.running_moves(engine) == []


def test_empty_plan_does_nothing(engine: Engine) -> None:
    assert execute(engine, replace(PLAN, moves=()), Simulate(engine), run_id=None) == []
    assert journal.moves_frame(engine).empty
