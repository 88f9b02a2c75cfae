"""The spool format: round trip, atomic write, and strict errors naming file and key."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lblog import spool
from lblog.errors import ParseError, SpoolError
from lblog.sample import NodeTotals, Sample, VeRow

TOTALS = NodeTotals(
    cpus=4,
    cpu_busy_raw=1000,
    cpu_idle_raw=9000,
    mem_total_bytes=8 << 30,
    mem_available_bytes=4 << 30,
    load1=0.5,
    load5=0.4,
    load15=0.3,
)


def sample(node: str = "n1", t: float = 1_700_000_000.25) -> Sample:
    ves = (
        VeRow("101", cpu_raw=500, uptime=10.0, mem_bytes=1 << 20, failcnt=0,
              beancounters={"numproc": (3, 5, 100, 100, 0)}),
        VeRow("web-a7f3", cpu_raw=None, mem_bytes=2 << 20),
    )
    return Sample(node, t, "openvz", 100, 100, TOTALS, ves)


def test_round_trip(tmp_path: Path) -> None:
    path = spool.write(tmp_path, sample())
    assert path.parent == tmp_path / "incoming" / "n1"
    assert path.name == "n1-20231114T221320.250000Z.json"
    again = spool.to_sample(spool.read(path))
    assert again == sample()


def test_no_temp_file_left_and_hidden_prefix(tmp_path: Path) -> None:
    spool.write(tmp_path, sample())
    names = os.listdir(tmp_path / "incoming" / "n1")
    assert len(names) == 1 and not names[0].startswith(".")


@pytest.mark.parametrize("bad", ["../etc", "a/b", "", ".hidden", "n1 x"])
def test_node_names_are_checked(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SpoolError, match="invalid node name"):
        spool.write(tmp_path, sample(node=bad))


def test_truncated_file_names_path(tmp_path: Path) -> None:
    data = spool.encode(sample())
    with pytest.raises(ParseError) as err:
        spool.decode(data[: len(data) // 2], tmp_path / "x.json")
    assert str(tmp_path / "x.json") in str(err.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(format="other"), "not an lbvm-spool"),
        (lambda d: d.update(version=99), "unsupported spool version"),
        (lambda d: d.pop("node"), "'node'"),
        (lambda d: d.update(time="yesterday"), "'time'"),
        (lambda d: d["rows"].append([1]), r"rows\[2\]"),
        (lambda d: d.update(columns=["x"] * 9), "lacks 've'"),
    ],
)
def test_bad_documents(mutate, message: str) -> None:
    doc = json.loads(spool.encode(sample()))
    mutate(doc)
    with pytest.raises(ParseError, match=message):
        spool.decode(json.dumps(doc).encode(), "f.json")
