"""`lbm export --prometheus`: node_exporter's textfile format, written atomically."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from test_cli import lbm, ok
from test_cycle import write_cluster, write_config

from lbvm.export import Metric, render, write_atomic

LINE = re.compile(r'^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')


def parse(text: str) -> dict[str, float]:
    """'name{labels}' -> value, checking every line is HELP, TYPE or a well-formed sample."""
    out: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert kind in ("gauge", "counter")
            typed.add(name)
            continue
        assert LINE.match(line), line
        key, value = line.rsplit(" ", 1)
        assert key.split("{")[0] in typed, f"{key} has no # TYPE before it"
        out[key] = float(value)
    return out


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    write_cluster(tmp_path / "spool", end=time.time())
    ok(path, "ingest")
    return path


def test_export_writes_every_metric(cfg: Path, tmp_path: Path) -> None:
    ok(cfg, "migrate", "201", "vz2a", "--yes")
    target = tmp_path / "lbvm.prom"
    assert ok(cfg, "export", "--prometheus", str(target)) == ""
    metrics = parse(target.read_text())
    assert metrics['lbvm_node_utilisation{node="vz1a",pair="pair1",resource="cpu"}'] == (
        pytest.approx(0.75, rel=0.02))
    assert metrics['lbvm_pair_failover_ok{pair="pair1"}'] == 1
    assert metrics['lbvm_pair_headroom{pair="pair2",resource="mem"}'] > 0
    assert 0 < metrics["lbvm_imbalance_score"] < 1
    assert metrics["lbvm_data_fresh"] == 1
    assert metrics['lbvm_ves{node="vz1a"}'] == 6 and metrics['lbvm_ves{node="vz2a"}'] == 2
    assert metrics['lbvm_moves_total{state="done"}'] == 1
    assert metrics['lbvm_moves_total{state="failed"}'] == 0
    assert time.time() - metrics["lbvm_last_sample_timestamp_seconds"] < 600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_stale_samples_still_export_the_timestamp(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace('stale_after = "3650d"', 'stale_after = "15m"'))
    write_cluster(tmp_path / "spool", end=time.time() - 7200)
    ok(path, "ingest")
    target = tmp_path / "lbvm.prom"
    result = lbm(path, "export", "--prometheus", str(target))
    assert result.exit_code == 0 and "warning: samples are stale" in result.output
    metrics = parse(target.read_text())
    assert metrics["lbvm_data_fresh"] == 0
    assert not any(k.startswith("lbvm_node_utilisation") for k in metrics)
    assert metrics["lbvm_last_sample_timestamp_seconds"] < time.time() - 7000


def test_render_escapes_labels_and_special_values() -> None:
    text = render([Metric("m", "gauge", "help", (((("a", 'x"y\\z\n'),), float("nan")),
                                                 ((), float("inf")), ((), 2.0), ((), 0.5)))])
    assert text.splitlines() == ["# HELP m help", "# TYPE m gauge",
                                 'm{a="x\\"y\\\\z\\n"} NaN', "m +Inf", "m 2", "m 0.5"]


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "x.prom"
    target.write_text("old\n")
    write_atomic(target, "new\n")
    assert target.read_text() == "new\n" and oct(target.stat().st_mode)[-3:] == "644"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.prom"]
