"""The Problem's hourly time profile built from the store, and `peak` planning on it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from lblog import spool
from lblog.sample import NodeTotals, Sample, VeRow
from lbm.cli import main
from lbvm.config import BalanceConfig, Config, PairConfig
from lbvm.model import build_problem
from lbvm.store import profile, retention
from lbvm.store.ingest import ingest

GIB = 1 << 30
HZ = 100
STEP = 300.0
HOUR = 3600.0
Rate = Callable[[float], float]  # cores used by a VE in the clock hour starting at t


def write_node(spool_dir: Path, node: str, ves: dict[str, Rate], *, end: float, hours: float,
               cpus: int = 32) -> None:
    """Samples of ``node`` every 5 minutes over ``hours`` before ``end``; each VE uses the
    cores its rate gives for the hour the sample falls in, and (hour index + 1) GiB."""
    count = int(hours * HOUR / STEP)
    raw = dict.fromkeys(ves, 0)
    for k in range(count + 1):
        t = end - (count - k) * STEP
        hour = t // HOUR * HOUR
        rows = []
        for ve, rate in ves.items():
            raw[ve] += int(rate(hour) * HZ * STEP)
            rows.append(VeRow(ve, cpu_raw=raw[ve], uptime=1000.0 + k * STEP,
                              mem_bytes=GIB, disk_bytes=GIB))
        totals = NodeTotals(cpus=cpus, cpu_busy_raw=k * 100, cpu_idle_raw=k * 100,
                            mem_total_bytes=64 * GIB, mem_available_bytes=32 * GIB,
                            load1=1.0, load5=1.0, load15=1.0)
        spool.write(spool_dir, Sample(node, t, "openvz", HZ, HZ, totals, tuple(rows)))


END = 10 * HOUR + 1200.0  # 20 minutes into hour 10
CONFIG = Config(
    pairs=(PairConfig("p1", ("a1", "a2")),),
    balance=BalanceConfig(window=3 * HOUR, stale_after=900.0, profile="hourly",
                          profile_window=3 * HOUR),
)


def _by_hour(rates: dict[float, float], base: float = 1.0) -> Rate:
    return lambda hour: rates.get(hour, base)


def _cluster(store: Engine, spool_dir: Path) -> None:
    """a1: x uses 1, 3, 2 cores in hours 8, 9, 10; a2: y 0.5 throughout, z starts in hour 10."""
    write_node(spool_dir, "a1", {"x": _by_hour({8 * HOUR: 1.0, 9 * HOUR: 3.0, 10 * HOUR: 2.0})},
               end=END, hours=3)
    write_node(spool_dir, "a2", {"y": _by_hour({}, 0.5)}, end=END, hours=3)
    write_node(spool_dir, "a2", {"z": _by_hour({}, 4.0)}, end=END, hours=0.25)
    ingest(store, spool_dir)


def test_hours_end_with_the_current_one() -> None:
    np.testing.assert_array_equal(profile.hours(END, 3), [8 * HOUR, 9 * HOUR, 10 * HOUR])
    np.testing.assert_array_equal(profile.hours(10 * HOUR, 1), [10 * HOUR])


def test_profile_from_raw_samples_and_from_rollups(store: Engine, spool_dir: Path) -> None:
    _cluster(store, spool_dir)
    p = build_problem(store, CONFIG, now=END)
    assert p.ves == ("x", "y", "z")
    assert p.profile is not None and p.profile.shape == (3, 3, 2)
    assert p.profile.dtype == np.float32
    np.testing.assert_allclose(p.profile[0, :, 0], [1.0, 3.0, 2.0], rtol=1e-5)
    np.testing.assert_allclose(p.profile[1, :, 0], [0.5] * 3, rtol=1e-5)
    np.testing.assert_allclose(p.profile[:, :, 1], GIB, rtol=1e-6)  # bytes, like demand
    # z ran only in hour 10: hours 8 and 9 take its demand (p95 over the window)
    np.testing.assert_allclose(p.profile[2, :, 0], [p.demand[2, 0]] * 2 + [4.0], rtol=1e-5)
    # hours 8 and 9 rolled up: the same profile, now read from the rollups
    retention.run(store, END)
    again = build_problem(store, CONFIG, now=END)
    assert again.profile is not None
    np.testing.assert_allclose(again.profile, p.profile, rtol=1e-5)


def test_no_profile_for_balance_unless_asked(store: Engine, spool_dir: Path) -> None:
    _cluster(store, spool_dir)
    auto = Config(pairs=CONFIG.pairs, balance=BalanceConfig(window=3 * HOUR))
    assert build_problem(store, auto, now=END).profile is None
    peak = build_problem(store, auto, now=END, algorithm="peak")
    assert peak.profile is not None and peak.profile.shape == (3, 24, 2)
    none = Config(pairs=CONFIG.pairs, balance=BalanceConfig(window=3 * HOUR, profile="none"))
    assert build_problem(store, none, now=END, algorithm="peak").profile is None


def _config(folder: Path, profile_kind: str) -> Path:
    path = folder / "lbvm.toml"
    path.write_text(
        'database = "sqlite:///lbvm.db"\nspool = "spool"\n\n'
        '[[pairs]]\nname = "p1"\nnodes = ["a1", "a2"]\n\n'
        f'[balance]\nwindow = "4h"\nprofile_window = "4h"\nprofile = "{profile_kind}"\n'
    )
    return path


@pytest.mark.parametrize("profile_kind", ["auto", "none"])
def test_peak_plan_separates_coinciding_peaks(tmp_path: Path, profile_kind: str) -> None:
    """m and n on a1 both peak in one hour, o and p on a2 in different hours: their p95s are
    all alike (a1 and a2 carry the same demand), so only the hourly profile tells that a1's
    summed peak is twice a2's. `lbm plan -a peak` then moves m or n to a2."""
    end = time.time()
    now_hour = end // HOUR * HOUR
    peaks = {"m": now_hour - 2 * HOUR, "n": now_hour - 2 * HOUR,
             "o": now_hour - 3 * HOUR, "p": now_hour - HOUR}

    def rate(ve: str) -> Rate:
        return _by_hour({peaks[ve]: 8.0})

    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    write_node(spool_dir, "a1", {"m": rate("m"), "n": rate("n")}, end=end, hours=5)
    write_node(spool_dir, "a2", {"o": rate("o"), "p": rate("p")}, end=end, hours=5)
    cfg = _config(tmp_path, profile_kind)
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(cfg), "ingest"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--config", str(cfg), "plan", "-a", "peak", "--format", "json"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["valid"]
    if profile_kind == "none":  # one step of equal demand: nothing to separate
        assert doc["moves"] == []
        return
    assert len(doc["moves"]) >= 1
    first = doc["moves"][0]
    assert first["ve"] in ("m", "n") and (first["from"], first["to"]) == ("a1", "a2")
    where = {"m": "a1", "n": "a1", "o": "a2", "p": "a2"}
    for move in doc["moves"]:
        where[move["ve"]] = move["to"]
    assert where["m"] != where["n"]
