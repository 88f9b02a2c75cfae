"""OpenVZ parsers against real captured /proc files, plus the layouts they must also take."""

from __future__ import annotations

from pathlib import Path

import pytest

from lblog import openvz
from lblog.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures"
LONG_MAX = 9223372036854775807
INT_MAX = 2147483647


def fixture(name: str) -> tuple[str, str]:
    path = FIXTURES / name
    return path.read_text(), str(path)


def bc(name: str) -> dict[str, dict[str, tuple[int, int, int, int, int]]]:
    return openvz.parse_beancounters(*fixture(name))


# --- beancounters ---------------------------------------------------------------------


def test_64bit_ct_with_limits():
    ves = bc("user_beancounters.64bit-ct-with-limits.scout_plugins.txt")
    assert list(ves) == ["9833"]
    ct = ves["9833"]
    assert len(ct) == 20  # 24 rows minus 4 dummy rows
    assert "dummy" not in ct
    assert ct["kmemsize"] == (3318833, 4634057, 33554432, 37748736, 0)
    assert ct["physpages"] == (4626, 15124, 131072, LONG_MAX, 0)
    assert ct["privvmpages"] == (12032, 26321, 262144, 294912, 0)
    assert ct["numiptent"] == (14, 14, 128, 128, 0)


def test_host_is_not_a_ve():
    assert bc("user_beancounters.64bit-host-ct0.scout_plugins.txt") == {}


def test_unlimited_ct_keeps_raw_long_max():
    ct = bc("user_beancounters.64bit-unlimited-ct.blipp_test.txt")["7"]
    assert ct["physpages"] == (1173286, 1180545, LONG_MAX, LONG_MAX, 0)
    assert ct["dcachesize"] == (57694551, 57798312, 60817408, 67108864, 0)


def test_no_version_line_and_failcnt():
    ct = bc("user_beancounters.no-version-line-ct-failcnt.csfe_scripts.txt")["89415"]
    assert ct["lockedpages"] == (0, 3066, 5102, 5102, 2)
    assert ct["dcachesize"][0] > ct["dcachesize"][2]  # held above barrier is kept as is
    assert sum(row[4] for row in ct.values()) == 2


def test_vswap_ct():
    ct = bc("user_beancounters.vswap-ct.centminmod_mmap_test.txt")["38444"]
    assert ct["physpages"] == (23604, 32768, 0, 32768, 0)
    assert ct["numiptent"] == (627, 627, LONG_MAX, LONG_MAX, 0)


def test_bc_resources_32bit_three_uids():
    ves = bc("proc_bc_resources.32bit-multi-ct-failcnt.vz_tools.txt")
    assert list(ves) == ["754", "410"]  # uid 0 (the host) is left out
    assert ves["754"]["tcprcvbuf"] == (0, 378936, 319488, 524288, 163)
    assert ves["754"]["physpages"] == (1121, 13894, 0, INT_MAX, 0)
    assert ves["410"]["kmemsize"] == (822326, 1782209, 2752512, 2936012, 0)
    assert len(ves["410"]) == 20


def test_openvz7_names_and_mixed_unlimited():
    text = (
        "Version: 2.5\n"
        "       uid  resource                     held              maxheld"
        "              barrier                limit              failcnt\n"
        "ct-web:  physpages                 100                  200"
        "                    0           2147483647                    0\n"
        "            swappages                 5                    6"
        "                    0  9223372036854775807                    1\n"
        "4c1f2a9e-5b7d-4e3a-9f00-1234567890ab:  physpages  7  8  0  262144  0\n"
    )
    ves = openvz.parse_beancounters(text, "bc")
    assert ves["ct-web"] == {
        "physpages": (100, 200, 0, INT_MAX, 0),
        "swappages": (5, 6, 0, LONG_MAX, 1),
    }
    assert ves["4c1f2a9e-5b7d-4e3a-9f00-1234567890ab"]["physpages"] == (7, 8, 0, 262144, 0)


def test_per_ve_file_has_no_uid_column():
    text = "            kmemsize  10  20  30  40  0\n            physpages  1  2  0  9  3\n"
    assert openvz.parse_beancounters(text, "/proc/bc/101/resources", ve="101") == {
        "101": {"kmemsize": (10, 20, 30, 40, 0), "physpages": (1, 2, 0, 9, 3)}
    }


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("       uid  resource held maxheld barrier limit failcnt\n  kmemsize 1 2 3 4 5\n",
         2, "before any uid"),
        ("  100:  numproc 1 2 3 4 5\n  101:  kmemsize 1 2 3 4\n", 2, "'101:' is not a resource"),
        ("  101:  kmemsize 1 2 3\n", 1, "6 or 7 fields"),
        ("  101:  kmemsize 1 2 3 4 x\n", 1, "integers"),
        ("  101:  kmemsize 1 2 3 4 -5\n", 1, "negative"),
        ("  101:  kmemsize 1 2 3 4 5\n  kmemsize 1 2 3 4 5\n", 2, "twice"),
        ("  101:  kmemsize 1 2 3 4 5\n  102:  kmemsize 1 2 3 4 5\n  101:  numproc 1 2 3 4 5\n",
         3, "twice"),
        ("  101  kmemsize 1 2 3 4 5\n", 1, "'<uid>:'"),
        ("Version: 3.0\n", 1, "version"),
        ("  101:  1x 1 2 3 4 5\n", 1, "resource name"),
    ],
)  # fmt: skip
def test_beancounter_errors_name_file_and_line(text, line, words):
    with pytest.raises(ParseError) as err:
        openvz.parse_beancounters(text, "/proc/user_beancounters")
    assert err.value.path == "/proc/user_beancounters"
    assert err.value.line == line
    assert words in str(err.value)
    assert str(err.value).startswith(f"/proc/user_beancounters:{line}: ")


