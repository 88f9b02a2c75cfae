"""Damaged input never crashes a parser: it parses, or raises ParseError naming file and line.

Each captured fixture (and the kernel-format node files fakeproc writes) is truncated, cut,
spliced with random text or has lines duplicated, dropped or swapped.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lblog import nodeinfo, openvz
from lblog.errors import ParseError
from lbvm import fakeproc

FIXTURES = Path(__file__).parent / "fixtures"

CASES: list[tuple[str, Callable[[str, str], Any], str]] = [
    *[
        (p.name, openvz.parse_beancounters, p.read_text())
        for p in sorted(FIXTURES.glob("user_beancounters.*")) + sorted(FIXTURES.glob("proc_bc_*"))
    ],
    ("vestat", openvz.parse_vestat, (FIXTURES / "vestat.vz_tools-v2.2.txt").read_text()),
    ("veinfo", openvz.parse_veinfo, (FIXTURES / "veinfo.vz_tools.txt").read_text()),
    ("vzquota", openvz.parse_vzquota, (FIXTURES / "vzquota.kernel-format.txt").read_text()),
    ("vzlist", openvz.parse_vzlist_json,
     '[{"ctid": 101, "diskspace": {"usage": 1, "softlimit": 2, "hardlimit": 3}}]'),
    ("stat", nodeinfo.parse_stat, fakeproc.format_stat(4, 123456, 654321, 3)),
    ("meminfo", nodeinfo.parse_meminfo, fakeproc.format_meminfo(2**34, 2**33)),
    ("loadavg", nodeinfo.parse_loadavg, fakeproc.format_loadavg((0.5, 1.0, 2.25), 3)),
]  # fmt: skip

PIECES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["\n", ":", " ", "-1", "0:", "dummy", "uid", "Version: 2.5", "VEID",
                     "9223372036854775807", "99999999999999999999999", "\t", "\x00", "²",
                     "1_0", "nan", "kB", "cpu", "cpu7", "qid:", "1k-blocks", "[", "{"]),
)  # fmt: skip


@st.composite
def damaged(draw: st.DrawFn, text: str) -> str:
    """``text`` with one to three random edits."""
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        op = draw(st.sampled_from(["truncate", "cut", "insert", "replace", "lines"]))
        i = draw(st.integers(0, n))
        if op == "truncate":
            text = text[:i]
        elif op == "cut":
            text = text[:i] + text[draw(st.integers(i, n)) :]
        elif op == "insert":
            text = text[:i] + draw(PIECES) + text[i:]
        elif op == "replace":
            text = text[:i] + draw(PIECES) + text[i + 1 :]
        else:
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            how = draw(st.sampled_from(["dup", "drop", "swap"]))
            if how == "dup":
                lines.insert(b, lines[a])
            elif how == "drop":
                del lines[a]
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


@pytest.mark.parametrize(("name", "parse", "text"), CASES, ids=[c[0] for c in CASES])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_input_parses_or_raises_parse_error(name, parse, text, data):
    bad = data.draw(damaged(text))
    path = f"/fake/{name}"
    try:
        result = parse(bad, path)
    except ParseError as exc:
        assert exc.path == path
        assert exc.line is None or 1 <= exc.line <= bad.count("\n") + 1
        assert str(exc).startswith(path)
        return
    _check_result(result)


def _check_result(result: Any) -> None:
    """Whatever parsed holds only non-negative numbers under string keys."""
    if isinstance(result, dict):
        for key, value in result.items():
            assert isinstance(key, str) and key
            _check_result(value)
    elif isinstance(result, tuple):
        for value in result:
            if isinstance(value, (int, float)):
                assert value >= 0
            else:
                _check_result(value)
    else:
        assert isinstance(result, (int, float, str)), result


@pytest.mark.parametrize(("name", "parse", "text"), CASES, ids=[c[0] for c in CASES])
def test_undamaged_fixture_parses(name, parse, text):
    _check_result(parse(text, name))
