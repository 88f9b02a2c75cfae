"""Node totals: /proc/stat, /proc/meminfo, /proc/loadavg and the VE filesystem."""

from __future__ import annotations

import os

import pytest

from lblog import nodeinfo
from lblog.errors import ParseError

STAT = """cpu  10132153 290696 3084719 46828483 16683 0 25195 175 0 0
cpu0 1393280 32966 572056 13343292 6130 0 17875 100 0 0
cpu1 1335366 28687 483745 11069744 3839 0 2206 40 0 0
intr 1462898 27 0 0 0 0 0 0 0 1 0 0 0 0 0 0 0
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
"""

MEMINFO = """MemTotal:       16318412 kB
MemFree:          342224 kB
MemAvailable:    9857264 kB
Buffers:          421396 kB
Cached:          8611548 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def test_stat():
    cpu = nodeinfo.parse_stat(STAT, "/proc/stat")
    assert cpu.cpus == 2
    assert cpu.busy == 10132153 + 290696 + 3084719 + 0 + 25195 + 175
    assert cpu.idle == 46828483 + 16683


def test_stat_old_kernel_with_four_columns():
    cpu = nodeinfo.parse_stat("cpu  10 20 30 40\ncpu0 10 20 30 40\n", "stat")
    assert (cpu.cpus, cpu.busy, cpu.idle) == (1, 60, 40)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("cpu0 1 2 3 4\n", None, "aggregate"),
        ("cpu  1 2 3 4\n", None, "cpuN"),
        ("cpu  1 2 x 4\ncpu0 1 2 3 4\n", 1, "integers"),
        ("cpu  1 2 3\ncpu0 1 2 3 4\n", 1, "not 4+"),
        ("cpu  1 2 3 4\ncpuX 1 2 3 4\n", 2, "unexpected"),
    ],
)
def test_stat_errors(text, line, words):
    with pytest.raises(ParseError) as err:
        nodeinfo.parse_stat(text, "/proc/stat")
    assert (err.value.path, err.value.line) == ("/proc/stat", line)
    assert words in str(err.value)


def test_meminfo():
    assert nodeinfo.parse_meminfo(MEMINFO, "m") == (16318412 * 1024, 9857264 * 1024)


def test_meminfo_without_memavailable_uses_free_buffers_cached():
    old = "\n".join(line for line in MEMINFO.split("\n") if "Available" not in line)
    assert nodeinfo.parse_meminfo(old, "m") == (16318412 * 1024, (342224 + 421396 + 8611548) * 1024)


def test_meminfo_errors():
    with pytest.raises(ParseError, match="no MemTotal"):
        nodeinfo.parse_meminfo("MemFree: 1 kB\n", "m")
    with pytest.raises(ParseError) as err:
        nodeinfo.parse_meminfo("MemTotal: 12 MB\n", "m")
    assert err.value.line == 1


def test_loadavg():
    assert nodeinfo.parse_loadavg("0.20 0.18 0.12 1/80 11206\n", "l") == (0.20, 0.18, 0.12)


@pytest.mark.parametrize("text", ["0.20 0.18 0.12\n", "nan 0.1 0.1 1/2 3\n", "x 1 1 1/2 3\n"])
def test_loadavg_errors(text):
    with pytest.raises(ParseError) as err:
        nodeinfo.parse_loadavg(text, "/proc/loadavg")
    assert err.value.line == 1


def test_disk_space(tmp_path):
    total, free = nodeinfo.disk_space(tmp_path)
    st = os.statvfs(tmp_path)
    assert total == st.f_blocks * st.f_frsize
    assert free is not None and 0 <= free <= total
    assert nodeinfo.disk_space(tmp_path / "missing") == (None, None)
    assert nodeinfo.disk_space(None) == (None, None)


def test_read_totals(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text(STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text("1.50 0.75 0.25 2/300 4242\n")
    totals = nodeinfo.read_totals(tmp_path, None)
    assert totals.cpus == 2
    assert totals.mem_available_bytes == 9857264 * 1024
    assert (totals.load1, totals.load5, totals.load15) == (1.5, 0.75, 0.25)
    assert totals.disk_total_bytes is None
    (proc / "loadavg").unlink()
    with pytest.raises(ParseError, match="loadavg: file is missing"):
        nodeinfo.read_totals(tmp_path, None)
