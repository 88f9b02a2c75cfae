"""[balance] profile keys and [consolidate]: parsed, validated, and fed to the Settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from algorithms.base import Plan, Settings
from lbvm import scenario
from lbvm.config import Config, ConsolidateConfig, load
from lbvm.errors import ConfigError
from lbvm.model import settings_from

ROOT = Path(__file__).resolve().parents[1]


def test_example_shows_the_defaults() -> None:
    cfg = load(ROOT / "share" / "lbvm.toml.example")
    assert cfg.consolidate == Config().consolidate == ConsolidateConfig()
    assert (cfg.balance.profile, cfg.balance.profile_window) == ("auto", 86400.0)
    assert cfg.balance.profile_steps == 24
    # the defaults are the algorithms' own, so plans without a config stay the same
    s = settings_from(cfg.balance, consolidate=cfg.consolidate)
    base = Settings(s.max_utilisation, s.failover_overcommit, s.weights)
    assert (s.quantile, s.pair_quantile, s.headroom, s.inflow) == (
        base.quantile, base.pair_quantile, base.headroom, base.inflow) == (0.9, 0.99, 0.9, 12)


def test_keys_reach_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "lbvm.toml"
    path.write_text('[balance]\nprofile = "hourly"\nprofile_window = "2d"\n\n'
                    "[consolidate]\nquantile = 0.8\npair_quantile = 1\nheadroom = 0.75\n"
                    "inflow = 3\n")
    cfg = load(path)
    assert cfg.balance.profile_steps == 48 and cfg.balance.wants_profile("balance")
    s = settings_from(cfg.balance, consolidate=cfg.consolidate)
    assert (s.quantile, s.pair_quantile, s.headroom, s.inflow) == (0.8, 1.0, 0.75, 3)
    assert isinstance(s.inflow, int)


def test_auto_profile_only_for_time_aware_algorithms() -> None:
    balance = Config().balance
    assert not balance.wants_profile()  # the default algorithm is balance
    assert balance.wants_profile("peak") and balance.wants_profile("consolidate")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[balance]\nprofile = "daily"', r"lbvm.toml: \[balance\].profile: 'daily' is not one"),
        ('[balance]\nprofile_window = "30m"', r"lbvm.toml: \[balance\].profile_window: 1800s"),
        ('[balance]\nprofile_window = "8d"', r"\[balance\].profile_window: .* between 1h and 7d"),
        ('[balance]\nprofile_window = "soon"', r"profile_window: 'soon' is not a duration"),
        ("[consolidate]\nquantile = 1.5", r"lbvm.toml: \[consolidate\].quantile: 1.5 is not"),
        ("[consolidate]\nheadroom = 0", r"\[consolidate\].headroom: 0 is not a number in"),
        ('[consolidate]\npair_quantile = "high"', r"\[consolidate\].pair_quantile: 'high'"),
        ("[consolidate]\ninflow = 0", r"\[consolidate\].inflow: 0 is not a whole number"),
        ("[consolidate]\ninflow = 2.5", r"\[consolidate\].inflow: 2.5 is not a whole number"),
        ("[consolidate]\nspeed = 1", r"\[consolidate\]: unknown key\(s\) speed"),
        ("consolidate = 3", r"\[consolidate\] must be a table"),
    ],
)
def test_bad_values_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "lbvm.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load(path)


def _scenario(tmp_path: Path, settings: dict[str, object]) -> Path:
    path = tmp_path / "s.json"
    path.write_text(json.dumps({
        "algorithm": "consolidate", "settings": settings,
        "nodes": [{"name": "a", "pair": "p", "capacity": {"cpu": 8, "mem": "16G"}},
                  {"name": "b", "pair": "p", "capacity": {"cpu": 8, "mem": "16G"}}],
        "ves": [{"id": "1", "node": "a", "demand": {"cpu": 1, "mem": "1G"}}],
    }))
    return path


def test_scenario_settings(tmp_path: Path) -> None:
    s = scenario.load(_scenario(tmp_path, {})).problem.settings
    assert (s.quantile, s.pair_quantile, s.headroom, s.inflow) == (0.9, 0.99, 0.9, 12)
    s = scenario.load(_scenario(tmp_path, {"headroom": 0.5, "inflow": 2})).problem.settings
    assert (s.headroom, s.inflow) == (0.5, 2)
    with pytest.raises(ConfigError, match=r"s.json: settings.quantile: 0 is not a number in"):
        scenario.load(_scenario(tmp_path, {"quantile": 0}))


def test_consolidate_follows_inflow_and_headroom() -> None:
    from collections import Counter
    from dataclasses import replace

    from algorithms.consolidate import Consolidate

    problem = scenario.synthetic(20, 200, seed=3)
    problem = replace(problem, settings=replace(problem.settings, max_moves=None))
    def packing(plan: Plan) -> Counter[str]:  # moves into each node that empty a unit
        return Counter(m.dst for m in plan.moves if "to power it down" in m.reason)

    free = Consolidate().plan(problem)
    assert max(packing(free).values()) > 1
    one = Consolidate().plan(replace(problem, settings=replace(problem.settings, inflow=1)))
    assert max(packing(one).values(), default=0) <= 1  # here: pair n6+n7 no longer empties
    assert sum(packing(one).values()) < sum(packing(free).values())
    tight = Consolidate().plan(replace(problem, settings=replace(problem.settings,
                                                                 headroom=0.3)))
    assert len(tight.moves) < len(free.moves)
