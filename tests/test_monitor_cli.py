"""`lbm monitor` through click: help, the cron modes, errors, log formats.

Commands are invoked through the root group, as a user runs them: click caches a command's
help option the first time it parses, so invoking ``monitor`` alone would change what later
tests (and docs/cli.md) see as its help flags."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select
from test_monitor import make_site

from lbm.cli import main
from lbm.commands.monitor import monitor
from lbvm import lease
from lbvm.monitor import MONITOR_LEASE
from lbvm.store.engine import connect
from lbvm.store.schema import runs

REPO = Path(__file__).resolve().parents[1]


def run(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(cfg), "monitor", *args])


def test_help_ends_with_an_example() -> None:
    result = CliRunner().invoke(main, ["monitor", "--help"])
    assert result.exit_code == 0
    assert monitor.help is not None
    assert monitor.help.rstrip().endswith("Example: lbm monitor --once")
    assert "Example: lbm monitor --once" in result.output
    for flag in ("--once", "--nightly", "--foreground"):
        assert flag in result.output


def test_once_and_once_nightly(tmp_path: Path) -> None:
    cfg = make_site(tmp_path)
    assert run(cfg, "--once", "--foreground").exit_code == 0
    got = run(cfg, "--once", "--nightly", "--foreground")
    assert got.exit_code == 0, got.output
    with connect(f"sqlite:///{tmp_path / 'lbvm.db'}").connect() as conn:
        kinds = conn.execute(select(runs.c.kind).order_by(runs.c.id)).scalars().all()
    assert kinds == ["check", "nightly"]


def test_passive_is_not_an_error(tmp_path: Path) -> None:
    cfg = make_site(tmp_path)
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")
    assert lease.acquire(engine, MONITOR_LEASE, "other-host.example.org:1", 600)
    got = run(cfg, "--once", "--foreground")
    assert got.exit_code == 0


def test_nightly_needs_once(tmp_path: Path) -> None:
    got = run(make_site(tmp_path), "--nightly")
    assert got.exit_code == 2 and "--nightly goes with --once" in got.output


def test_stale_store_fails_the_cron_run(tmp_path: Path) -> None:
    cfg = make_site(tmp_path, now=1_000_000.0)  # samples from 1970: long stale
    got = run(cfg, "--once", "--foreground")
    assert got.exit_code == 1 and "old" in got.output


def test_unit_and_cron_files_run_the_command() -> None:
    unit = (REPO / "share/systemd/lbvm-monitor.service").read_text()
    assert "ExecStart=/usr/bin/lbm monitor --foreground" in unit
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit
    assert "Type=simple" in unit and "Restart=on-failure" in unit
    cron = (REPO / "share/cron.d/lbvm-monitor").read_text()
    lines = [ln.split() for ln in cron.splitlines() if ln and not ln.startswith("#")
             and "=" not in ln.split()[0]]
    assert [ln[6:] for ln in lines] == [["lbm", "monitor", "--once"],
                                        ["lbm", "monitor", "--once", "--nightly"]]


def test_log_lines_go_to_stderr_in_the_foreground(tmp_path: Path) -> None:
    import logging

    cfg = make_site(tmp_path)
    before = logging.getLogger("lbvm").handlers[:]
    got = run(cfg, "--once", "--foreground")
    assert got.exit_code == 0
    assert "event=check " in got.stderr and "status=done" in got.stderr
    assert logging.getLogger("lbvm").handlers == before  # torn down after the command


def test_json_log_lines(tmp_path: Path) -> None:
    import json

    got = run(make_site(tmp_path), "--once", "--foreground", "--log-format", "json")
    assert got.exit_code == 0, got.output
    lines = [json.loads(line) for line in got.stderr.splitlines()]
    check = next(d for d in lines if d.get("event") == "check")
    assert check["status"] == "done" and check["level"] == "INFO"
    assert check["logger"] == "lbvm.monitor" and isinstance(check["ts"], float)
    assert all("event" in d or "message" in d for d in lines)
