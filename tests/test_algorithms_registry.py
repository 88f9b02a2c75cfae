"""The registry finds algorithms through entry points, loads them lazily and checks them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from algorithms import registry
from algorithms.balance import Balance
from algorithms.base import Algorithm
from algorithms.errors import BadAlgorithm, UnknownAlgorithm

PLUGIN = '''
from algorithms.base import Plan

class Good:
    name = "good"
    summary = "does nothing, politely"
    def plan(self, problem):
        return Plan(self.name, (), problem.score(), problem.score())

class NoSummary:
    name = "nosummary"
    def plan(self, problem):
        raise AssertionError

class Exploding:
    name = "exploding"
    summary = "fails when created"
    def __init__(self):
        raise RuntimeError("no licence")
    def plan(self, problem):
        raise AssertionError

not_a_class = 42
'''

ENTRY_POINTS = """[lbvm.algorithms]
good = lbvm_test_plugin:Good
nosummary = lbvm_test_plugin:NoSummary
exploding = lbvm_test_plugin:Exploding
notaclass = lbvm_test_plugin:not_a_class
missing = lbvm_test_plugin_absent:Thing
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party distribution registering five algorithms, found on sys.path."""
    (tmp_path / "lbvm_test_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "lbvm_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lbvm-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lbvm_test_plugin", raising=False)


def test_builtin_balance_is_registered() -> None:
    found = registry.available()
    assert "balance" in found
    assert found["balance"].value == "algorithms.balance:Balance"
    algorithm = registry.load("balance")
    assert isinstance(algorithm, Balance)
    assert isinstance(algorithm, Algorithm)
    assert ("balance", Balance.summary) in registry.describe()


def test_unknown_name_lists_the_available_ones() -> None:
    with pytest.raises(UnknownAlgorithm) as err:
        registry.load("simulated-annealing")
    assert "'simulated-annealing'" in str(err.value)
    assert "balance" in str(err.value)
    assert "balance" in err.value.available
    assert isinstance(err.value, LookupError)


def test_available_does_not_import(plugins: None) -> None:
    assert {"good", "missing", "balance"} <= set(registry.available())
    assert "lbvm_test_plugin" not in sys.modules


def test_third_party_plugin_loads(plugins: None) -> None:
    algorithm = registry.load("good")
    assert algorithm.name == "good"
    assert ("good", "does nothing, politely") in registry.describe()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nosummary", "'summary' must be a string"),
        ("exploding", "cannot be created: no licence"),
        ("notaclass", "is a int, not a class"),
        ("missing", "cannot be loaded"),
    ],
)
def test_bad_plugins_fail_by_name(plugins: None, name: str, message: str) -> None:
    with pytest.raises(BadAlgorithm) as err:
        registry.load(name)
    assert f"algorithm {name!r}" in str(err.value)
    assert message in str(err.value)


def test_describe_survives_a_broken_plugin(plugins: None) -> None:
    summaries = dict(registry.describe())
    assert summaries["missing"].startswith("unavailable: ")
    assert summaries["balance"] == Balance.summary
