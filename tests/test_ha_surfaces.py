"""Where a degraded pair shows as "without failover": lbm pairs, the Prometheus export,
the report, and the monitor's failover_broken hook events."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner
from sqlalchemy import Engine
from test_ha_state import config, engine, healthy, load_ha_into, members, report, write_ha

from lbm.cli import main
from lbvm import export, hastate
from lbvm.config import Config
from lbvm.report import data as report_data
from lbvm.store.ha import load

__all__ = ["config", "engine"]  # pytest fixtures shared with test_ha_state


def degrade_pair2(config: Config, engine: Engine) -> None:
    now = time.time()
    reports = healthy(now)
    reports["vz2a"] = report("vz2a", nodes=members(vz2b={"unclean": True}))
    write_ha(config.spool, reports, now - 5)
    load_ha_into(engine, config.spool)


def test_pairs_flags_the_degraded_pair(config: Config, engine: Engine) -> None:
    degrade_pair2(config, engine)
    assert config.path is not None
    out = CliRunner().invoke(main, ["--config", str(config.path), "pairs", "--format", "json"])
    rows = {r["pair"]: r for r in json.loads(out.output)}
    assert (rows["pair1"]["ha"], rows["pair1"]["failover"]) == ("healthy", True)
    assert (rows["pair2"]["ha"], rows["pair2"]["failover"]) == ("degraded", False)
    assert rows["pair2"]["ha_reasons"] == "node vz2b unclean"


def test_prometheus_says_without_failover_and_why(config: Config, engine: Engine) -> None:
    degrade_pair2(config, engine)
    text = export.render(export.collect(engine, config))
    assert 'lbvm_pair_failover_ok{pair="pair2"} 0' in text
    assert 'lbvm_pair_failover_ok{pair="pair1"} 1' in text
    assert 'lbvm_pair_ha_ok{pair="pair2"} 0' in text
    assert 'lbvm_pair_degraded{pair="pair2",node="vz2b",reason="node vz2b unclean"} 1' in text


def test_report_lists_the_degraded_pair(config: Config, engine: Engine) -> None:
    degrade_pair2(config, engine)
    data = report_data.collect(engine, config, since=3600)
    assert data.summary.no_failover == ("pair2 (degraded: node vz2b unclean)",)
    assert data.summary.degraded == ("pair2: node vz2b unclean",)


def test_failover_broken_events_for_the_hook(config: Config, engine: Engine) -> None:
    degrade_pair2(config, engine)
    [event] = hastate.failover_events(load(engine), config)
    assert event == {"event": "failover_broken", "pair": "pair2", "nodes": ["vz2a", "vz2b"],
                     "reason": "node vz2b unclean", "reasons": ["node vz2b unclean"]}
