"""Metrics, power and migration accounting on tiny hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from lbvm.errors import ConfigError
from lbvm.sim import intervals
from lbvm.sim.intervals import Segments
from lbvm.sim.metrics import pdm, share_over, spread
from lbvm.sim.power import ML110_G4, energy_kwh, power
from lbvm.sim.replay import latest, window_statistic


def test_power_interpolates_the_specpower_table() -> None:
    table = np.array([ML110_G4, ML110_G4])
    # 15 % lies half way between 89.4 W (10 %) and 92.6 W (20 %); above 100 % draws 117 W.
    assert power(table, np.array([0.15, 1.7])).tolist() == pytest.approx([91.0, 117.0])
    assert power(table, np.array([0.0, 1.0])).tolist() == pytest.approx([86.0, 117.0])


def test_energy_in_kwh() -> None:
    # two nodes at 100 W for two 30-minute steps: 0.2 kWh
    assert energy_kwh(np.full((2, 2), 100.0), 1800.0) == pytest.approx(0.2)


def test_share_over_counts_active_node_intervals_only() -> None:
    util = np.zeros((2, 3, 2))
    util[0, 0, 0] = 1.2  # node 0 over on cpu at t0
    util[1, 1, 1] = 0.95  # node 1 over the 0.9 threshold on mem at t1
    util[1, 2, 0] = 3.0  # node 2 is off: not counted
    active = np.array([[True, True, False], [True, True, False]])
    assert share_over(util, 1.0, active) == pytest.approx(1 / 4)
    assert share_over(util, np.array([0.9, 0.9]), active) == pytest.approx(2 / 4)
    assert share_over(util, 1.0, np.zeros((2, 3), dtype=bool)) == 0.0


def test_pdm_and_spread() -> None:
    assert pdm(np.array([1.0, 3.0]), np.array([100.0, 100.0])) == pytest.approx(0.02)
    assert pdm(np.zeros(2), np.zeros(2)) == 0.0
    util = np.array([[[0.2, 0.4], [0.6, 0.4]]])
    assert spread(util).tolist() == [[pytest.approx(0.2), 0.0]]


def test_a_migration_counts_on_both_nodes_while_it_runs() -> None:
    # VE 0 moves node 0 -> node 1 from 100 s to 160 s of the interval [0, 300).
    where = np.array([0, 1])
    seg = Segments(np.array([0]), np.array([0]), np.array([1]), np.array([100.0]),
                   np.array([160.0]))
    rows = intervals.presence(where, seg, 0.0, 300.0)
    load = intervals.load(rows, np.array([3.0, 1.0]), 2)
    # node 0 holds VE 0 for 160 s, node 1 from 100 s on (200 s) plus VE 1 all along.
    assert load.tolist() == pytest.approx([3.0 * 160 / 300, 3.0 * 200 / 300 + 1.0])
    # 10 % of VE 0's 3 cores for 60 s
    assert intervals.degraded(seg, np.array([3.0, 1.0]), 0.1, 0.0, 300.0) == pytest.approx(18.0)
    # next interval: the move is over, VE 0 is only on node 1
    later = intervals.load(intervals.presence(where, seg, 300.0, 600.0), np.array([3.0, 1.0]), 2)
    assert later.tolist() == [0.0, 4.0]
    assert seg.final(where).tolist() == [1, 1]


def test_two_moves_of_one_ve_in_a_row() -> None:
    where = np.array([0])
    seg = Segments(np.array([0, 0]), np.array([0, 1]), np.array([1, 2]),
                   np.array([0.0, 30.0]), np.array([30.0, 90.0]))
    rows = intervals.presence(where, seg, 0.0, 300.0)
    load = intervals.load(rows, np.array([1.0]), 3)
    assert load.tolist() == pytest.approx([30 / 300, 90 / 300, 270 / 300])
    assert seg.final(where).tolist() == [2]


def test_not_running_ves_count_nothing_and_switch_nothing_on() -> None:
    rows = intervals.presence(np.array([0, 1]), Segments.empty(), 0.0, 300.0)
    assert intervals.load(rows, np.array([np.nan, 2.0]), 2).tolist() == [0.0, 2.0]
    assert intervals.occupied(rows, np.array([False, True]), 2).tolist() == [False, True]


def test_window_statistic_matches_pandas_quantile() -> None:
    import pandas as pd

    window = np.array([[1.0, 2.0, 3.0, 10.0], [np.nan, 4.0, np.nan, 6.0]])
    got = window_statistic(window, "p95")
    want = pd.DataFrame(window.T).quantile(0.95).to_numpy()
    assert got.tolist() == pytest.approx(want.tolist())
    assert window_statistic(window, "max").tolist() == [10.0, 6.0]
    assert latest(np.array([[1.0, np.nan], [np.nan, np.nan]])).tolist()[0] == 1.0
    with pytest.raises(Exception, match="statistic"):
        window_statistic(window, "median-ish")


def test_power_table_checked() -> None:
    from lbvm.sim.power import check_table

    with pytest.raises(ConfigError, match="at least 2"):
        check_table((90.0,), "x")
    with pytest.raises(ConfigError, match="not fall"):
        check_table((90.0, 80.0), "x")


def test_standby_nodes_of_pairs_in_use_count_as_on() -> None:
    from lbvm.sim.metrics import standby_on

    # pairs p (nodes 0, 1) and q (nodes 2, 3): p in use through node 1 only, then nothing
    active = np.array([[False, True, False, False], [False, False, False, False]])
    on = standby_on(active, ("p", "p", "q", "q"))
    assert on.tolist() == [[True, True, False, False], [False, False, False, False]]
