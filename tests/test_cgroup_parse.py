"""The cgroup file parsers on real captured files, and on mangled copies of them."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lblog import cgroup_parse as parse
from lblog.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_cpu_stat_telegraf() -> None:
    values = parse.flat_keyed(fixture("cgroup2.cpu.stat.telegraf.txt"), "cpu.stat")
    assert values["usage_usec"] == 98701325189
    assert (values["user_usec"], values["system_usec"]) == (61355716211, 37345608977)
    assert values["core_sched.force_idle_usec"] == 0
    assert len(values) == 9


def test_memory_files_telegraf() -> None:
    assert parse.single_int(fixture("cgroup2.memory.current.telegraf.txt"), "m") == 13071106048
    assert parse.int_or_max(fixture("cgroup2.memory.max.telegraf.txt"), "m") == 96 * 2**30
    assert parse.int_or_max("max\n", "memory.max") is None
    events = parse.flat_keyed(fixture("cgroup2.memory.events.local.telegraf.txt"), "e")
    assert events == dict.fromkeys(("low", "high", "max", "oom", "oom_kill", "oom_group_kill"), 0)


def test_cpu_max_telegraf() -> None:
    assert parse.cpu_max(fixture("cgroup2.cpu.max.telegraf.txt"), "cpu.max") == 48.0
    assert parse.cpu_max("max 100000\n", "cpu.max") is None
    with pytest.raises(ParseError, match=r"cpu.max:1: period is 0"):
        parse.cpu_max("5000 0\n", "cpu.max")


def test_io_stat_kernel_doc_sums_both_devices() -> None:
    io = parse.io_stat(fixture("cgroup2.io.stat.kernel-doc-example.txt"), "io.stat")
    assert io.read_bytes == 1459200 + 90430464
    assert io.write_bytes == 314773504 + 299008000
    assert io.discard_bytes == 50331648
    assert io.total_bytes == io.read_bytes + io.write_bytes + io.discard_bytes
    assert (io.read_ios, io.write_ios) == (192 + 8950, 353 + 1252)


def test_io_stat_telegraf_and_foreign_keys() -> None:
    io = parse.io_stat(fixture("cgroup2.io.stat.telegraf.txt"), "io.stat")
    assert (io.read_bytes, io.write_bytes) == (74526720, 3789381632)
    # io.cost adds decimal keys; they are checked and ignored.
    io = parse.io_stat("8:0 rbytes=1 wbytes=2 cost.vrate=135.00 cost.usage=7\n", "io.stat")
    assert (io.read_bytes, io.write_bytes, io.read_ios) == (1, 2, 0)
    with pytest.raises(ParseError, match=r"io.stat:2: device 8:0 repeated"):
        parse.io_stat("8:0 rbytes=1\n8:0 rbytes=1\n", "io.stat")


def test_pressure_telegraf() -> None:
    cpu = parse.pressure(fixture("cgroup2.cpu.pressure.telegraf.txt"), "cpu.pressure")
    assert cpu.some == parse.PressureLine(0.0, 0.08, 0.06, 293391454)
    assert cpu.full == parse.PressureLine(0.0, 0.08, 0.05, 277111656)
    mem = parse.pressure(fixture("cgroup2.memory.pressure.telegraf.txt"), "memory.pressure")
    assert mem.full is not None and mem.full.total_usec == 250662
    # Kernels before 5.13 print no "full" line for cpu.pressure.
    only_some = parse.pressure("some avg10=1.50 avg60=0.00 avg300=0.00 total=9\n", "p")
    assert only_some.some.avg10 == 1.5 and only_some.full is None
    with pytest.raises(ParseError, match=r"p: no 'some' line"):
        parse.pressure("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "p")


def test_blkio_service_bytes_v1() -> None:
    text = (
        "8:0 Read 1048576\n8:0 Write 4194304\n8:0 Sync 4194304\n8:0 Async 1048576\n"
        "8:0 Discard 0\n8:0 Total 5242880\n8:16 Read 4096\n8:16 Total 4096\nTotal 5246976\n"
    )
    io = parse.blkio_bytes(text, "blkio")
    assert (io.read_bytes, io.write_bytes, io.total_bytes) == (1052672, 4194304, 5246976)
    assert io.read_ios is None
    assert parse.blkio_bytes("Total 0\n", "blkio").total_bytes == 0
    with pytest.raises(ParseError, match=r"blkio:1: expected 'MAJ:MIN Op bytes'"):
        parse.blkio_bytes("8:0 Frobnicate 1\n", "blkio")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "empty file"),
        ("12\n13\n", 2, "more lines"),
        ("-1\n", 1, "unsigned integer"),
        ("1_000\n", 1, "unsigned integer"),
        ("\u0661\n", 1, "unsigned integer"),  # Arabic-Indic one: int() would take it
        (f"{2**64}\n", 1, "unsigned integer"),
    ],
)
def test_single_int_rejects(text: str, line: int, message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse.single_int(text, "memory.current")
    assert (info.value.path, info.value.line) == ("memory.current", line)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("usage_usec 1\nusage_usec 2\n", 2),
        ("usage_usec 1\n\nuser_usec 2\n", 2),
        ("usage_usec\n", 1),
        ("usage_usec 1 2\n", 1),
        ("a 1\nb nan\n", 2),
        ("a 1\nb 1.5\n", 2),
    ],
)
def test_flat_keyed_rejects(text: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        parse.flat_keyed(text, "cpu.stat")
    assert (info.value.path, info.value.line) == ("cpu.stat", line)


def test_decode_names_line_of_bad_byte() -> None:
    with pytest.raises(ParseError, match=r"memory.stat:3: not ASCII") as info:
        parse.decode(b"a 1\nb 2\nc \xff3\n", "memory.stat")
    assert info.value.line == 3


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True),
                       st.integers(0, parse.U64_MAX), max_size=30))
def test_flat_keyed_round_trip(values: dict[str, int]) -> None:
    text = "".join(f"{k} {v}\n" for k, v in values.items())
    assert parse.flat_keyed(text, "memory.stat") == values


# Mangled copies of the real files: each must parse or fail with the file and a line.
PARSERS: dict[str, Callable[[str, str], Any]] = {
    "cgroup2.cpu.stat.telegraf.txt": parse.flat_keyed,
    "cgroup2.cpu.max.telegraf.txt": parse.cpu_max,
    "cgroup2.memory.current.telegraf.txt": parse.single_int,
    "cgroup2.memory.max.telegraf.txt": parse.int_or_max,
    "cgroup2.memory.events.local.telegraf.txt": parse.flat_keyed,
    "cgroup2.io.stat.telegraf.txt": parse.io_stat,
    "cgroup2.io.stat.kernel-doc-example.txt": parse.io_stat,
    "cgroup2.cpu.pressure.telegraf.txt": parse.pressure,
    "cgroup2.memory.pressure.telegraf.txt": parse.pressure,
}
NAMES = sorted(PARSERS)
MUTATION_CHARS = st.sampled_from(list(" \n\t=:.-+_xmaxsome0179\r\x00\xff"))


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(NAMES))
    data = (FIXTURES / name).read_bytes()
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["truncate", "insert", "replace", "delete", "dup-line"]))
        char = draw(MUTATION_CHARS).encode("latin-1")
        if kind == "truncate":
            data = data[:at]
        elif kind == "insert":
            data = data[:at] + char + data[at:]
        elif kind == "replace":
            data = data[:at] + char + data[at + 1 :]
        elif kind == "delete":
            data = data[:at] + data[at + 1 :]
        else:
            lines = data.split(b"\n")
            index = min(at, len(lines) - 1)
            data = b"\n".join([*lines[: index + 1], *lines[index:]])
    return name, data


@given(mangled())
def test_mangled_real_files_parse_or_name_file_and_line(case: tuple[str, bytes]) -> None:
    name, data = case
    path = f"/sys/fs/cgroup/ve1/{name}"
    try:
        result = PARSERS[name](parse.decode(data, path), path)
    except ParseError as exc:
        assert exc.path == path
        lines = data.count(b"\n") + 1
        if exc.line is None:
            assert "no 'some' line" in exc.message
        else:
            assert 1 <= exc.line <= lines
            assert str(exc).startswith(f"{path}:{exc.line}: ")
    else:
        if isinstance(result, dict):  # every key read really starts a line of the text
            text = data.decode("ascii")
            assert all(re.search(rf"(?m)^[ \t]*{re.escape(key)}\s", text) for key in result)
