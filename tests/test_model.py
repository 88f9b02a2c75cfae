"""Building the Problem: from plain frames, and from a store with its freshness checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import Engine

from lblog.sample import VeRow
from lbvm.config import BalanceConfig, Config, PairConfig
from lbvm.errors import ConfigError, StaleData
from lbvm.model import build_problem, problem_from_frame
from lbvm.store import queries
from lbvm.store.ingest import ingest

Writer = Callable[..., Path]
GIB = 1 << 30
CONFIG = Config(
    pairs=(PairConfig("p1", ("a1", "a2")), PairConfig("p2", ("b1", "b2"))),
    balance=BalanceConfig(window=3600.0, stale_after=900.0),
)


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ves = pd.DataFrame(
        {
            "ve": ["103", "101", "102", "104"],
            "node": ["b1", "a1", "a1", "a2"],
            "balanced": [True, True, False, True],
            "pinned": [False, False, False, True],
            "cpu": [0.5, 2.0, 1.0, np.nan],
            "mem": [GIB, 2 * GIB, GIB, np.nan],
            "mem_bytes": [GIB, 2 * GIB, GIB, np.nan],
            "disk_bytes": [10 * GIB, 20 * GIB, np.nan, 5 * GIB],
        }
    )
    nodes = pd.DataFrame(
        {
            "node": ["a1", "a2", "b1", "b2"],
            "pair": ["p1", "p1", "p2", "p2"],
            "cpus": [8.0, 8.0, 16.0, 16.0],
            "mem_bytes": [64 * GIB, 64 * GIB, 128 * GIB, 128 * GIB],
            "maintenance": [False, False, False, True],
        }
    )
    return ves, nodes


def test_problem_from_frame_shapes_and_rules() -> None:
    ves, nodes = frames()
    p = problem_from_frame(ves, nodes, CONFIG.balance)
    assert p.ves == ("101", "102", "103", "104") and p.nodes == ("a1", "a2", "b1", "b2")
    assert p.resources == ("cpu", "mem")
    assert p.demand.shape == (4, 2) and p.capacity.shape == (4, 2)
    np.testing.assert_array_equal(p.demand[:, 0], [2.0, 1.0, 0.5, 0.0])  # 104 unmeasured: 0
    np.testing.assert_array_equal(p.placement, [0, 0, 2, 1])
    np.testing.assert_array_equal(p.pair, [0, 0, 1, 1])
    # 102 not balanced, 104 pinned (and unmeasured): only 101 and 103 may move.
    np.testing.assert_array_equal(p.movable, [True, False, True, False])
    assert p.allowed.shape == (4, 4) and not p.allowed[:, 3].any() and p.allowed[:, :3].all()
    np.testing.assert_array_equal(p.maintenance, [False, False, False, True])
    np.testing.assert_array_equal(p.move_cost[:, 0], [2 * GIB, GIB, GIB, 0])
    np.testing.assert_array_equal(p.move_cost[:, 1], [22 * GIB, GIB, 11 * GIB, 5 * GIB])
    np.testing.assert_array_equal(p.settings.max_utilisation, [0.9, 0.9])
    np.testing.assert_array_equal(p.settings.failover_overcommit, [1.5, 1.0])
    assert p.settings.max_moves == 20
    np.testing.assert_allclose(p.load()[0], [3.0, 3 * GIB])


def test_problem_from_frame_refuses_unknown_node_and_missing_capacity() -> None:
    ves, nodes = frames()
    with pytest.raises(ConfigError, match="VE 103 is on node 'b1', which is in no pair"):
        problem_from_frame(ves, nodes[nodes["node"] != "b1"], CONFIG.balance)
    nodes.loc[1, "cpus"] = np.nan
    with pytest.raises(StaleData, match="node a2 has no capacity"):
        problem_from_frame(ves, nodes, CONFIG.balance)


def _store(write_sample: Writer, spool_dir: Path, store: Engine, *, skip: str = "") -> None:
    """Four nodes, two VEs each, three samples five minutes apart ending at t=10,000."""
    for i, t in enumerate((9400, 9700, 10_000)):
        for n, node in enumerate(("a1", "a2", "b1", "b2")):
            if node == skip:
                continue
            ves = [
                VeRow(f"{node}-{k}", cpu_raw=(n + k + 1) * 3000 * i, mem_bytes=(k + 1) * GIB,
                      disk_bytes=8 * GIB)
                for k in range(2)
            ]  # fmt: skip
            write_sample(node, t, ves, cpus=16)
    ingest(store, spool_dir)


def test_build_problem_from_the_store(store: Engine, spool_dir: Path, write_sample: Writer):
    _store(write_sample, spool_dir, store)
    with store.begin() as conn:
        queries.set_flags(conn, "b2-1", pinned=True)
    p = build_problem(store, CONFIG, now=10_100)
    assert p.nodes == ("a1", "a2", "b1", "b2") and len(p.ves) == 8
    assert p.demand.shape == (8, 2) and p.allowed.shape == (8, 4)
    cpu = dict(zip(p.ves, p.demand[:, 0], strict=True))
    assert cpu["a1-0"] == pytest.approx(0.1) and cpu["b2-1"] == pytest.approx(0.5)
    mem = dict(zip(p.ves, p.demand[:, 1], strict=True))
    assert mem["a2-1"] == pytest.approx(2 * GIB)
    np.testing.assert_array_equal(p.capacity[:, 0], [16.0] * 4)
    np.testing.assert_array_equal(p.pair, [0, 0, 1, 1])
    assert p.nodes[p.placement[p.ves.index("b1-0")]] == "b1"
    assert not p.movable[p.ves.index("b2-1")] and p.movable.sum() == 7
    assert p.move_cost[p.ves.index("a1-1")].tolist() == [2 * GIB, 10 * GIB]


def test_stale_samples_are_refused(store: Engine, spool_dir: Path, write_sample: Writer):
    with pytest.raises(StaleData, match="no samples"):
        build_problem(store, CONFIG, now=10_000)
    _store(write_sample, spool_dir, store)
    with pytest.raises(StaleData, match="newest sample is 1000s old"):
        build_problem(store, CONFIG, now=11_000)


def test_paired_node_without_samples(store: Engine, spool_dir: Path, write_sample: Writer):
    _store(write_sample, spool_dir, store, skip="b2")
    with pytest.raises(StaleData, match="node b2 of pair p2 has no samples"):
        build_problem(store, CONFIG, now=10_100)


def test_unpaired_node_is_a_config_error(store: Engine, spool_dir: Path, write_sample: Writer):
    _store(write_sample, spool_dir, store)
    write_sample("c1", 10_000, [VeRow("c1-0", cpu_raw=0)])
    ingest(store, spool_dir)
    with pytest.raises(ConfigError, match="node c1 is not in any pair"):
        build_problem(store, CONFIG, now=10_100)
    # Once it has not reported for a whole window, it no longer blocks planning.
    later = replace(CONFIG, balance=replace(CONFIG.balance, stale_after=10**6))
    assert build_problem(store, later, now=10_000 + 3601).n_nodes == 4
