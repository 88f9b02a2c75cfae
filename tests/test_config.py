"""The typed config: the example in share/ loads, defaults are declared once, errors name keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lbvm.config import Config, load, parse_duration
from lbvm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_example_config_loads() -> None:
    cfg = load(ROOT / "share" / "lbvm.toml.example")
    assert [p.nodes for p in cfg.pairs] == [("node1", "node2"), ("node3", "node4")]
    assert cfg.pair_of()["node4"] == "pair2"
    assert cfg.balance.window == 86400
    assert cfg.balance.stale_after == 900
    assert cfg.executor.command == ("vzmigrate", "--online", "{dst}", "{ve}")
    # The example shows the defaults: every value equals the built-in one.
    assert cfg.balance == Config().balance
    assert cfg.executor == Config().executor
    assert cfg.monitor == Config().monitor
    for name in ("store", "ha", "switchover", "rolling"):
        assert getattr(cfg, name) == getattr(Config(), name)


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    (tmp_path / "lbvm.toml").write_text('database = "sqlite:///x.db"\nspool = "sp"\n')
    cfg = load(tmp_path)
    assert cfg.database == f"sqlite:///{tmp_path.resolve()}/x.db"
    assert cfg.spool == tmp_path.resolve() / "sp"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 1", "unknown key"),
        ("[balance]\nwindo = '1h'", r"unknown key\(s\) in \[balance\]: windo"),
        ("[balance]\nwindow = 'soon'", "not a duration"),
        ("[balance]\nmax_utilisation = { disk = 1 }", "max_utilisation"),
        ("[[pairs]]\nnodes = ['a']", "exactly two"),
        ("[[pairs]]\nnodes = ['a','b']\n[[pairs]]\nnodes = ['b','c']", "more than one pair"),
        ("[executor]\ncommand = 'vzmigrate {ve}'", "list of strings"),
        ("database = ", "lbvm.toml"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "lbvm.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load(tmp_path / "lbvm.toml")


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load("/nonexistent/lbvm.toml")


@pytest.mark.parametrize(("text", "secs"), [("90s", 90), ("5m", 300), ("24h", 86400), (7, 7)])
def test_durations(text: str | int, secs: float) -> None:
    assert parse_duration(text) == secs


def test_example_rules_load_when_uncommented(tmp_path: Path) -> None:
    text = (ROOT / "share" / "lbvm.toml.example").read_text()
    head, _, examples = text.partition("\n# [[rules]]")
    assert examples, "the example config shows [[rules]]"
    tail = "\n".join(
        line[2:] if re.match(r"# (\[\[|[a-z]+ = )", line) else line
        for line in ("# [[rules]]" + examples).splitlines()
    )
    (tmp_path / "lbvm.toml").write_text(head + "\n" + tail)
    cfg = load(tmp_path / "lbvm.toml")
    assert [(r.name, r.kind, r.pairs, r.nodes) for r in cfg.rules] == [
        ("licensed-on-pair1", "must", ("pair1",), ()),
        ("rules[1]", "should", (), ("node3",)),
    ]
    assert [(g.name, g.kind, g.ves) for g in cfg.groups] == [
        ("db", "anti-affinity", ("db-1", "db-2"))]
