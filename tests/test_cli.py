"""`lbm` through click's CliRunner: every command, every output format, the exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from test_cycle import CLUSTER, GIB, write_cluster, write_config

from algorithms import registry
from lbm.cli import COMMANDS, SUMMARIES, main
from lbm.output import render
from lbvm import journal
from lbvm.config import load
from lbvm.store.engine import connect

BIN = Path(__file__).resolve().parent / "bin"
FORMATS = ("table", "json", "csv")
LISTINGS = (["list"], ["nodes"], ["pairs"], ["algorithms"], ["log"], ["ingest"])


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """A config for the 2-pair test cluster with recent spool files waiting to be ingested."""
    path = write_config(tmp_path)
    write_cluster(tmp_path / "spool", end=_now())
    return path


def _now() -> float:
    import time

    return time.time()


def lbm(cfg: Path | None, *args: str, input: str | None = None) -> Result:
    argv = (["--config", str(cfg)] if cfg is not None else []) + list(args)
    return CliRunner().invoke(main, argv, input=input, catch_exceptions=False)


def ok(cfg: Path | None, *args: str, input: str | None = None) -> str:
    result = lbm(cfg, *args, input=input)
    assert result.exit_code == 0, result.output
    return result.output


def placement(cfg: Path) -> dict[str, str]:
    return {r["ve"]: r["node"] for r in json.loads(ok(cfg, "list", "--format", "json"))}


def run_statuses(cfg: Path) -> list[str]:
    engine = connect(load(cfg).database)
    try:
        return list(journal.runs_frame(engine)["status"])
    finally:
        engine.dispose()


# -- meta ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert command.help and "Example: lbm " in command.help, f"{name} help lacks an example"
    assert SUMMARIES[name] == command.get_short_help_str(limit=200)
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0 and "Example:" in result.output


def test_every_command_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    for name in COMMANDS:
        assert f"`lbm {name}" in doc, f"docs/cli.md does not describe lbm {name}"


@pytest.mark.slow
def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys\nfrom lbm.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('pandas', 'numpy', 'sqlalchemy') if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stderr == "[]"
    assert "rebalance" in done.stdout


# -- listings in every format ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("args", LISTINGS, ids=lambda a: a[0])
def test_listing_formats(cfg: Path, args: list[str], fmt: str) -> None:
    if args != ["ingest"]:
        ok(cfg, "ingest")
    if args == ["log"]:
        ok(cfg, "rebalance", "--yes")
    out = ok(cfg, *args, "--format", fmt)
    if fmt == "json":
        rows = json.loads(out)
        assert isinstance(rows, list) and rows and isinstance(rows[0], dict)
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and None not in rows[0]
    else:
        header = out.splitlines()[0].replace("(cores)", "")
        assert header == header.upper() and "  " in header and len(out.splitlines()) > 1


def test_list_json_is_raw_and_filters_work(cfg: Path) -> None:
    ok(cfg, "ingest")
    rows = json.loads(ok(cfg, "list", "--format", "json"))
    assert sorted(r["ve"] for r in rows) == sorted(CLUSTER)
    first = next(r for r in rows if r["ve"] == "101")
    assert first["mem_bytes"] == 4 * GIB and first["node"] == "vz1a" and first["pair"] == "pair1"
    assert first["pinned"] is False
    assert first["last_seen"].endswith("Z") and "T" in first["last_seen"]
    assert first["cpu_p95"] == pytest.approx(1.0, rel=0.01)
    on_b = json.loads(ok(cfg, "list", "--node", "vz1b", "--format", "json"))
    assert [r["ve"] for r in on_b] == ["201"]
    in_pair2 = json.loads(ok(cfg, "list", "--pair", "pair2", "--format", "json"))
    assert sorted(r["ve"] for r in in_pair2) == ["301", "401"]
    assert json.loads(ok(cfg, "list", "--pinned", "--format", "json")) == []
    by_cpu = json.loads(ok(cfg, "list", "--sort", "-cpu_p95", "--format", "json"))
    assert by_cpu[0]["node"] == "vz1a" and by_cpu[-1]["cpu_p95"] < 0.5


def test_table_uses_human_units(cfg: Path) -> None:
    ok(cfg, "ingest")
    table = ok(cfg, "nodes")
    assert "32.0 GiB" in table and "75.0%" in table
    assert "CPUS (cores)" in table.splitlines()[0]
    pairs = json.loads(ok(cfg, "pairs", "--format", "json"))
    assert [(p["pair"], p["nodes"], p["failover"]) for p in pairs] == [
        ("pair1", "vz1a,vz1b", True), ("pair2", "vz2a,vz2b", True)]
    assert pairs[0]["mem_headroom"] == pytest.approx(7 * GIB, rel=0.01)


def test_renderer_handles_missing_values_and_units() -> None:
    rows: list[dict[str, object]] = [
        {"ve": "a", "mem_bytes": 1536 * 1024**2, "cpu_util": 0.5, "ts": 0.0, "pinned": True},
        {"ve": "b", "mem_bytes": None, "cpu_util": float("nan"), "ts": None, "pinned": False},
    ]
    table = render(rows, "table").splitlines()
    assert table[1].split() == ["a", "1.5", "GiB", "50.0%", "1970-01-01", "00:00:00Z", "yes"]
    assert table[2].split() == ["b", "-", "-", "-", "no"]
    assert json.loads(render(rows, "json"))[1] == {
        "ve": "b", "mem_bytes": None, "cpu_util": None, "ts": None, "pinned": False}
    assert json.loads(render(rows, "json"))[0]["ts"] == "1970-01-01T00:00:00Z"
    assert render(rows, "csv").splitlines() == [
        "ve,mem_bytes,cpu_util,ts,pinned",
        "a,1610612736,0.5,1970-01-01T00:00:00Z,true",
        "b,,,,false",
    ]
    assert render([], "table") == "(none)\n"


# -- the whole path ------------------------------------------------------------------------


def test_end_to_end_ingest_plan_rebalance_list(cfg: Path) -> None:
    summary = json.loads(ok(cfg, "ingest", "--format", "json"))
    assert summary == [{"files": 16, "ve_rows": 36, "node_rows": 16, "quarantined": 0,
                        "already": 0, "duplicates": 0}]
    plan = json.loads(ok(cfg, "plan", "--format", "json"))
    assert set(plan) == {"algorithm", "score_before", "score_after", "moves", "notes", "valid",
                         "problems"}
    assert plan["valid"] and plan["problems"] == [] and plan["algorithm"] == "balance"
    assert plan["score_after"] < plan["score_before"]
    assert plan["moves"] and set(plan["moves"][0]) >= {"ve", "from", "to", "kind", "reason"}
    assert placement(cfg)["101"] == "vz1a", "plan must not move anything"

    done = json.loads(ok(cfg, "rebalance", "--yes", "--format", "json"))
    assert done["status"] == "done"
    assert [m["state"] for m in done["moves"]] == ["done"] * len(plan["moves"])
    assert [(m["ve"], m["to"]) for m in done["moves"]] == [
        (m["ve"], m["to"]) for m in plan["moves"]]
    after = placement(cfg)
    for move in plan["moves"]:
        assert after[move["ve"]] == move["to"]

    log = json.loads(ok(cfg, "log", "--format", "json"))
    assert [e["subject"] for e in log if e["kind"] == "move"] == [m["ve"] for m in plan["moves"]]
    report = ok(cfg, "report")
    assert "imbalance score:" in report and f"Moves: {len(plan['moves'])}" in report
    assert "Quarantined spool files: 0" in report


def test_rebalance_asks_first(cfg: Path) -> None:
    ok(cfg, "ingest")
    before = placement(cfg)
    declined = lbm(cfg, "rebalance", input="n\n")
    assert declined.exit_code == 1
    assert "not confirmed; nothing moved" in declined.output
    assert "Execute" in declined.output and "simulate backend" in declined.output
    assert placement(cfg) == before
    no_input = lbm(cfg, "rebalance")  # cron without --yes: end of input means no
    assert no_input.exit_code == 1 and "nothing moved" in no_input.output
    assert placement(cfg) == before
    assert run_statuses(cfg) == ["done", "done"], "declined runs must not stay 'running'"
    dry = lbm(cfg, "rebalance", "--dry-run")
    assert dry.exit_code == 0 and "plan by balance" in dry.output
    assert placement(cfg) == before
    accepted = lbm(cfg, "rebalance", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert placement(cfg) != before


def test_migrate_validates_and_journals(cfg: Path) -> None:
    ok(cfg, "ingest")
    refused = lbm(cfg, "migrate", "101", "vz1a", "--yes")
    assert refused.exit_code == 1
    assert "problem: VE 101 is already on vz1a" in refused.output
    assert "refused by the validator" in refused.output
    moved = json.loads(ok(cfg, "migrate", "201", "vz2a", "--yes", "--format", "json"))
    assert moved["moves"][0]["kind"] == "migrate" and moved["moves"][0]["state"] == "done"
    assert placement(cfg)["201"] == "vz2a"
    unknown = lbm(cfg, "migrate", "nope", "vz2a", "--yes")
    assert unknown.exit_code == 1 and unknown.output.startswith("Error: VE 'nope'")


def test_migrate_force_overrides_only_should_rules(cfg: Path) -> None:
    text = cfg.read_text()
    cfg.write_text(text + '\n[[rules]]\nname = "201 likes pair1"\nves = ["201"]\n'
                   'pairs = ["pair1"]\nkind = "should"\n'
                   '\n[[rules]]\nname = "301 stays"\nves = ["301"]\npairs = ["pair2"]\n')
    ok(cfg, "ingest")
    against = lbm(cfg, "migrate", "201", "vz2a", "--yes")
    assert against.exit_code == 1 and "refused by the validator" in against.output
    assert placement(cfg)["201"] == "vz1b"
    ok(cfg, "migrate", "201", "vz2a", "--yes", "--force")  # a preference gives way
    assert placement(cfg)["201"] == "vz2a"
    must = lbm(cfg, "migrate", "301", "vz1b", "--yes", "--force")  # a must-rule does not
    assert must.exit_code == 1 and placement(cfg)["301"] == "vz2a"


@pytest.mark.slow
def test_migrate_with_a_command_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "tool.log"
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_TOOL_LOG", str(log))
    good = write_config(tmp_path, backend=["vzmigrate", "--online", "{dst}", "{ve}"])
    write_cluster(tmp_path / "spool", end=_now())
    ok(good, "ingest")
    ok(good, "migrate", "201", "vz1a", "--yes")
    assert log.read_text().splitlines() == ["[--online][vz1a][201]"]
    assert placement(good)["201"] == "vz1a"

    write_config(tmp_path, backend=["vzmigrate-fail", "{dst}", "{ve}"])
    failed = lbm(good, "migrate", "301", "vz1b", "--yes")
    assert failed.exit_code == 1
    assert "the move of VE 301 failed" in failed.output
    assert "no space left on device" in failed.output
    assert placement(good)["301"] == "vz2a"
    entries = json.loads(ok(good, "log", "--format", "json"))
    failed_move = "move 2 failed: vz2a -> vz1b (migrate, command, exit 7)"
    assert entries[-2]["message"] == failed_move


def test_plan_from_a_scenario_needs_no_store(tmp_path: Path) -> None:
    scenario = {
        "name": "two pairs, one hot node",
        "nodes": [{"name": n, "pair": p, "capacity": {"cpu": 8, "mem": "32G"}}
                  for p, n in (("p1", "a1"), ("p1", "b1"), ("p2", "a2"), ("p2", "b2"))],
        "ves": [{"id": f"v{i}", "node": "a1", "demand": {"cpu": 1, "mem": "4G"}}
                for i in range(6)],
    }
    path = tmp_path / "hot.json"
    path.write_text(json.dumps(scenario))
    monkey_cfg = tmp_path / "absent.toml"
    result = lbm(monkey_cfg, "plan", "--scenario", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["valid"] and plan["moves"] and all(m["from"] == "a1" for m in plan["moves"])
    assert not (tmp_path / "lbvm.db").exists()
    csv_out = ok(None, "plan", "--scenario", str(path), "--format", "csv")
    assert csv_out.splitlines()[0] == "ve,from,to,kind,bytes,reason"


# -- errors and config ---------------------------------------------------------------------


def test_errors_are_one_line_with_exit_codes(cfg: Path, tmp_path: Path) -> None:
    ok(cfg, "ingest")
    unknown = lbm(cfg, "plan", "--algorithm", "no-such")
    assert unknown.exit_code == 1
    names = ", ".join(registry.available())
    assert unknown.output == f"Error: unknown algorithm 'no-such' (available: {names})\n"
    assert lbm(cfg, "list", "--format", "xml").exit_code == 2
    assert lbm(cfg, "list", "--sort", "nope").exit_code == 2
    assert lbm(cfg, "log", "--since", "yesterday").exit_code == 2
    assert lbm(cfg, "no-such-command").exit_code == 2
    missing = lbm(tmp_path / "nope.toml", "list")
    assert missing.exit_code == 1 and "no such config file" in missing.output
    bad = tmp_path / "bad.toml"
    bad.write_text("databse = 1\n")
    broken = lbm(bad, "nodes")
    assert broken.exit_code == 1 and "unknown key(s): databse" in broken.output


def test_config_resolution(cfg: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ok(cfg, "ingest")
    monkeypatch.setenv("LBVM_CONFIG", str(cfg))
    assert "vz1a" in ok(None, "nodes")
    monkeypatch.delenv("LBVM_CONFIG")
    monkeypatch.chdir(cfg.parent)
    assert "vz1a" in ok(None, "nodes")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from lbm import cli

    monkeypatch.setattr(cli, "CONFIG_CANDIDATES", (Path("lbvm.toml"),))
    assert cli.resolve_config(None) is None
    assert "balance" in ok(None, "algorithms")
