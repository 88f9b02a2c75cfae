"""The fake /proc writer: byte-for-byte kernel layouts, and write_node -> collect round trip."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lblog.collect import collect
from lblog.openvz import parse_beancounters, parse_vestat
from lbvm import fakeproc
from lbvm.fakeproc import FakeVe, write_node

FIXTURES = Path(__file__).parent / "fixtures"


def blocks_of(text: str) -> list[tuple[str, list[fakeproc.Row]]]:
    """The (uid, rows) blocks of a captured beancounters file, dummy rows included."""
    blocks: list[tuple[str, list[fakeproc.Row]]] = []
    for line in text.split("\n")[2:]:
        parts = line.split()
        if len(parts) == 7:
            blocks.append((parts[0].rstrip(":"), []))
            parts = parts[1:]
        if parts:
            name, *values = parts
            blocks[-1][1].append((name, *map(int, values)))  # type: ignore[arg-type]
    return blocks


@pytest.mark.parametrize(
    ("name", "bits"),
    [
        ("user_beancounters.64bit-ct-with-limits.scout_plugins.txt", 64),
        ("user_beancounters.64bit-unlimited-ct.blipp_test.txt", 64),
        ("proc_bc_resources.32bit-multi-ct-failcnt.vz_tools.txt", 32),
    ],
)
def test_beancounter_layout_matches_captures(name, bits):
    text = (FIXTURES / name).read_text()
    assert fakeproc.format_beancounters(blocks_of(text), bits) == text


def test_vestat_layout_matches_capture_32bit():
    text = (FIXTURES / "vestat.vz_tools-v2.2.txt").read_text()
    rows = [line.split() for line in text.split("\n")[2:] if line]
    assert fakeproc.format_vestat(rows, bits=32) == text


def test_vestat_64bit_line_width():
    text = fakeproc.format_vestat([fakeproc.vestat_values(FakeVe("7", 10, 1.0, 0, None))])
    assert {len(line) for line in text.split("\n")[:-1]} == {12 * 21 - 1}


VES = [
    FakeVe("101", 123_456, 3600.0, 512 << 20, 1 << 30, failcnt=3, disk_bytes=5 << 30,
           disk_limit_bytes=20 << 30),
    FakeVe("102", 7, 12.5, 64 << 20, None),
    FakeVe("4c1f2a9e-5b7d-4e3a", 99, 60.0, 4096, 8 << 20, disk_bytes=0),
]  # fmt: skip


@pytest.mark.parametrize("bits", [64, 32])
def test_round_trip(tmp_path, bits):
    write_node(tmp_path, ves=VES, cpus=16, mem_bytes=64 << 30, busy_jiffies=987_654,
               idle_jiffies=12_345_678, load=(3.5, 2.25, 1.0), bits=bits,
               mem_available_bytes=40 << 30)  # fmt: skip
    sample = collect(tmp_path, "fake1", now=1.0, private_path=None)
    assert sample.cpu_hz == fakeproc.HZ
    got = {ve.ve: ve for ve in sample.ves}
    assert list(got) == ["101", "102", "4c1f2a9e-5b7d-4e3a"]
    for ve in VES:
        row = got[ve.ve]
        assert row.cpu_raw == ve.cpu_jiffies
        assert row.uptime == ve.uptime_s
        assert row.mem_bytes == ve.mem_bytes
        assert row.mem_limit_bytes == ve.mem_limit_bytes
        assert row.failcnt == ve.failcnt
        assert row.disk_bytes == ve.disk_bytes
        assert row.disk_limit_bytes == ve.disk_limit_bytes
        assert len(row.beancounters) == 20
    t = sample.totals
    assert (t.cpus, t.cpu_busy_raw, t.cpu_idle_raw) == (16, 987_654, 12_345_678)
    assert (t.mem_total_bytes, t.mem_available_bytes) == (64 << 30, 40 << 30)
    assert (t.load1, t.load5, t.load15) == (3.5, 2.25, 1.0)


def test_written_files_parse_with_the_agent(tmp_path):
    write_node(tmp_path, ves=VES, cpus=2, mem_bytes=8 << 30, busy_jiffies=10, idle_jiffies=20,
               load=(0.0, 0.0, 0.0))  # fmt: skip
    proc = tmp_path / "proc"
    ubc = parse_beancounters((proc / "user_beancounters").read_text(), "ubc")
    assert "0" not in ubc and len(ubc) == 3  # the host block is written, and left out
    assert parse_vestat((proc / "vz/vestat").read_text(), "vestat")["102"].cpu == 7


def test_bad_arguments():
    with pytest.raises(ValueError, match="bits"):
        write_node(Path("/nonexistent"), ves=[], cpus=1, mem_bytes=1, busy_jiffies=0,
                   idle_jiffies=0, load=(0, 0, 0), bits=16)  # fmt: skip


FAKE_VES = st.lists(
    st.builds(
        FakeVe,
        ve=st.integers(1, 2**31 - 1).map(str),
        cpu_jiffies=st.integers(0, 2**50),
        uptime_s=st.integers(0, 10**9).map(lambda ms: ms / 1000),
        mem_bytes=st.integers(0, 2**40).map(lambda b: b // 4096 * 4096),
        mem_limit_bytes=st.one_of(st.none(), st.integers(1, 2**40).map(lambda b: b * 4096)),
        failcnt=st.integers(0, 2**40),
        disk_bytes=st.one_of(st.none(), st.integers(0, 2**40).map(lambda b: b * 1024)),  # <= 1 PiB
        disk_limit_bytes=st.one_of(st.none(), st.integers(1, 2**40).map(lambda b: b * 1024)),
    ),
    max_size=8,
    unique_by=lambda ve: ve.ve,
)


@settings(max_examples=40, deadline=None)
@given(ves=FAKE_VES, bits=st.sampled_from([32, 64]))
def test_round_trip_property(ves, bits):
    with tempfile.TemporaryDirectory() as tmp:
        write_node(Path(tmp), ves=ves, cpus=3, mem_bytes=1 << 40, busy_jiffies=5,
                   idle_jiffies=7, load=(0.0, 0.5, 1.0), bits=bits)  # fmt: skip
        sample = collect(Path(tmp), "n", now=0.0, private_path=None)
    got = {row.ve: row for row in sample.ves}
    assert sorted(got, key=int) == [row.ve for row in sample.ves]
    for ve in ves:
        row = got[ve.ve]
        limit = ve.mem_limit_bytes
        if limit is not None and limit // 4096 in (2**31 - 1, 2**63 - 1):
            limit = None  # that many pages is how the kernel spells "unlimited"
        assert (row.cpu_raw, row.uptime, row.mem_bytes, row.failcnt) == (
            ve.cpu_jiffies, ve.uptime_s, ve.mem_bytes, ve.failcnt)  # fmt: skip
        assert row.mem_limit_bytes == limit
        assert row.disk_bytes == ve.disk_bytes
        if ve.disk_bytes is not None:
            disk_limit = ve.disk_limit_bytes
            if disk_limit is not None and disk_limit // 1024 == 2**31 - 1:
                disk_limit = None  # INT_MAX blocks: "unlimited" too
            assert row.disk_limit_bytes == disk_limit
