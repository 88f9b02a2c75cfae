"""What ingest's worker processes make of a chunk of files (lbvm.store.parse), and the
integer codes of names (lbvm.store.names): one bad value quarantines its file only, with
the column named; missing values stay missing; chunks merge with their positions."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sample

from lblog import spool
from lblog.sample import VeRow
from lbvm.store import parse
from lbvm.store.names import Names
from lbvm.store.parse import merge, parse_files


def write(folder: Path, name: str, data: bytes) -> tuple[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return "n1", str(folder / name)


def sample(t: float, ves: list[VeRow]) -> bytes:
    return spool.encode(make_sample("n1", t, ves), time.time())


def test_a_bad_value_quarantines_its_file_only(tmp_path: Path) -> None:
    good = sample(1000, [VeRow("101", cpu_raw=1, uptime=5.0), VeRow("102", cpu_raw=2)])
    chunk = [write(tmp_path, "a.json", good)]
    for name, bad in [
        ("bool.json", b'"rows":[["101",true,'),
        ("float.json", b'"rows":[["101",1.5,'),
        ("big.json", b'"rows":[["101",99999999999999999999,'),
    ]:
        chunk.append(write(tmp_path, name, good.replace(b'"rows":[["101",1,', bad)))
    chunk.append(write(tmp_path, "up.json", good.replace(b"5.0,", b'"x",')))
    chunk.append(write(tmp_path, "z.json", sample(1300, [VeRow("101", cpu_raw=9)])))
    p = parse_files(chunk)
    assert p.ok.tolist() == [0, 5] and p.ve == ["101", "102", "101"]
    reasons = dict(p.bad)
    assert sorted(reasons) == [1, 2, 3, 4]
    assert all("column 'cpu_raw'" in reasons[i] for i in (1, 2, 3))
    assert "column 'uptime'" in reasons[4] and "bool" in reasons[1]
    assert p.ints["cpu_raw"].values.tolist() == [1, 2, 9]
    assert p.uptime.known.tolist() == [True, False, False]
    assert p.ints["mem_bytes"].known.tolist() == [False, False, False]


def test_merge_shifts_positions(tmp_path: Path) -> None:
    first = [write(tmp_path, f"{t}.json", sample(t, [VeRow("7", cpu_raw=t)])) for t in (1, 2)]
    second = [write(tmp_path, "bad.json", b"{"), write(tmp_path, "3.json", sample(3, []))]
    p = merge([parse_files(first), parse_files(second)], [2, 2])
    assert p.ok.tolist() == [0, 1, 3] and [i for i, _ in p.bad] == [2]
    assert p.counts.tolist() == [1, 1, 0] and p.time.tolist() == [1.0, 2.0, 3.0]
    assert p.ints["cpu_raw"].values.tolist() == [1, 2]


def test_names_keep_their_codes_and_bytes() -> None:
    names = Names()
    assert names.encode(["b", "ä", "b"]).tolist() == [0, 1, 0]
    assert names.encode(["a", "ä"]).tolist() == [2, 1]
    assert names.rank().tolist() == [1, 2, 0]  # a < b < ä
    assert names.size.tolist() == [1, 2, 1]
    start, size = names.start[1], names.size[1]
    assert bytes(names.blob[start : start + size]).decode() == "ä"
    assert np.array_equal(names.objects(), np.array(["b", "ä", "a"], dtype=object))


def test_without_orjson_the_same_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = sample(1000, [VeRow("101", cpu_raw=1, uptime=5.0), VeRow("102", cpu_raw=2)])
    chunk = [write(tmp_path, "a.json", good),
             write(tmp_path, "nan.json", good.replace(b"5.0,", b"NaN,")),
             write(tmp_path, "cut.json", good[:50])]  # fmt: skip
    fast = parse_files(chunk)
    monkeypatch.setattr(parse, "orjson", None)
    slow = parse_files(chunk)
    assert fast.ok.tolist() == slow.ok.tolist() == [0]
    assert fast.bad == slow.bad
    assert "column 'uptime'" in dict(slow.bad)[1] and "not a complete" in dict(slow.bad)[2]
    assert fast.ve == slow.ve
    np.testing.assert_array_equal(fast.uptime.values, slow.uptime.values)
