"""Loading scenario files: sizes, defaults, rules, and errors that name the file and key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lbvm.config import BalanceConfig
from lbvm.errors import ConfigError, ParseError
from lbvm.scenario import load, parse_size, problem_from_dict, synthetic

GIB = 1024**3

BASE: dict[str, Any] = {
    "nodes": [
        {"name": "a1", "pair": "A", "capacity": {"cpu": 16, "mem": "64G"}},
        {"name": "a2", "pair": "A", "capacity": {"cpu": 16, "mem": "64G"}},
        {"name": "solo", "capacity": {"cpu": 8, "mem": 1024}},
    ],
    "ves": [
        {"id": "ve1", "node": "a1", "demand": {"cpu": 2, "mem": "8G"}, "disk": "1T"},
        {"id": "ve2", "node": "solo", "demand": {"cpu": 1, "mem": 512}, "pinned": True},
    ],
}


def write(tmp_path: Path, data: Any, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("text", "value"),
    [(5, 5.0), ("64G", 64 * GIB), ("1.5T", 1.5 * 1024**4), ("512MiB", 512 * 1024**2),
     ("100", 100.0), ("2 kb", 2048.0)],
)
def test_parse_size(text: Any, value: float) -> None:
    assert parse_size(text, "k") == value


@pytest.mark.parametrize("text", ["64X", "", "-1", -1, True, None, "G"])
def test_parse_size_rejects(text: Any) -> None:
    with pytest.raises(ConfigError, match=r"^k: "):
        parse_size(text, "k")


def test_load_builds_the_problem(tmp_path: Path) -> None:
    scenario = load(write(tmp_path, {**BASE, "name": "tiny"}))
    p = scenario.problem
    assert scenario.name == "tiny" and scenario.algorithm == "balance"
    assert scenario.expect is None
    assert p.nodes == ("a1", "a2", "solo") and p.ves == ("ve1", "ve2")
    assert p.resources == ("cpu", "mem")
    np.testing.assert_array_equal(p.capacity, [[16, 64 * GIB], [16, 64 * GIB], [8, 1024]])
    np.testing.assert_array_equal(p.pair, [0, 0, -1])
    np.testing.assert_array_equal(p.placement, [0, 2])
    np.testing.assert_array_equal(p.movable, [True, False])
    np.testing.assert_array_equal(p.move_cost, [[8 * GIB, 8 * GIB + 1024**4], [512, 512]])
    assert p.allowed.all() and not p.maintenance.any()
    defaults = BalanceConfig()
    assert p.settings.max_moves == defaults.max_moves
    np.testing.assert_array_equal(p.settings.max_utilisation,
                                  [defaults.max_utilisation[r] for r in ("cpu", "mem")])


def test_settings_and_rules(tmp_path: Path) -> None:
    data = {**BASE,
            "settings": {"max_utilisation": {"mem": 0.8}, "max_bytes": "10G",
                         "max_moves": None, "min_gain": 0.01},
            "rules": {"maintenance": ["a2"], "allowed": {"ve1": ["a1", "solo"]}}}
    p = load(write(tmp_path, data)).problem
    assert p.settings.max_utilisation[1] == 0.8
    assert p.settings.max_bytes == 10 * GIB and p.settings.max_moves is None
    np.testing.assert_array_equal(p.maintenance, [False, True, False])
    np.testing.assert_array_equal(p.allowed, [[True, False, True], [True, False, True]])


def test_profile_gives_demand(tmp_path: Path) -> None:
    data = {**BASE, "ves": [
        {"id": "p", "node": "a1", "profile": {"cpu": [1, 1, 1, 9], "mem": ["1G"] * 4}},
        {"id": "flat", "node": "a2", "demand": {"cpu": 2, "mem": "2G"}},
    ]}
    p = load(write(tmp_path, data)).problem
    assert p.profile is not None and p.profile.shape == (2, 4, 2)
    assert p.demand[0, 0] == pytest.approx(np.percentile([1, 1, 1, 9], 95))
    np.testing.assert_array_equal(p.profile[1], [[2, 2 * GIB]] * 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"nodes": "x"}, r"s\.json: nodes: must be a list"),
        ({"colour": 1}, r"s\.json: unknown key\(s\): colour"),
        ({"settings": {"max_moves": -1}}, r"settings\.max_moves: -1 is not a count"),
        ({"settings": {"weights": {"disk": 1}}}, r"settings\.weights: unknown resource"),
        ({"settings": {"speed": 1}}, r"unknown key\(s\) in settings: speed"),
        ({"rules": {"maintenance": ["zz"]}}, r"rules\.maintenance: unknown node 'zz'"),
        ({"rules": {"allowed": {"nope": ["a1"]}}}, r"rules\.allowed\.nope: unknown VE"),
        ({"expect": {"max_moves": "3"}}, r"expect\.max_moves: must be a whole number"),
        ({"expect": {"maybe": True}}, r"unknown key\(s\) in expect: maybe"),
    ],
)
def test_errors_name_the_file_and_key(tmp_path: Path, change: dict[str, Any],
                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, {**BASE, **change}))


@pytest.mark.parametrize(
    ("ve", "message"),
    [
        ({"id": "x", "node": "zz", "demand": {"cpu": 1, "mem": 1}},
         r"ves\[2\] \(x\)\.node: unknown node 'zz'"),
        ({"id": "x", "node": "a1", "demand": {"cpu": 1, "mem": "lots"}},
         r"ves\[2\] \(x\)\.demand\.mem: 'lots' is not a number or a size"),
        ({"id": "x", "node": "a1"}, r"ves\[2\] \(x\)\.demand: missing"),
        ({"id": "ve1", "node": "a1", "demand": {"cpu": 1, "mem": 1}},
         r"ves\[2\]\.id: VE 've1' appears twice"),
        ({"id": "x", "node": "a1", "demand": {"cpu": 1}}, r"\.demand: missing 'mem'"),
        ({"id": "x", "node": "a1", "demand": {"cpu": 1, "mem": 1}, "pinned": "yes"},
         r"\.pinned: must be true or false"),
    ],
)
def test_ve_errors(tmp_path: Path, ve: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, {**BASE, "ves": [*BASE["ves"], ve]}))


def test_pair_of_three_is_refused() -> None:
    nodes = [{"name": f"n{i}", "pair": "P", "capacity": {"cpu": 1, "mem": 1}} for i in range(3)]
    with pytest.raises(ConfigError, match="pair 'P' has more than two nodes"):
        problem_from_dict({"nodes": nodes})


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "nodes": [\n  ,\n]}')
    with pytest.raises(ParseError) as err:
        load(path)
    assert err.value.line == 3 and str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read scenario"):
        load(tmp_path / "nope.json")


def test_yaml_needs_pyyaml_or_loads(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("nodes: []\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="PyYAML"):
            load(path)
    else:
        assert load(path).problem.n_nodes == 0


def test_synthetic_is_seeded_and_skewed() -> None:
    a, b = synthetic(40, 800, 3), synthetic(40, 800, 3)
    np.testing.assert_array_equal(a.placement, b.placement)
    assert not np.array_equal(a.placement, synthetic(40, 800, 4).placement)
    u = a.utilisation()
    assert u[:, 1].std() > 0.1  # a fifth of the nodes near full memory
    assert a.n_nodes == 40 and set(np.bincount(a.pair)) == {2}
