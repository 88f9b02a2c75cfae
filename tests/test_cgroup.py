"""detect / collect / read on the fake cgroup v1 and v2 trees in tests/fixtures."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lblog import cgroup
from lblog.errors import LbvmError, ParseError
from lblog.sample import VeRow

FIXTURES = Path(__file__).parent / "fixtures"
V1 = FIXTURES / "cgroup1"
V2 = FIXTURES / "cgroup2"
WEB = "machine.slice/machine-web\\x2d01.scope"


@pytest.fixture
def v2_tree(tmp_path: Path) -> Path:
    shutil.copytree(V2, tmp_path / "root", symlinks=True)
    return tmp_path / "root"


@pytest.fixture
def v1_tree(tmp_path: Path) -> Path:
    shutil.copytree(V1, tmp_path / "root", symlinks=True)
    return tmp_path / "root"


def test_detect(tmp_path: Path) -> None:
    assert cgroup.detect(V2) == 2
    assert cgroup.detect(V1) == 1
    assert cgroup.detect(tmp_path) is None
    # Hybrid layout: v1 controllers, the v2 tree only under unified/.
    for name in ("cpuacct", "memory", "unified"):
        (tmp_path / "sys/fs/cgroup" / name).mkdir(parents=True)
    (tmp_path / "sys/fs/cgroup/unified/cgroup.controllers").write_text("\n")
    assert cgroup.detect(tmp_path) == 1
    (tmp_path / "sys/fs/cgroup/memory").rmdir()
    assert cgroup.detect(tmp_path) is None


def test_v2_machine_slice() -> None:
    rows = cgroup.collect(V2, 2, "machine.slice/*")
    assert [r.ve for r in rows] == ["db", "web-01"]
    db, web = rows
    assert web == VeRow(
        ve="web-01",
        cpu_raw=98701325189,  # cpu.stat usage_usec from the real file
        mem_bytes=13071106048 - 2147483648,  # memory.current - inactive_file
        mem_limit_bytes=103079215104,
        swap_bytes=0,
        failcnt=0,
    )
    assert db == VeRow(ve="db", cpu_raw=5000000, mem_bytes=1073741824, failcnt=2 + 5)


def test_v2_read_keeps_io_and_pressure() -> None:
    (web,) = [s for s in cgroup.read(V2, 2, "machine.slice/*") if s.ve == "web-01"]
    assert web.cgroup == WEB and web.version == 2
    assert web.cpu_limit_cores == 48.0
    assert web.io is not None and web.io.total_bytes == 1459200 + 314773504 + 90430464 + (
        299008000 + 50331648
    )
    assert web.cpu_pressure is not None and web.cpu_pressure.some.total_usec == 293391454
    assert web.memory_pressure is not None and web.memory_pressure.some.avg10 == 0.0
    assert web.io_pressure is not None and web.io_pressure.full is not None
    assert web.io_pressure.full.avg10 == 1.25
    assert (web.oom_events, web.max_events) == (0, 0)
    (lean,) = [s for s in cgroup.read(V2, 2, "machine.slice/*", detail=False) if s.ve == "web-01"]
    assert lean.io is None and lean.cpu_pressure is None and lean.cpu_limit_cores is None
    assert lean.row() == web.row()


def test_v2_payload_pattern_skips_monitor_and_files() -> None:
    rows = cgroup.collect(V2, 2, "lxc.payload.*")
    # Memory controller not enabled for c1: fields absent, not zero.
    assert rows == [VeRow(ve="c1", cpu_raw=42)]
    assert cgroup.collect(V2, 2, "nothing.here/*") == []


def test_v1_tree() -> None:
    rows = {r.ve: r for r in cgroup.collect(V1, 1, "lxc/*")}
    assert sorted(rows) == ["ct1", "ct2", "ct3"]
    assert rows["ct1"] == VeRow(
        ve="ct1",
        cpu_raw=123456789,  # 123456789012 ns // 1000
        mem_bytes=536870912 - 170471424,  # usage - total_inactive_file (real memory.stat)
        mem_limit_bytes=None,  # 9223372036854771712 is v1's "unlimited"
        swap_bytes=0,
        failcnt=0,
    )
    assert rows["ct2"] == VeRow(
        ve="ct2", cpu_raw=0, mem_bytes=1048576, mem_limit_bytes=268435456,
        swap_bytes=8192, failcnt=7,
    )
    # ct3 exists only in the memory hierarchy: no CPU figure rather than a made-up 0.
    assert rows["ct3"] == VeRow(ve="ct3", mem_bytes=2048, failcnt=0)


def test_v1_io_prefers_recursive() -> None:
    stats = {s.ve: s for s in cgroup.read(V1, 1, "lxc/*")}
    assert stats["ct1"].io is not None and stats["ct1"].io.total_bytes == 5246976
    assert stats["ct2"].io is not None and stats["ct2"].io.total_bytes == 0
    assert stats["ct3"].io is None
    assert all(r.disk_bytes is None for r in cgroup.collect(V1, 1, "lxc/*"))


def test_v1_clamps_when_cache_exceeds_usage(v1_tree: Path) -> None:
    usage = v1_tree / "sys/fs/cgroup/memory/lxc/ct2/memory.usage_in_bytes"
    usage.write_text("1000\n")
    (row,) = [r for r in cgroup.collect(v1_tree, 1, "lxc/*") if r.ve == "ct2"]
    assert row.mem_bytes == 0


@pytest.mark.parametrize(
    ("component", "ve"),
    [
        ("machine-web\\x2d01.scope", "web-01"),
        ("machine-qemu\\x2d1\\x2dwin10.scope", "qemu-1-win10"),
        ("lxc.payload.c1", "c1"),
        ("101", "101"),
        ("machine-.scope", "machine-.scope"),
        ("lxc.payload.", "lxc.payload."),
        ("machine.slice", "machine.slice"),
    ],
)
def test_ve_name(component: str, ve: str) -> None:
    assert cgroup.ve_name(component) == ve


def test_garbage_names_file_and_line(v2_tree: Path) -> None:
    stat = v2_tree / "sys/fs/cgroup" / WEB / "memory.stat"
    stat.write_text(stat.read_text().replace("inactive_file 2147483648", "inactive_file 2G"))
    with pytest.raises(ParseError) as info:
        cgroup.collect(v2_tree, 2, "machine.slice/*")
    assert info.value.path == str(stat)
    assert info.value.line == 9


def test_missing_required_key(v2_tree: Path) -> None:
    events = v2_tree / "sys/fs/cgroup/machine.slice/machine-db.scope/memory.events"
    events.write_text("low 0\nhigh 0\n")
    with pytest.raises(ParseError, match=r"memory.events: key 'oom' missing"):
        cgroup.collect(v2_tree, 2, "machine.slice/*")


def test_same_ve_twice_is_an_error(v2_tree: Path) -> None:
    (v2_tree / "sys/fs/cgroup/lxc.payload.db").mkdir()
    with pytest.raises(cgroup.CgroupError, match="both name VE 'db'"):
        cgroup.collect(v2_tree, 2, "**/*")


@pytest.mark.parametrize("pattern", ["", "/machine.slice/*", "../*", "a/../../b"])
def test_bad_pattern(pattern: str) -> None:
    with pytest.raises(cgroup.CgroupError, match="relative"):
        cgroup.collect(V2, 2, pattern)


def test_bad_version_and_missing_v1(tmp_path: Path) -> None:
    with pytest.raises(LbvmError, match="unknown cgroup version 3"):
        cgroup.collect(V2, 3, "*")
    with pytest.raises(cgroup.CgroupError, match="no cgroup v1"):
        cgroup.collect(tmp_path, 1, "*")


def vanish_on(
    monkeypatch: pytest.MonkeyPatch, target: str, error: OSError | None
) -> list[str]:
    """Make opening files named ``target`` behave as if their cgroup was just removed."""
    real = os.open
    seen: list[str] = []

    def fake_open(path: str, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.path.basename(path) == target:
            seen.append(path)
            if error is not None:
                raise error
            shutil.rmtree(os.path.dirname(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)
    return seen


@pytest.mark.parametrize(
    "error",
    [None, OSError(errno.ENODEV, "No such device"), ProcessLookupError(errno.ESRCH, "gone")],
    ids=["rmdir", "ENODEV", "ESRCH"],
)
def test_vanishing_cgroup_is_skipped(
    v2_tree: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    error: OSError | None,
) -> None:
    # Leave db alone under machine.slice; it vanishes when memory.current is read.
    seen = vanish_on(monkeypatch, "memory.current", error)
    shutil.rmtree(v2_tree / "sys/fs/cgroup" / WEB)
    with caplog.at_level(logging.DEBUG, logger="lblog.cgroup"):
        rows = cgroup.collect(v2_tree, 2, "machine.slice/*")
    assert rows == []
    assert len(seen) == 1
    assert "machine-db.scope vanished" in caplog.text


def test_v1_vanishing_in_one_hierarchy_skips_the_ve(
    v1_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vanish_on(monkeypatch, "memory.failcnt", None)
    rows = cgroup.collect(v1_tree, 1, "lxc/*")
    assert rows == []  # every VE's memory directory went away while read


def test_unreadable_file_is_a_clear_error(
    v2_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vanish_on(monkeypatch, "cpu.stat", PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(cgroup.CgroupError, match=r"cpu.stat: cannot read \(Permission denied\)"):
        cgroup.collect(v2_tree, 2, "machine.slice/*")


MANGLE_FILES = ["cpu.stat", "memory.stat", "memory.events", "memory.current", "memory.max"]


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(MANGLE_FILES),
    cut=st.integers(0, 400),
    junk=st.binary(max_size=3),
)
def test_mangled_file_in_tree_parses_or_names_it(name: str, cut: int, junk: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        shutil.copytree(V2, root)
        target = root / "sys/fs/cgroup" / WEB / name
        data = target.read_bytes()
        target.write_bytes(data[:cut] + junk + data[cut + len(junk) :])
        try:
            rows = cgroup.collect(root, 2, "machine.slice/*")
        except ParseError as exc:
            assert exc.path == str(target)
            assert exc.line is not None or "missing" in exc.message
        else:
            assert [r.ve for r in rows] == ["db", "web-01"]
