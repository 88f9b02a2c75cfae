"""`lbm check`: one Nagios status line with perfdata and plugin exit codes; JSON details."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import Engine
from test_ha_state import config, engine, healthy, load_ha_into, members, report, write_ha

from lbm.cli import main
from lbvm.config import Config

__all__ = ["config", "engine"]  # pytest fixtures shared with test_ha_state


def check(config: Config, *args: str) -> tuple[int, str]:
    assert config.path is not None
    result = CliRunner().invoke(main, ["--config", str(config.path), "check", *args])
    return result.exit_code, result.output


def test_healthy_pairs_are_ok_with_perfdata(config: Config, engine: Engine) -> None:
    now = time.time()
    write_ha(config.spool, healthy(now), now - 5)
    load_ha_into(engine, config.spool)
    code, out = check(config, "--warning", "0.01")
    assert code == 0, out
    assert out.count("\n") == 1 and out.startswith("LBVM OK - all 2 pairs can fail over | ")
    assert "pair1_mem_headroom=" in out and "pair2_ha_ok=1;;1" in out


def test_a_degraded_pair_is_critical(config: Config, engine: Engine) -> None:
    now = time.time()
    reports = healthy(now)
    reports["vz2a"] = report("vz2a", nodes=members(vz2b={"unclean": True}))
    write_ha(config.spool, reports, now - 5)
    load_ha_into(engine, config.spool)
    code, out = check(config, "--warning", "0.01")
    assert code == 2 and out.startswith("LBVM CRITICAL - 1 of 2 pairs not ready: pair2 "
                                        "CRITICAL: degraded: node vz2b unclean |")
    code, out = check(config, "--format", "json")
    doc = json.loads(out)
    assert code == 2 and doc["status"] == "CRITICAL"
    pair2 = {p["pair"]: p for p in doc["pairs"]}["pair2"]
    assert pair2["ha"]["reasons"] == ["node vz2b unclean"] and pair2["ha"]["state"] == "degraded"


def test_no_ha_state_is_unknown(config: Config, engine: Engine) -> None:
    load_ha_into(engine, config.spool)
    code, out = check(config)
    assert code == 3 and out.startswith("LBVM UNKNOWN - 2 of 2 pairs not ready")


def test_low_headroom_warns(config: Config, engine: Engine) -> None:
    now = time.time()
    write_ha(config.spool, healthy(now), now - 5)
    load_ha_into(engine, config.spool)
    code, out = check(config, "--warning", "0.99")
    assert code == 1 and out.startswith("LBVM WARNING - ")


def test_an_unreachable_store_is_unknown(tmp_path: Path) -> None:
    cfg = tmp_path / "lbvm.toml"
    cfg.write_text('database = "postgresql+psycopg://nobody@127.0.0.1:1/none"\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "check"])
    assert result.exit_code == 3 and result.output.startswith("LBVM UNKNOWN - ")