def test_finite():
    assert openvz.finite(262144)
    assert not openvz.finite(LONG_MAX)
    assert not openvz.finite(INT_MAX)
    assert not openvz.finite(0)


# --- vestat ---------------------------------------------------------------------------


def test_vestat_v22():
    stats = openvz.parse_vestat(*fixture("vestat.vz_tools-v2.2.txt"))
    assert list(stats) == ["411", "401", "410", "754", "120", "999", "205", "107", "1"]
    ve = stats["754"]
    assert (ve.user, ve.nice, ve.system) == (103174098, 1926162, 71940213)
    assert ve.cpu == 177040473
    assert ve.uptime == 11689240246  # jiffies: the first of the two uptime columns
    assert ve.uptime_fine == 23316480763008368  # cycles: the second
    assert ve.used == 419242854642510
    assert ve.numsched == 479828221
    assert stats["411"].cpu == 226491 + 717 + 132060


def test_vestat_openvz7_names_and_64bit_widths():
    cols = ["VEID", "user", "nice", "system", "uptime", "idle", "strv", "uptime", "used",
            "maxlat", "totlat", "numsched"]  # fmt: skip
    row = ["5e1c-ab", "10", "0", "5", "3000", "999000000", "0", "3000000000", "15000000",
           "0", "0", "77"]  # fmt: skip
    text = "Version: 2.2".ljust(251) + "\n" + " ".join(f"{c:>20}" for c in cols) + "\n"
    text += " ".join(f"{c:>20}" for c in row) + "\n"
    stats = openvz.parse_vestat(text, "vestat")
    assert stats["5e1c-ab"].cpu == 15
    assert stats["5e1c-ab"].uptime_fine == 3000000000  # nanoseconds on OpenVZ 7


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("       101 1 2 3 4 5 6 7 8 9 10 11\n", 1, "header"),
        ("Version: 2.2\n VEID user nice system\n", 2, "header is not"),
        ("Version: 1.0\n", 1, "version"),
    ],
)
def test_vestat_errors(text, line, words):
    with pytest.raises(ParseError) as err:
        openvz.parse_vestat(text, "/proc/vz/vestat")
    assert (err.value.path, err.value.line) == ("/proc/vz/vestat", line)
    assert words in str(err.value)


def test_vestat_short_row():
    text, path = fixture("vestat.vz_tools-v2.2.txt")
    lines = text.split("\n")
    lines[10] = " ".join(lines[10].split()[:9])  # the last row loses three columns
    cut = "\n".join(lines)
    with pytest.raises(ParseError) as err:
        openvz.parse_vestat(cut, path)
    assert err.value.line == 11
    assert "expected 12 fields, found 9" in str(err.value)


# --- veinfo, vzquota, vzlist ---------------------------------------------------------------


def test_veinfo():
    info = openvz.parse_veinfo(*fixture("veinfo.vz_tools.txt"))
    assert len(info) == 9 and "0" not in info
    assert info["754"] == openvz.VeInfo(2, 136, ("66.228.211.80", "66.228.211.87", "66.228.211.21"))
    assert info["1"].numproc == 55
    assert len(info["999"].ips) == 68


VZQUOTA = (FIXTURES / "vzquota.kernel-format.txt").read_text()


def test_vzquota():
    quotas = openvz.parse_vzquota(VZQUOTA, "/proc/vz/vzquota")
    assert quotas["101"] == openvz.Quota(524288, 1048576, 1153434)
    assert quotas["101"].used_bytes == 524288 * 1024
    assert quotas["101"].limit_bytes == 1153434 * 1024
    assert quotas["102"].limit_bytes is None  # 0: no limit
    assert openvz.Quota(1, 2, openvz.UNLIMITED_KB).limit_bytes is None


def test_vzquota_run_together_columns_make_that_quota_unknown():
    huge = "  1k-blocks         1000009007199254740991 9007199254740991          0          0\n"
    text = "qid: path usage softlimit hardlimit time expire\n103: /vz/private/103\n" + huge
    assert openvz.parse_vzquota(text, "q") == {}


def test_vzquota_error_line():
    bad = VZQUOTA.replace("     inodes          12345", "     inodes          12x45")
    with pytest.raises(ParseError) as err:
        openvz.parse_vzquota(bad, "/proc/vz/vzquota")
    assert err.value.line == 4


def test_vzlist_json():
    out = """[
  {"ctid": 101, "diskspace": {"usage": 2048, "softlimit": 4096, "hardlimit": 8192}},
  {"ctid": "ab-12", "diskspace": null},
  {"ctid": 0, "diskspace": {"usage": 1, "softlimit": 0, "hardlimit": 0}}
]"""
    assert openvz.parse_vzlist_json(out, "vzlist") == {"101": openvz.Quota(2048, 4096, 8192)}


def test_vzlist_table_output_is_not_json():
    text, _ = fixture("vzlist-aH.vz_tools.txt")  # what `vzlist -aH` prints instead
    with pytest.raises(ParseError) as err:
        openvz.parse_vzlist_json(text, "vzlist -j")
    assert err.value.path == "vzlist -j"
    assert err.value.line == 1


@pytest.mark.parametrize(
    "out",
    ['{"ctid": 1}', '[{"diskspace": {}}]', '[{"ctid": 1, "diskspace": {"usage": -1}}]',
     '[{"ctid": 1, "diskspace": [1, 2, 3]}]', "[1]"],
)  # fmt: skip
def test_vzlist_json_errors(out):
    with pytest.raises(ParseError):
        openvz.parse_vzlist_json(out, "vzlist")
