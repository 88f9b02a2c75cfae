"""The site hook: JSON on stdin, argv list, timeout, and it never raises."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lbvm.hooks import run_hook

HOOK = str(Path(__file__).parent / "bin" / "fake-hook")


@pytest.fixture
def hook_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "hook.log"
    monkeypatch.setenv("FAKE_HOOK_LOG", str(path))
    return path


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_event_arrives_as_json(hook_log: Path) -> None:
    event = {"event": "move_done", "ve": "101", "src": "vz1a", "dst": "vz2a", "move_id": 7}
    assert run_hook([HOOK], event)
    (got,) = _events(hook_log)
    assert {k: got[k] for k in event} == event
    assert isinstance(got["ts"], float) and got["host"]


def test_no_hook_configured_does_nothing(hook_log: Path) -> None:
    assert not run_hook(None, {"event": "hotspot"})
    assert not run_hook([], {"event": "hotspot"})
    assert not hook_log.exists()


def test_failing_hook_is_logged(
    hook_log: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_HOOK_EXIT", "3")
    with caplog.at_level(logging.ERROR, logger="lbvm.hooks"):
        assert not run_hook([HOOK], {"event": "failover_broken", "pair": "pair1"})
    assert "event=hook_failed" in caplog.text and "exit=3" in caplog.text
    assert "hook says: 3" in caplog.text
    assert _events(hook_log)[0]["pair"] == "pair1"


def test_hanging_hook_times_out(
    hook_log: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_HOOK_SLEEP", "5")
    with caplog.at_level(logging.ERROR, logger="lbvm.hooks"):
        assert not run_hook([HOOK], {"event": "hotspot", "node": "vz1a"}, timeout=0.3)
    assert "event=hook_timeout" in caplog.text


def test_missing_hook_and_unknown_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="lbvm.hooks"):
        assert not run_hook([str(tmp_path / "no-such-hook")], {"event": "move_failed"})
        assert not run_hook([HOOK], {"event": "lunch"})
    assert "event=hook_error" in caplog.text
    assert "unknown_event" in caplog.text
