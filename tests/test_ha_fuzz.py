"""Mangled fixtures: every HA parser either returns its model or raises ParseError naming
the file (and a line inside it when it gives one); nothing else escapes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lblog.errors import ParseError
from lblog.ha import (
    ClusterState,
    DrbdStatus,
    parse_clustat_text,
    parse_clustat_xml,
    parse_crm_mon_text,
    parse_crm_mon_xml,
    parse_drbdadm_status,
    parse_drbdsetup_json,
    parse_events2,
    parse_haresources,
    parse_proc_drbd,
)

FIXTURES = Path(__file__).parent / "fixtures"

PARSERS: dict[str, Callable[[str, str], Any]] = {
    "proc_drbd.": parse_proc_drbd,
    "drbdadm_status.": parse_drbdadm_status,
    "drbdsetup_status_json.": parse_drbdsetup_json,
    "drbdsetup_events2.": parse_events2,
    "crm_mon-xml.": parse_crm_mon_xml,
    "crm_mon-X.": parse_crm_mon_xml,
    "crm_mon-1": parse_crm_mon_text,
    "pcs_status.": parse_crm_mon_text,
    "clustat-x.": parse_clustat_xml,
    "clustat.": parse_clustat_text,
    "haresources.": parse_haresources,
}
CASES = sorted(
    (p.name, parser)
    for p in FIXTURES.iterdir()
    for prefix, parser in PARSERS.items()
    if p.name.startswith(prefix)
)
# Characters the formats give meaning to, plus some they do not.
NOISE = st.text(alphabet=":/[]()<>\"'=.,%*-_#\\ \t\n0123456789abcXYZé", max_size=12)


@st.composite
def mangled(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        n = len(text)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 40)))
        how = draw(st.sampled_from(["truncate", "delete", "insert", "replace", "swap-lines"]))
        if how == "truncate":
            text = text[:i]
        elif how == "delete":
            text = text[:i] + text[j:]
        elif how == "insert":
            text = text[:i] + draw(NOISE) + text[i:]
        elif how == "replace":
            text = text[:i] + draw(NOISE) + text[j:]
        else:
            lines = text.splitlines(keepends=True)
            if len(lines) > 1:
                a = draw(st.integers(0, len(lines) - 1))
                b = draw(st.integers(0, len(lines) - 1))
                lines[a], lines[b] = lines[b], lines[a]
            text = "".join(lines)
    return text


def test_every_ha_fixture_has_a_parser() -> None:
    names = {n for n, _ in CASES}
    assert len(names) == 22
    for name in names:
        parser = dict(CASES)[name]
        result = parser((FIXTURES / name).read_text(), name)
        assert isinstance(result, DrbdStatus | ClusterState | tuple)


@pytest.mark.parametrize(("name", "parser"), CASES, ids=[n for n, _ in CASES])
def test_mangled_fixture_parses_or_names_the_file(
    name: str, parser: Callable[[str, str], Any]
) -> None:
    original = (FIXTURES / name).read_text()

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mangled(original))
    def check(text: str) -> None:
        try:
            result = parser(text, name)
        except ParseError as err:
            assert err.path == name
            assert err.line is None or 1 <= err.line <= max(1, len(text.splitlines()) + 1)
            assert str(err).startswith(name)
        else:
            assert isinstance(result, DrbdStatus | ClusterState | tuple)

    check()
