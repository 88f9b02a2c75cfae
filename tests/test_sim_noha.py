"""Replays on nodes in no HA pair (CloudSim's setup), and Problems that carry a profile."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from algorithms.base import Plan, Problem
from lbvm.errors import ConfigError
from lbvm.sim import scenario as sc
from lbvm.sim.metrics import standby_on, summarise
from lbvm.sim.replay import replay
from lbvm.sim.traces import MIB, Trace

SCENARIOS = Path(__file__).parent / "scenarios" / "cloudsim"


def _trace(steps: int = 6) -> Trace:
    """Four VEs: two busy, two idle; 512 MiB each."""
    cpu = np.array([[1.5] * steps, [1.5] * steps, [0.1] * steps, [0.1] * steps])
    mem = np.full((4, steps), 512.0 * MIB)
    return Trace(("a", "b", "c", "d"), 0.0, 300.0, cpu, mem, np.array([2.0, 2.0, 0.5, 0.5]),
                 np.full(4, 512.0 * MIB), np.zeros(4), ("a", "b", "c", "d"))


def test_ha_false_leaves_every_node_out_of_pairs(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('pairs = 2\nha = false\nprofile_window = "2h"\n')
    scenario = sc.load(path)
    assert (scenario.ha, scenario.profile_window) == (False, 7200.0)
    cluster = scenario.cluster(10)
    assert cluster.n_nodes == 4 and cluster.pairs == (None,) * 4
    assert cluster.pair_configs() == ()
    path.write_text('ha = "no"\n')
    with pytest.raises(ConfigError, match=r"s\.toml: ha must be true or false"):
        sc.load(path)
    path.write_text('profile_window = "soon"\n')
    with pytest.raises(ConfigError, match=r"s\.toml: profile_window"):
        sc.load(path)


def test_standby_rule_leaves_nodes_outside_pairs_alone() -> None:
    active = np.array([[True, False, False, False]])
    on = standby_on(active, (None, None, "q", "q"))
    assert on.tolist() == [[True, False, False, False]]
    on = standby_on(np.array([[False, False, True, False]]), (None, None, "q", "q"))
    assert on.tolist() == [[False, False, True, True]]


def test_consolidate_empties_nodes_outside_pairs() -> None:
    scenario = replace(sc.SimScenario(pairs=2, ha=False), placement="spread")
    r = replay(_trace(), scenario, "consolidate")
    m = summarise(r)
    # the four VEs fit on one node within 90 % of 90 % (3.2 of 3.72 cores... or two)
    assert m.migrations >= 2 and m.switchovers == 0
    assert r.pair_short.shape == (6, 0) and m.failover_violations == 0
    assert r.active[-1].sum() < 4
    # node rule and pair rule agree when no node is paired
    pair_rule = replace(scenario, switch_off="pair")
    assert summarise(replay(_trace(), pair_rule, "consolidate")).energy_kwh == pytest.approx(
        m.energy_kwh)


class _Spy:
    """Plans nothing; keeps the Problems it was given."""

    name = "spy"
    summary = "test"

    def __init__(self) -> None:
        self.seen: list[Problem] = []

    def plan(self, problem: Problem) -> Plan:
        self.seen.append(problem)
        return Plan(self.name, (), problem.score(), problem.score())


def test_profile_window_fills_the_problem_profile() -> None:
    spy = _Spy()
    trace = _trace()
    trace = replace(trace, cpu=trace.cpu * np.arange(1, 7))  # step t uses (t + 1) x
    scenario = replace(sc.SimScenario(pairs=2), placement="spread", profile_window=900.0)
    replay(trace, scenario, spy)
    first, last = spy.seen[0].profile, spy.seen[-1].profile
    assert first is not None and last is not None
    assert first.shape == (4, 1, 2) and last.shape == (4, 3, 2)  # 900 s: 3 steps
    np.testing.assert_allclose(last[0, :, 0], [1.5 * 4, 1.5 * 5, 1.5 * 6])
    assert replace(scenario, profile_window=0.0).profile_window == 0.0
    spy.seen.clear()
    replay(trace, replace(scenario, profile_window=0.0), spy)
    assert spy.seen[0].profile is None


def test_noha_scenario_is_cloudsims_setup() -> None:
    noha = sc.load(SCENARIOS / "planetlab-800-noha.toml")
    cluster = noha.cluster(1052)
    assert not noha.ha and noha.memory == "cloudsim-null" and cluster.n_nodes == 800
    assert set(cluster.pairs) == {None}
    assert (cluster.cpus == 3.72).sum() == (cluster.cpus == 5.32).sum() == 400
