"""`lbm simulate` end to end, and the replay's use of the production plan path."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from click.testing import CliRunner

from algorithms.base import Move, Plan, Problem
from lbm.cli import main
from lbvm.errors import ConfigError
from lbvm.sim import scenario as sc
from lbvm.sim.metrics import KEYS, summarise
from lbvm.sim.replay import replay
from lbvm.sim.traces import MIB, Trace

REPO = Path(__file__).resolve().parents[1]
PLANETLAB = REPO.parent / "shared" / "traces" / "planetlab" / "20110303"
FIXTURES = Path(__file__).parent / "fixtures" / "traces"
CLOUDSIM = Path(__file__).parent / "scenarios" / "cloudsim" / "planetlab-800.toml"
needs_day = pytest.mark.skipif(not PLANETLAB.is_dir(),
                               reason="the PlanetLab 20110303 day is not next to the repository")


@needs_day
def test_short_replay_of_the_real_day_through_the_cli() -> None:
    args = ["simulate", "--trace", str(PLANETLAB), "--ves", "40", "--steps", "24",
            "--pairs", "16", "--algorithm", "balance", "--format", "json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert list(doc) == ["trace", "scenario", "results"]
    assert doc["trace"] == {"path": str(PLANETLAB), "format": "planetlab", "ves": 40,
                            "steps": 24, "interval": 300.0}
    (result,) = doc["results"]
    assert tuple(result) == KEYS
    assert result["plans"] == 24 and result["nodes"] == 32 and result["ves"] == 40
    assert 0 <= result["slatah"] <= 1 and result["energy_kwh"] > 0
    assert result["migrations"] >= result["switchovers"]


@needs_day
def test_table_and_report(tmp_path: Path) -> None:
    report = tmp_path / "sim.html"
    args = ["simulate", "--trace", str(PLANETLAB), "--ves", "20", "--steps", "6",
            "--pairs", "8", "--report", str(report)]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "SLATAH" in out.output and "balance" in out.output
    page = report.read_text()
    assert page.count("<img") == 4 and "slatah" in page


def test_gwa_fixture_through_the_cli() -> None:
    args = ["simulate", "--trace", str(FIXTURES / "gwa"), "--trace-format", "gwa",
            "--scenario", str(FIXTURES / "gwa-cluster.toml"), "--format", "json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["results"][0]["ves"] == 3


def test_bad_trace_is_one_line_naming_file_and_line() -> None:
    out = CliRunner().invoke(main, ["simulate", "--trace", str(FIXTURES / "planetlab-bad")])
    assert out.exit_code == 1
    assert "metis_mcs_suffolk_edu_ yale_p4p:7" in out.output


def test_unknown_algorithm_lists_the_known_ones() -> None:
    out = CliRunner().invoke(main, ["simulate", "--trace", str(FIXTURES / "planetlab"),
                                    "--algorithm", "nope"])
    assert out.exit_code == 1 and "available:" in out.output


def test_pairs_and_scenario_exclude_each_other() -> None:
    out = CliRunner().invoke(main, ["simulate", "--trace", str(FIXTURES / "planetlab"),
                                    "--pairs", "2", "--cloudsim"])
    assert out.exit_code == 2


def test_cloudsim_scenario_file_is_the_builtin_preset() -> None:
    loaded = sc.load(CLOUDSIM)
    assert loaded.pairs == 400 and loaded.host_types == sc.cloudsim().host_types
    assert loaded.vm_types == sc.cloudsim().vm_types
    assert loaded.bandwidth == sc.cloudsim().bandwidth
    cluster = loaded.cluster(1052)
    assert cluster.n_nodes == 800 and cluster.cpus[:2].tolist() == [3.72, 5.32]
    assert cluster.pairs[0] == cluster.pairs[1] != cluster.pairs[2]


def test_scenario_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text('switch_off = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"s\.toml: switch_off"):
        sc.load(bad)
    bad.write_text("[balance]\nspeed = 1\n")
    with pytest.raises(ConfigError, match=r"s\.toml: unknown key\(s\) in \[balance\]: speed"):
        sc.load(bad)


def _tiny(steps: int = 4) -> Trace:
    cpu = np.array([[3.0] * steps, [0.5] * steps, [0.5] * steps])
    mem = np.full((3, steps), 512.0 * MIB)
    return Trace(("a", "b", "c"), 0.0, 300.0, cpu, mem, np.array([3.0, 0.5, 0.5]),
                 np.full(3, 512.0 * MIB), np.zeros(3), ("a", "b", "c"))


class _Reckless:
    """Moves every VE onto the first node, whatever it holds: the validator must refuse."""

    name: ClassVar[str] = "reckless"
    summary: ClassVar[str] = "test"

    def plan(self, problem: Problem) -> Plan:
        moves = tuple(Move(v, problem.nodes[int(n)], problem.nodes[0], "switchover")
                      for v, n in zip(problem.ves, problem.placement, strict=True) if n != 0)
        return Plan(self.name, moves, problem.score(), problem.score())


def test_the_validator_refuses_what_an_algorithm_gets_wrong() -> None:
    scenario = replace(sc.SimScenario(pairs=1), placement="spread")
    result = replay(_tiny(), scenario, _Reckless())
    assert result.plans == 4 and result.refused == 4
    assert result.moves.sum() == 0 and "over its limit" in result.notes[0]


def test_moves_take_time_and_count_on_both_nodes() -> None:
    # The hot VE 'a' (3 cores) starts on node 0 with 'c'; balance moves something off.
    scenario = replace(sc.SimScenario(pairs=1), placement="spread",
                       bandwidth=512.0 * MIB / 60)  # a 512 MiB VE moves in 60 s
    result = replay(_tiny(), scenario, "balance")
    m = summarise(result)
    assert m.migrations >= 1 and m.bytes_moved == m.migrations * 512 * MIB
    t = int(np.flatnonzero(result.moves)[0])
    # 10 % of the moved VEs' CPU for 60 s each, in the next interval
    lost = result.degraded[t + 1] / (0.1 * 60.0)
    assert any(lost == pytest.approx(c) for c in (0.5, 1.0, 3.0, 3.5, 4.0))


def test_nightly_plans_once_a_day_at_the_nightly_time() -> None:
    scenario = replace(sc.SimScenario(pairs=1), placement="spread", nightly_at="00:20")
    assert replay(_tiny(12), scenario, "balance", nightly=True).plans == 1
    assert replay(_tiny(3), scenario, "balance", nightly=True).plans == 0  # ends at 00:15


def test_cloudsim_null_memory_counts_only_for_the_start() -> None:
    # 3 GiB VEs spread on two 4 GiB nodes: node 0 holds two of them (6 GiB).
    trace = replace(_tiny(), mem=np.full((3, 4), 3072.0 * MIB), mem_size=np.full(3, 3072.0 * MIB))
    counted = replace(sc.SimScenario(pairs=1), placement="spread")
    null = replace(counted, memory="cloudsim-null")
    m_counted = summarise(replay(trace, counted, "balance"))
    assert m_counted.slatah > 0 and m_counted.std_mem > 0
    r = replay(trace, null, "balance")
    m = summarise(r)
    assert (r.util[:, :, 1] == 0).all() and m.std_mem == 0
    # the hot node (3.5 cores on a 3.72-core G4) is relieved; a move copies the full 3 GiB
    assert m.migrations >= 1 and m.bytes_moved == m.migrations * 3072 * MIB


def test_scenario_memory_key(tmp_path: Path) -> None:
    assert sc.load(CLOUDSIM).memory == "counted"
    null = sc.load(CLOUDSIM.with_name("planetlab-800-null.toml"))
    assert null.memory == "cloudsim-null" and null.pairs == 400
    assert replace(null, memory="counted", name=sc.load(CLOUDSIM).name,
                   path=CLOUDSIM) == sc.load(CLOUDSIM)
    ok = tmp_path / "e.toml"
    ok.write_text('[executor]\nmax_parallel = 4\ncooldown = "30m"\n')
    executor = sc.load(ok).executor
    assert (executor.max_parallel, executor.cooldown, executor.max_per_node) == (4, 1800.0, 1)
    bad = tmp_path / "s.toml"
    bad.write_text('memory = "ignored"\n')
    with pytest.raises(ConfigError, match=r"s\.toml: memory 'ignored': use counted, cloudsim-null"):
        sc.load(bad)


def test_moves_start_as_the_executor_starts_them() -> None:
    from lbvm.executor import Limits, dependencies
    from lbvm.sim.replay import timeline

    pairs = {"n0": "p0", "n1": "p0", "n2": "p1", "n3": "p1", "n4": "p2", "n5": "p2"}
    moves = (Move("a", "n0", "n2", "migrate"), Move("b", "n1", "n3", "migrate"),
             Move("c", "n4", "n5", "switchover"))
    src, dst = np.array([0, 1, 4]), np.array([2, 3, 5])
    secs = np.array([10.0, 20.0, 5.0])
    deps = dependencies(moves, pairs)
    assert deps == [set(), {0}, set()]  # b touches a's pairs; c is on a pair of its own
    one = Limits(pairs=pairs)
    assert timeline(secs, src, dst, deps, one, 100.0).tolist() == [100, 110, 130]
    paused = Limits(pause=1.0, pairs=pairs)
    assert timeline(secs, src, dst, deps, paused, 100.0).tolist() == [100, 111, 132]
    two = Limits(max_parallel=2, pairs=pairs)
    assert timeline(secs, src, dst, deps, two, 100.0).tolist() == [100, 110, 100]


class _Flip:
    """Switches every movable VE over to its partner node, every plan."""

    name: ClassVar[str] = "flip"
    summary: ClassVar[str] = "test"

    def plan(self, problem: Problem) -> Plan:
        moves = tuple(Move(v, problem.nodes[int(n)], problem.nodes[int(n) ^ 1], "switchover")
                      for v, n, ok in zip(problem.ves, problem.placement, problem.movable,
                                          strict=True) if ok)
        return Plan(self.name, moves, problem.score(), problem.score())


def test_a_moved_ve_rests_for_the_cooldown_in_simulated_time() -> None:
    small = replace(_tiny(24), cpu=np.full((3, 24), 0.2))
    scenario = replace(sc.SimScenario(pairs=2), placement="spread")
    cool = replace(scenario, executor=replace(scenario.executor, cooldown=3600.0))
    # 24 plans 5 minutes apart: with a 1-hour cooldown each VE moves at 5 and 65 minutes
    assert summarise(replay(small, cool, _Flip())).migrations == 3 * 2
    free = replace(scenario, executor=replace(scenario.executor, cooldown=0.0))
    assert summarise(replay(small, free, _Flip())).switchovers == 3 * 24


def test_tuned_cloudsim_scenario_pairs_nodes_of_one_type() -> None:
    tuned = sc.load(CLOUDSIM.with_name("planetlab-800-null-tuned.toml"))
    assert tuned.memory == "cloudsim-null" and tuned.executor.max_parallel == 8
    cluster = tuned.cluster(1052)
    assert cluster.n_nodes == 800 and cluster.cpus[:4].tolist() == [3.72, 3.72, 5.32, 5.32]
    assert cluster.pairs[0] == cluster.pairs[1] and cluster.pairs[2] == cluster.pairs[3]
    assert (cluster.cpus == 3.72).sum() == (cluster.cpus == 5.32).sum() == 400
