"""Every hook event fires, through the real tests/bin/fake-hook process: move_done,
move_failed, hotspot and failover_broken, each with its documented fields."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_monitor import make_site

from lbvm.monitor import Monitor, MonitorSettings

BIN = Path(__file__).resolve().parent / "bin"
COMMON = {"event", "ts", "host"}
MOVE = COMMON | {"ve", "src", "dst", "kind", "move_id"}


@pytest.fixture
def hook_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "hook.log"
    monkeypatch.setenv("FAKE_HOOK_LOG", str(log))
    return log


def heard(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def settings(**kw: Any) -> MonitorSettings:
    return MonitorSettings(hook=(str(BIN / "fake-hook"),), threshold=5, **kw)


def test_move_done(tmp_path: Path, hook_log: Path) -> None:
    cfg = make_site(tmp_path)
    result = Monitor(cfg, settings=settings(automation="automatic")).run_once(nightly=True)
    got = heard(hook_log)
    assert result.moved > 0 and [g["event"] for g in got] == ["move_done"] * result.moved
    assert all(set(g) == MOVE for g in got)


def test_move_failed(tmp_path: Path, hook_log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "crm_resource").symlink_to(BIN / "fake-crm_resource-faulty")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster"))
    monkeypatch.setenv("FAKE_FAULT", "fail")
    cfg = make_site(tmp_path, backend="crm_resource")
    Monitor(cfg, settings=settings(automation="automatic")).run_once(nightly=True)
    (got,) = heard(hook_log)  # the rest of the plan was skipped: nothing more to tell
    assert got["event"] == "move_failed" and set(got) == MOVE | {"state", "reason"}
    assert got["state"] == "failed" and "cannot run on" in got["reason"]


def test_hotspot_and_failover_broken(tmp_path: Path, hook_log: Path) -> None:
    cfg = make_site(tmp_path)
    text = cfg.read_text().replace(
        '[balance]\n',
        '[balance]\nmax_utilisation = { cpu = 0.01, mem = 0.9 }\n'
        'failover_overcommit = { cpu = 0.01, mem = 1.0 }\n',
    )
    cfg.write_text(text)
    Monitor(cfg, settings=settings()).run_once()  # the check job: it only reports
    got = heard(hook_log)
    hot = [g for g in got if g["event"] == "hotspot"]
    broken = [g for g in got if g["event"] == "failover_broken"]
    assert len({g["node"] for g in hot}) >= 2  # the generated cluster is busy nearly everywhere
    assert all(set(g) == COMMON | {"node", "resource", "utilisation", "limit"} for g in hot)
    assert all(g["resource"] == "cpu" and g["utilisation"] > g["limit"] == 0.01 for g in hot)
    assert sorted(tuple(g["nodes"]) for g in broken) == [("vz1a", "vz1b"), ("vz2a", "vz2b")]
    assert all(set(g) == COMMON | {"nodes", "resource", "short_by"} and g["short_by"] > 0
               for g in broken)
    assert len(got) == len(hot) + len(broken)
