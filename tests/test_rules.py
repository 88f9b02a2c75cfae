"""Placement rules of the live config: parsing, folding into a Problem, failcnt growth, and a
rebalancing cycle that honours an anti-affinity group."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from test_cycle import NOW, ingested, write_cluster, write_config

from algorithms import rules as algo_rules
from algorithms.base import Move, Plan, Problem, Settings
from lblog.sample import VeRow
from lbvm import cycle, model, rules
from lbvm.config import Config, GroupConfig, PairConfig, RuleConfig, load
from lbvm.errors import ConfigError
from lbvm.store.ingest import ingest
from lbvm.validate import validate

PAIRS_TOML = """
[[pairs]]
name = "pa"
nodes = ["a1", "a2"]

[[pairs]]
name = "pb"
nodes = ["b1", "b2"]
"""


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "lbvm.toml"
    path.write_text(PAIRS_TOML + text)
    return load(path)


# -- parsing -------------------------------------------------------------------------------


def test_rules_and_groups_load(tmp_path: Path) -> None:
    cfg = _load(tmp_path, """
[[rules]]
ves = ["101", "web-*"]
pairs = ["pa"]

[[rules]]
name = "db-near-b1"
ves = ["db-*"]
nodes = ["b1"]
kind = "should"

[[groups]]
name = "web"
kind = "anti-affinity"
ves = ["web-*"]
""")
    assert cfg.rules == (
        RuleConfig("rules[0]", ("101", "web-*"), (), ("pa",), "must"),
        RuleConfig("db-near-b1", ("db-*",), ("b1",), (), "should"),
    )
    assert cfg.groups == (GroupConfig("web", "anti-affinity", ("web-*",)),)


def test_rules_not_a_table_array(tmp_path: Path) -> None:
    (tmp_path / "lbvm.toml").write_text("rules = 3\n" + PAIRS_TOML)
    with pytest.raises(ConfigError, match="rules must be an array of tables"):
        load(tmp_path / "lbvm.toml")


def test_no_rules_by_default(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "")
    assert cfg.rules == () and cfg.groups == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[rules]]\nves = ['1']\n", r"rules\[0\] needs nodes"),
        ("[[rules]]\nnodes = ['a1']\n", r"rules\[0\]\.ves must name at least one VE"),
        ("[[rules]]\nves = '101'\nnodes = ['a1']\n", r"rules\[0\]\.ves must be a list"),
        ("[[rules]]\nves = ['1']\nnodes = ['a1']\nkind = 'may'\n",
         r"rules\[0\]\.kind: 'may' is not one of must, should"),
        ("[[rules]]\nves = ['1']\nnodes = ['a1']\n[[rules]]\nves = ['2']\nnodes = ['c9']\n",
         r"rules\[1\]\.nodes: 'c9' is in no \[\[pairs\]\]"),
        ("[[rules]]\nves = ['1']\npairs = ['pz']\n", r"rules\[0\]\.pairs: no pair is named 'pz'"),
        ("[[rules]]\nves = ['1']\nnodes = ['a1']\nhost = 'x'\n",
         r"rules\[0\]: unknown key\(s\) host"),
        ("[[pairs]]\nnodes = ['c1', 'c2']\nrules = []\n",
         r"unknown key\(s\) in pairs\[2\]: \['rules'\]"),
        ("[[groups]]\nkind = 'affinity'\nves = ['1']\n", r"groups\[0\]\.name"),
        ("[[groups]]\nname = 'g'\nkind = 'together'\nves = ['1']\n",
         r"groups\[0\]\.kind: 'together' is not one of affinity, anti-affinity"),
        ("[[groups]]\nname = 'g'\nkind = 'affinity'\nves = []\n",
         r"groups\[0\]\.ves must name at least one VE"),
        ("[[groups]]\nname = 'g'\nkind = 'affinity'\nves = ['1']\n"
         "[[groups]]\nname = 'g'\nkind = 'affinity'\nves = ['2']\n",
         r"groups\[1\]\.name: group 'g' is defined twice"),
    ],
)
def test_bad_rules_name_the_entry(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


# -- apply on a small Problem -------------------------------------------------------------

NODES = ("a1", "a2", "b1", "b2")
VES = ("101", "102", "web-1", "web-2", "db-1")


def small_problem() -> Problem:
    n, v = len(NODES), len(VES)
    allowed = np.ones((v, n), dtype=bool)
    allowed[:, 3] = False  # b2 in maintenance
    return Problem(
        ves=VES, nodes=NODES, resources=("cpu", "mem"),
        demand=np.ones((v, 2)), capacity=np.full((n, 2), 10.0),
        placement=np.array([0, 0, 1, 2, 2]), pair=np.array([0, 0, 1, 1]),
        movable=np.ones(v, dtype=bool), allowed=allowed, move_cost=np.ones((v, 2)),
        settings=Settings(np.full(2, 0.9), np.ones(2), np.ones(2)),
        maintenance=np.array([False, False, False, True]),
    )


def config_with(rules_: tuple[RuleConfig, ...] = (), groups: tuple[GroupConfig, ...] = ()
                ) -> Config:
    pairs = (PairConfig("pa", ("a1", "a2")), PairConfig("pb", ("b1", "b2")))
    return Config(pairs=pairs, rules=rules_, groups=groups)


def test_must_rule_blocks_targets_and_keeps_maintenance() -> None:
    cfg = config_with((RuleConfig("web-on-b", ("web-*",), (), ("pb",)),))
    out = rules.apply(small_problem(), cfg)
    assert out.allowed[:2].tolist() == [[True, True, True, False]] * 2  # untouched
    # web-* may only go to pair pb; b2 stays closed for maintenance
    assert out.allowed[2:4].tolist() == [[False, False, True, False]] * 2
    assert out.preferred is None and out.affinity is None and out.anti_affinity is None
    assert not algo_rules.targets_allowed(out)[2, 0]


def test_must_rules_intersect_and_an_empty_result_names_them() -> None:
    both = (RuleConfig("r1", ("10*",), ("a1", "b1")), RuleConfig("r2", ("101",), ("b1", "a2")))
    out = rules.apply(small_problem(), config_with(both))
    assert out.allowed[0].tolist() == [False, False, True, False]
    assert out.allowed[1].tolist() == [True, False, True, False]
    clash = (RuleConfig("r1", ("101",), ("a1",)), RuleConfig("r2", ("1*",), ("b1",)))
    with pytest.raises(ConfigError, match="VE 101: must rules r1, r2 leave it no node"):
        rules.apply(small_problem(), config_with(clash))


def test_should_rule_sets_preferred_only() -> None:
    cfg = config_with((RuleConfig("db-pref", ("db-*",), ("a2",), (), "should"),
                       RuleConfig("db-pref2", ("db-1",), ("b1",), (), "should")))
    problem = small_problem()
    out = rules.apply(problem, cfg)
    assert out.preferred is not None
    assert out.preferred[4].tolist() == [False, True, True, False]
    assert not out.preferred[:4].any()
    assert np.array_equal(out.allowed, problem.allowed)


def test_groups_become_ids_in_config_order() -> None:
    cfg = config_with(groups=(
        GroupConfig("web", "anti-affinity", ("web-*",)),
        GroupConfig("pair", "affinity", ("101", "102")),
        GroupConfig("db", "anti-affinity", ("db-1", "102")),
    ))
    out = rules.apply(small_problem(), cfg)
    assert out.anti_affinity is not None and out.affinity is not None
    assert out.anti_affinity.tolist() == [-1, 1, 0, 0, 1]
    assert out.affinity.tolist() == [0, 0, -1, -1, -1]


def test_a_ve_in_two_groups_of_one_kind_is_an_error() -> None:
    cfg = config_with(groups=(GroupConfig("g1", "affinity", ("web-*",)),
                              GroupConfig("g2", "affinity", ("web-2",))))
    with pytest.raises(ConfigError, match="VE web-2 is in affinity groups g1 and g2"):
        rules.apply(small_problem(), cfg)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (RuleConfig("mine", ("101",), ("zz",)), "rule mine: unknown node 'zz'"),
        (RuleConfig("mine", ("101",), (), ("pz",)), "rule mine: unknown pair 'pz'"),
    ],
)
def test_unknown_names_in_apply_name_the_rule(rule: RuleConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rules.apply(small_problem(), config_with((rule,)))


def test_unmatched_rule_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    cfg = config_with((RuleConfig("ghost", ("999*",), ("a1",)),),
                      (GroupConfig("nobody", "affinity", ("x-*",)),))
    problem = small_problem()
    out = rules.apply(problem, cfg)
    assert np.array_equal(out.allowed, problem.allowed) and out.affinity is None
    assert "rule ghost matches no VE" in caplog.text
    assert "group nobody matches no VE" in caplog.text


def test_glob_is_case_sensitive_and_whole_name() -> None:
    assert rules.matching(["web-*"], ["web-1", "WEB-2", "xweb-3"]).tolist() == [
        True, False, False]
    assert rules.matching(["1?1", "db-[12]"], ["101", "1011", "db-2", "db-3"]).tolist() == [
        True, False, True, False]
    # plain ids, prefixes and other globs mixed in one rule
    assert rules.matching(["x*", "x?", "7"], ["x", "xy", "7", "77", "y"]).tolist() == [
        True, True, True, False, False]
    assert rules.matching(["a?", "a*b"], ["a", "ab", "axxb", "abc"]).tolist() == [
        False, True, True, False]
    assert rules.matching(["*"], []).tolist() == []


def test_failcnt_is_checked_and_stored() -> None:
    problem = small_problem()
    out = rules.apply(problem, Config(), failcnt=np.arange(5))
    assert out.failcnt is not None and out.failcnt.tolist() == [0, 1, 2, 3, 4]
    assert rules.apply(problem, Config()) is problem
    with pytest.raises(ValueError, match="failcnt has shape"):
        rules.apply(problem, Config(), failcnt=np.zeros(3))


# -- failcnt growth from the store ----------------------------------------------------------


T0 = NOW - 3600


def test_failcnt_growth(store: Engine, write_sample: Callable[..., Path],
                        spool_dir: Path) -> None:
    # a: steady growth; b: a reset (restart) in the middle; c: no counters; the first
    # sample is at the window's start and does not count.
    series: dict[str, list[int | None]] = {
        "a": [100, 0, 5, 5, 12],
        "b": [0, 10, 20, 3, 7],
        "c": [None] * 5,
    }
    for step in range(5):
        rows = [VeRow(ve, cpu_raw=step * 100, failcnt=vals[step]) for ve, vals in series.items()]
        write_sample("n1", T0 + 300.0 * step, rows)
    report = ingest(store, spool_dir)
    assert report.quarantined == 0 and report.files == 5
    got = rules.failcnt_growth(store, ["c", "nobody", "b", "a"], start=T0, end=T0 + 1200)
    assert got.dtype == np.float64
    assert got.tolist() == [0.0, 0.0, 10 + 3 + 4, 12.0]
    # a narrower window sees only its own samples
    assert rules.failcnt_growth(store, ["a", "b"], T0 + 300, T0 + 900).tolist() == [0.0, 3.0]


# -- end to end: an anti-affinity group through a rebalancing cycle ------------------------


@pytest.fixture
def anti_config(tmp_path: Path) -> Config:
    path = write_config(tmp_path)
    # 101 and 104 both start on vz1a: the rule is broken until one leaves pair1.
    path.write_text(path.read_text()
                    + '\n[[groups]]\nname = "db"\nkind = "anti-affinity"\nves = ["10[14]"]\n')
    cfg = load(path)
    write_cluster(cfg.spool)
    return cfg


@pytest.fixture
def anti_engine(anti_config: Config) -> Iterator[Engine]:
    yield from ingested(anti_config)


def test_cycle_keeps_anti_affinity_group_on_different_pairs(
    anti_engine: Engine, anti_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = model.build_problem
    if original(anti_engine, anti_config, now=NOW).anti_affinity is None:  # not wired yet

        def build(engine: Engine, config: Config, *, now: float | None = None) -> Problem:
            return rules.apply(original(engine, config, now=now), config)

        monkeypatch.setattr(cycle, "build_problem", build)
    result = cycle.run_cycle(anti_engine, anti_config, execute=True, now=NOW)
    problem = result.problem
    assert problem.anti_affinity is not None
    group = [problem.ves.index("101"), problem.ves.index("104")]
    assert problem.anti_affinity[group].tolist() == [0, 0]
    assert result.status == "done" and result.valid
    where = {v: problem.nodes[int(problem.placement[problem.ves.index(v)])] for v in problem.ves}
    where.update({r.move.ve: r.move.dst for r in result.results if r.state == "done"})
    pair_of = anti_config.pair_of()
    assert pair_of[where["101"]] != pair_of[where["104"]]
    assert any(m.ve in ("101", "104") for m in result.plan.moves), "one had to leave pair1"
    # the validator sees the group too: both into pair2 is refused
    both = Plan("manual", (Move("101", "vz1a", "vz2a", "migrate"),
                           Move("104", "vz1a", "vz2b", "migrate")), 0.0, 0.0)
    assert any("anti-affinity" in r for r in validate(problem, both))
