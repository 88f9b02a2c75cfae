"""The spool writer after its speed-ups: same document, own temp names, the written key."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from lblog import spool
from lblog.sample import NodeTotals, Sample, VeRow

TOTALS = NodeTotals(8, 1, 2, 3 << 30, 1 << 30, 0.5, 0.25, 0.125, None, 7)


def sample(n: int = 3) -> Sample:
    ves = tuple(
        VeRow(str(100 + i), cpu_raw=i, uptime=1.5, mem_bytes=None, failcnt=i,
              beancounters={"numproc": (i, i, 9, 9, 0), "kmemsize": (1, 2, 3, 4, 5)})
        for i in range(n)
    )  # fmt: skip
    return Sample("node1", 1_700_000_000.25, "openvz", 1000, 100, TOTALS, ves)


def test_document_is_plain_json_of_the_sample() -> None:
    doc = json.loads(spool.encode(sample(), written=1_700_000_001.5))
    assert doc["totals"] == {
        "cpus": 8, "cpu_busy_raw": 1, "cpu_idle_raw": 2, "mem_total_bytes": 3 << 30,
        "mem_available_bytes": 1 << 30, "load1": 0.5, "load5": 0.25, "load15": 0.125,
        "disk_total_bytes": None, "disk_free_bytes": 7,
    }  # fmt: skip
    assert doc["rows"][1] == ["101", 1, 1.5, None, None, None, None, None, 1]
    assert doc["beancounters"]["102"] == {"numproc": [2, 2, 9, 9, 0], "kmemsize": [1, 2, 3, 4, 5]}
    assert doc["written"] == 1_700_000_001.5
    assert spool.to_sample(doc) == sample()
    assert "written" not in json.loads(spool.encode(sample()))


def test_write_stamps_written_and_clears_a_stale_temp_file(tmp_path: Path) -> None:
    s = sample()
    folder = spool.node_dir(tmp_path, s.node)
    folder.mkdir(parents=True)
    stale = folder / f".{spool.file_name(s)}.{os.getpid()}.tmp"
    stale.write_bytes(b"half a file from a killed run with our pid")
    before = time.time()
    path = spool.write(tmp_path, s)
    assert sorted(p.name for p in folder.iterdir()) == [path.name]
    assert before <= json.loads(path.read_bytes())["written"] <= time.time()


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", refuse)  # whichever the writer uses
    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="No space"):
        spool.write(tmp_path, sample())
    assert list(spool.node_dir(tmp_path, "node1").iterdir()) == []
