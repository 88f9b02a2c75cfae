"""The operator's console through CliRunner: show, flags, maintenance, history, log --follow,
export, and the one-line errors a user can cause."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import pytest
from test_cli import FORMATS, lbm, ok, placement
from test_cycle import write_cluster, write_config

import lbm.commands.log as log_command


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """The 2-pair test cluster with recent samples, ingested."""
    path = write_config(tmp_path)
    write_cluster(tmp_path / "spool", end=time.time())
    ok(path, "ingest")
    return path


# -- show, history: every format ----------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_show_in_every_format(cfg: Path, fmt: str) -> None:
    ok(cfg, "migrate", "201", "vz2a", "--yes")
    out = ok(cfg, "show", "201", "--format", fmt)
    if fmt == "json":
        doc = json.loads(out)
        assert (doc["ve"], doc["node"], doc["pair"], doc["pinned"]) == ("201", "vz2a", "pair2",
                                                                        False)
        assert doc["samples"]["count"] == 4 and doc["samples"]["cpu_p95"] == pytest.approx(0.2)
        assert doc["samples"]["last_at"].endswith("Z")
        assert [(m["src"], m["dst"], m["state"]) for m in doc["moves"]] == [
            ("vz1b", "vz2a", "done")]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [(r["src"], r["dst"], r["kind"]) for r in rows] == [("vz1b", "vz2a", "migrate")]
    else:
        lines = out.splitlines()
        assert lines[0].split() == ["ve", "201"] and "node            vz2a" in out
        assert "Moves: 1" in out and "migrate" in out


@pytest.mark.parametrize("fmt", FORMATS)
def test_history_lists_runs_newest_first_with_moves(cfg: Path, fmt: str) -> None:
    ok(cfg, "plan")
    ok(cfg, "migrate", "201", "vz2a", "--yes")
    out = ok(cfg, "history", "--format", fmt)
    if fmt == "json":
        runs = json.loads(out)
        assert [r["kind"] for r in runs] == ["migrate", "plan"]
        assert runs[0]["moves"] == 1 and runs[0]["done"] == 1
        assert runs[0]["moves_detail"][0]["ve"] == "201" and runs[1]["moves_detail"] == []
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert [r["kind"] for r in rows] == ["migrate", "plan"] and rows[0]["done"] == "1"
    else:
        assert out.index("run 2 migrate") < out.index("run 1 plan")
        assert "201  vz1b  vz2a  migrate" in out


# -- list filters ---------------------------------------------------------------------------


def test_list_pair_comes_from_the_config_and_state_filters(cfg: Path) -> None:
    rows = json.loads(ok(cfg, "list", "--format", "json"))
    assert {r["ve"]: r["pair"] for r in rows}["301"] == "pair2"
    ok(cfg, "pin", "101")
    ok(cfg, "remove", "102")
    pinned = json.loads(ok(cfg, "list", "--state", "pinned", "--format", "json"))
    assert [r["ve"] for r in pinned] == ["101"]
    excluded = json.loads(ok(cfg, "list", "--state", "excluded", "--format", "json"))
    assert [r["ve"] for r in excluded] == ["102"]
    balanced = json.loads(ok(cfg, "list", "--state", "balanced", "--format", "json"))
    assert {"101", "102"}.isdisjoint(r["ve"] for r in balanced) and len(balanced) == 7
    assert json.loads(ok(cfg, "list", "--state", "unseen", "--format", "json")) == []


# -- flags ----------------------------------------------------------------------------------


def test_pin_unpin_add_remove_change_what_may_move(cfg: Path) -> None:
    assert ok(cfg, "pin", "101") == "VE 101 is pinned\n"
    refused = lbm(cfg, "migrate", "101", "vz1b", "--yes")
    assert refused.exit_code == 1 and "101 is pinned" in refused.output
    forced = lbm(cfg, "migrate", "101", "vz1b", "--yes", "--force")
    assert forced.exit_code == 1 and "101 is pinned" in forced.output, "pins are must-rules"
    ok(cfg, "unpin", "101")
    ok(cfg, "remove", "101")
    assert json.loads(ok(cfg, "show", "101", "--format", "json"))["balanced"] is False
    ok(cfg, "add", "101")
    assert json.loads(ok(cfg, "show", "101", "--format", "json"))["balanced"] is True
    log = json.loads(ok(cfg, "log", "--kind", "operator", "--format", "json"))
    assert [e["message"] for e in log] == [
        "VE 101 is pinned", "VE 101 is unpinned", "VE 101 is out of balancing",
        "VE 101 is under balancing"]


def test_add_an_unseen_ve_needs_a_node(cfg: Path) -> None:
    unknown = lbm(cfg, "add", "999")
    assert unknown.exit_code == 1
    assert unknown.output == ("Error: unknown VE '999': the store has never seen it (give "
                              "--node NODE to register it)\n")
    stray = lbm(cfg, "add", "999", "--node", "vz9z")
    assert stray.exit_code == 1
    assert stray.output == "Error: node 'vz9z' is not a node of a configured pair\n"
    assert ok(cfg, "add", "999", "--node", "vz2b") == (
        "VE 999 registered on vz2b and under balancing\n")
    assert placement(cfg)["999"] == "vz2b"


def test_migrate_dry_run_shows_the_plan_and_moves_nothing(cfg: Path) -> None:
    doc = json.loads(ok(cfg, "migrate", "201", "vz2a", "--dry-run", "--format", "json"))
    assert doc["valid"] and doc["moves"][0]["kind"] == "migrate" and "state" not in doc["moves"][0]
    assert placement(cfg)["201"] == "vz1b"


# -- maintenance ----------------------------------------------------------------------------


def test_maintenance_drains_and_returns(cfg: Path) -> None:
    before = placement(cfg)
    dry = json.loads(ok(cfg, "maintenance", "vz1a", "on", "--dry-run", "--format", "json"))
    assert dry["valid"] and {m["ve"] for m in dry["moves"]} == {str(101 + i) for i in range(6)}
    assert placement(cfg) == before
    done = json.loads(ok(cfg, "maintenance", "vz1a", "on", "--yes", "--format", "json"))
    assert [m["state"] for m in done["moves"]] == ["done"] * 6
    assert all(m["reason"].startswith("maintenance drain of vz1a") for m in done["moves"])
    after = placement(cfg)
    assert "vz1a" not in after.values()
    assert {after[str(101 + i)] for i in range(6)} <= {"vz1b", "vz2a", "vz2b"}
    nodes = {r["node"]: r["maintenance"] for r in json.loads(ok(cfg, "nodes", "--format",
                                                                 "json"))}
    assert nodes["vz1a"] is True and nodes["vz1b"] is False
    refused = lbm(cfg, "migrate", "201", "vz1a", "--yes")
    assert refused.exit_code == 1 and "vz1a is in maintenance" in refused.output

    back = json.loads(ok(cfg, "maintenance", "vz1a", "off", "--return", "--yes", "--format",
                         "json"))
    assert {m["ve"] for m in back["moves"]} == {str(101 + i) for i in range(6)}
    assert placement(cfg) == before
    nodes = {r["node"]: r["maintenance"] for r in json.loads(ok(cfg, "nodes", "--format",
                                                                 "json"))}
    assert nodes["vz1a"] is False
    kinds = [r["kind"] for r in json.loads(ok(cfg, "history", "--format", "json"))]
    assert kinds == ["maintenance", "migrate", "maintenance", "maintenance"]  # dry run too


def test_maintenance_refuses_when_a_ve_must_stay_and_keeps_the_flag(cfg: Path) -> None:
    ok(cfg, "pin", "101")
    before = placement(cfg)
    refused = lbm(cfg, "maintenance", "vz1a", "on", "--yes")
    assert refused.exit_code == 1
    assert "problem: VE 101 stays on vz1a: pinned" in refused.output
    assert refused.output.endswith("Error: the plan was refused; nothing moved\n")
    assert placement(cfg) == before
    nodes = {r["node"]: r["maintenance"] for r in json.loads(ok(cfg, "nodes", "--format",
                                                                 "json"))}
    assert nodes["vz1a"] is False, "a refused drain leaves the flag as it was"
    partial = json.loads(ok(cfg, "maintenance", "vz1a", "on", "--partial", "--yes",
                            "--format", "json"))
    assert len(partial["moves"]) == 5 and placement(cfg)["101"] == "vz1a"


def test_maintenance_asks_first(cfg: Path) -> None:
    before = placement(cfg)
    declined = lbm(cfg, "maintenance", "vz1a", "on", input="n\n")
    assert declined.exit_code == 1 and "not confirmed; nothing moved" in declined.output
    assert placement(cfg) == before


# -- log --follow ---------------------------------------------------------------------------


def test_log_follow_prints_new_entries_once(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ok(cfg, "pin", "101")
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            ok(cfg, "unpin", "101")  # happens while we follow
        elif len(naps) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(log_command.time, "sleep", nap)
    out = ok(cfg, "log", "--follow", "--kind", "operator", "--interval", "1s",
             "--format", "json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [e["message"] for e in lines] == ["VE 101 is pinned", "VE 101 is unpinned"]
    assert naps == [1.0, 1.0, 1.0]


# -- errors a user can cause ----------------------------------------------------------------


def test_unknown_ve_is_one_line(cfg: Path) -> None:
    for args in (["show", "nope"], ["pin", "nope"], ["remove", "nope"]):
        result = lbm(cfg, *args)
        assert result.exit_code == 1 and result.output == "Error: unknown VE 'nope'\n", args


def test_node_in_no_pair_is_one_line(cfg: Path) -> None:
    result = lbm(cfg, "maintenance", "vz9z", "on", "--yes")
    assert result.exit_code == 1
    assert result.output == "Error: node 'vz9z' is not a node of a configured pair\n"
    moved = lbm(cfg, "migrate", "101", "vz9z", "--yes")
    assert moved.exit_code == 1
    assert moved.output == "Error: node 'vz9z' is not a node of a configured pair\n"


def test_stale_data_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('stale_after = "3650d"', 'stale_after = "15m"'))
    write_cluster(tmp_path / "spool", end=time.time() - 7200)
    ok(path, "ingest")
    for args in (["pairs"], ["migrate", "201", "vz2a", "--yes"],
                 ["maintenance", "vz1a", "on", "--yes"]):
        result = lbm(path, *args)
        assert result.exit_code == 1, args
        assert result.output.startswith("Error: the newest sample is ")
        assert result.output.count("\n") == 1


def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lbvm.toml"
    path.write_text('database = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n')
    for args in (["list"], ["report"], ["export", "--prometheus", str(tmp_path / "x.prom")]):
        result = lbm(path, *args)
        assert result.exit_code == 1, args
        assert result.output.startswith("Error: cannot open the store postgresql+psycopg://")
        assert result.output.count("\n") == 1
    assert not (tmp_path / "x.prom").exists()
