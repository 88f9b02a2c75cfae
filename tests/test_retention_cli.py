"""`lbm retention` through the CLI: it runs on the configured store and reports in JSON."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from lbm.cli import main


def test_retention_command_reports_what_it_did(tmp_path: Path) -> None:
    cfg = tmp_path / "lbvm.toml"
    cfg.write_text('database = "sqlite:///s.db"\nspool = "spool"\n[store]\nraw_days = 1\n'
                   "rollup_days = 30\n")
    result = CliRunner().invoke(main, ["--config", str(cfg), "retention", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["raw_deleted"] == 0 and row["hours"] == 0  # an empty store has nothing to do


def test_bad_retention_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "lbvm.toml"
    cfg.write_text('database = "sqlite:///s.db"\n[store]\nraw_days = 30\nrollup_days = 7\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "retention"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: retention: raw_days") and result.output.count("\n") == 1
