"""collect(): joining beancounters, vestat and quotas into a Sample; source dispatch."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from lblog import collect as collect_mod
from lblog.collect import CollectError, collect, kernel_hz
from lblog.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures"
STAT = (
    "cpu  600 0 400 9000 0 0 0 0 0 0\n"
    "cpu0 300 0 200 4500 0 0 0 0 0 0\n"
    "cpu1 300 0 200 4500 0 0 0 0 0 0\n"
)
MEMINFO = "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    5000000 kB\n"


def make_root(tmp_path: Path, *, bc: str = "proc_bc_resources.32bit-multi-ct-failcnt.vz_tools.txt",
              bc_name: str = "bc/resources") -> Path:  # fmt: skip
    """A /proc tree from the vz_tools captures (CTs 754 and 410) plus node files."""
    proc = tmp_path / "proc"
    (proc / "vz").mkdir(parents=True)
    (proc / "bc").mkdir()
    shutil.copy(FIXTURES / bc, proc / bc_name)
    shutil.copy(FIXTURES / "vestat.vz_tools-v2.2.txt", proc / "vz/vestat")
    shutil.copy(FIXTURES / "veinfo.vz_tools.txt", proc / "vz/veinfo")
    (proc / "stat").write_text(STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text("0.50 0.40 0.30 1/200 999\n")
    return tmp_path


def test_openvz_join(tmp_path):
    root = make_root(tmp_path)
    sample = collect(root, "node1", now=1700000000.25, private_path=tmp_path)
    assert (sample.node, sample.time, sample.source) == ("node1", 1700000000.25, "openvz")
    assert sample.cpu_hz == 1000  # vestat counts kernel jiffies; OpenVZ kernels use HZ=1000
    assert sample.jiffies_hz == os.sysconf("SC_CLK_TCK")
    assert [ve.ve for ve in sample.ves] == ["410", "754"]  # host left out, numeric order
    ct = {ve.ve: ve for ve in sample.ves}["754"]
    assert ct.cpu_raw == 103174098 + 1926162 + 71940213
    assert ct.uptime == pytest.approx(11689240.246)
    assert ct.mem_bytes == 1121 * 4096
    assert ct.mem_limit_bytes == 53575 * 4096  # physpages unlimited (INT_MAX): privvmpages
    assert ct.swap_bytes is None  # no swappages in this capture
    assert ct.failcnt == 163
    assert ct.disk_bytes is None and ct.disk_limit_bytes is None
    assert ct.beancounters["tcprcvbuf"] == (0, 378936, 319488, 524288, 163)
    t = sample.totals
    assert (t.cpus, t.cpu_busy_raw, t.cpu_idle_raw) == (2, 1000, 9000)
    assert (t.mem_total_bytes, t.mem_available_bytes) == (8000000 * 1024, 5000000 * 1024)
    assert t.disk_total_bytes is not None and t.disk_total_bytes > 0


def test_user_beancounters_when_no_bc_resources(tmp_path):
    root = make_root(tmp_path, bc="user_beancounters.vswap-ct.centminmod_mmap_test.txt",
                     bc_name="user_beancounters")  # fmt: skip
    (ve,) = collect(root, "n", private_path=None).ves
    assert ve.ve == "38444"
    assert ve.mem_bytes == 23604 * 4096
    assert ve.mem_limit_bytes == 32768 * 4096  # VSwap: the physpages limit
    assert ve.cpu_raw is None and ve.uptime is None  # CT 38444 has no vestat row here


def test_ve_vanished_from_vestat_between_reads(tmp_path):
    root = make_root(tmp_path)
    vestat = root / "proc/vz/vestat"
    vestat.write_text("\n".join(x for x in vestat.read_text().split("\n") if " 410 " not in x))
    ves = {ve.ve: ve for ve in collect(root, "n", private_path=None).ves}
    assert ves["410"].cpu_raw is None
    assert ves["410"].mem_bytes == 1377 * 4096  # still counted: it is in the beancounters
    assert ves["754"].cpu_raw == 177040473


def test_cpu_hz_from_boot_config_or_override(tmp_path):
    root = make_root(tmp_path)
    (root / "proc/sys/kernel").mkdir(parents=True)
    (root / "proc/sys/kernel/osrelease").write_text("2.6.32-042stab145.3\n")
    (root / "boot").mkdir()
    (root / "boot/config-2.6.32-042stab145.3").write_text("CONFIG_HZ_250=y\nCONFIG_HZ=250\n")
    assert kernel_hz(root) == 250
    sample = collect(root, "n", private_path=None)
    assert sample.cpu_hz == 250
    ct = {ve.ve: ve for ve in sample.ves}["754"]
    assert ct.uptime == pytest.approx(11689240246 / 250)
    assert collect(root, "n", private_path=None, cpu_hz=100).cpu_hz == 100
    assert kernel_hz(tmp_path / "nowhere") == 1000


def write_quota(root: Path, ve: str, usage_kb: int, hard_kb: int) -> None:
    (root / "proc/vz/vzquota").write_text(
        "qid: path            usage      softlimit      hardlimit       time     expire\n"
        f"{ve}: /vz/private/{ve}\n"
        f"  1k-blocks {usage_kb:>14} {hard_kb:>14} {hard_kb:>14}          0          0\n"
        "     inodes          12345         200000         220000          0          0\n"
    )


def test_disk_from_vzquota_then_vzlist_for_the_rest(tmp_path):
    root = make_root(tmp_path)
    write_quota(root, "754", 1048576, 2097152)
    calls = []

    def fake_vzlist(argv, timeout):
        calls.append((list(argv), timeout))
        return (
            '[{"ctid": 410, "diskspace": {"usage": 300, "softlimit": 0, "hardlimit": 0}},'
            ' {"ctid": 754, "diskspace": {"usage": 5, "softlimit": 6, "hardlimit": 7}}]'
        )

    ves = {ve.ve: ve for ve in collect(root, "n", private_path=None, vzlist=fake_vzlist).ves}
    assert calls == [(["vzlist", "-j", "-o", "ctid,diskspace"], collect_mod.VZLIST_TIMEOUT)]
    assert (ves["754"].disk_bytes, ves["754"].disk_limit_bytes) == (2**30, 2**31)  # vzquota wins
    assert (ves["410"].disk_bytes, ves["410"].disk_limit_bytes) == (300 * 1024, None)


def test_vzlist_not_run_when_quota_covers_every_ve(tmp_path):
    root = make_root(tmp_path, bc="user_beancounters.vswap-ct.centminmod_mmap_test.txt",
                     bc_name="user_beancounters")  # fmt: skip
    write_quota(root, "38444", 10, 20)

    def boom(argv, timeout):
        raise AssertionError("vzlist should not run")

    (ve,) = collect(root, "n", private_path=None, vzlist=boom).ves
    assert ve.disk_bytes == 10 * 1024


def test_vzlist_missing_leaves_disk_unknown_and_says_so(tmp_path, caplog):
    root = make_root(tmp_path)

    def missing(argv, timeout):
        raise FileNotFoundError(2, "No such file or directory", "vzlist")

    with caplog.at_level(logging.WARNING, logger="lblog.collect"):
        ves = collect(root, "n", private_path=None, vzlist=missing).ves
    assert all(ve.disk_bytes is None for ve in ves)
    assert "disk usage of 2 VE(s) unknown" in caplog.text


def test_bad_file_raises_parse_error_naming_it(tmp_path):
    root = make_root(tmp_path)
    vestat = root / "proc/vz/vestat"
    vestat.write_text(vestat.read_text().replace("  226491 ", "  22649x "))
    with pytest.raises(ParseError) as err:
        collect(root, "n", private_path=None)
    assert err.value.path == str(vestat)
    assert err.value.line == 3


def test_missing_vestat_is_an_error(tmp_path):
    root = make_root(tmp_path)
    (root / "proc/vz/vestat").unlink()
    with pytest.raises(ParseError, match="vestat: file is missing"):
        collect(root, "n", private_path=None)


def test_not_openvz(tmp_path):
    (tmp_path / "proc").mkdir()
    with pytest.raises(CollectError, match="not an OpenVZ node"):
        collect(tmp_path, "n")
    with pytest.raises(CollectError, match="no OpenVZ beancounters"):
        collect(tmp_path, "n", source="auto", sys_root=tmp_path)
    with pytest.raises(CollectError, match="unknown source 'lxc'"):
        collect(tmp_path, "n", source="lxc")


def test_auto_prefers_openvz(tmp_path):
    root = make_root(tmp_path)
    assert collect(root, "n", source="auto", sys_root=FIXTURES / "cgroup2").source == "openvz"


@pytest.mark.parametrize(
    ("tree", "source", "glob", "expected"),
    [
        ("cgroup2", "auto", None, "cgroup2"),
        ("cgroup2", "cgroup2", "lxc.payload.*", "cgroup2"),
        ("cgroup1", "auto", None, "cgroup1"),
    ],
)
def test_cgroup_sources(tmp_path, tree, source, glob, expected):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "stat").write_text(STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text("0.10 0.20 0.30 1/2 3\n")
    sample = collect(tmp_path, "n", source=source, sys_root=FIXTURES / tree, ve_glob=glob,
                     private_path=None)  # fmt: skip
    assert sample.source == expected
    assert sample.cpu_hz == 1_000_000
    assert any(ve.cpu_raw is not None for ve in sample.ves)
    names = [ve.ve for ve in sample.ves]
    if glob == "lxc.payload.*":
        assert names == ["c1"]
    elif tree == "cgroup2":  # the first default glob that matches: machine.slice/*
        assert names == ["db", "web-01"]
    else:  # only lxc/* matches in the v1 tree
        assert names[:1] == ["ct1"]
