"""DRBD 8 /proc/drbd and DRBD 9 status/events2 parsers against real captured outputs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lblog.errors import ParseError
from lblog.ha import (
    parse_drbdadm_status,
    parse_drbdsetup_json,
    parse_events2,
    parse_proc_drbd,
)

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> tuple[str, str]:
    path = FIXTURES / name
    return path.read_text(), str(path)


# ------------------------------------------------------------------ DRBD 8


def test_84_three_minors_connected_mixed_roles() -> None:
    st = parse_proc_drbd(*read("proc_drbd.8.4-3dev-connected-mixed-roles.drbd-ug84.txt"))
    assert st.version == "8.4.0"
    assert [r.name for r in st.resources] == ["0", "1", "2"]
    assert [(r.role, r.volumes[0].peer_role) for r in st.resources] == [
        ("Secondary", "Secondary"),
        ("Primary", "Secondary"),
        ("Secondary", "Primary"),
    ]
    v = st.resources[1].volumes[0]
    assert (v.minor, v.connection, v.replication) == (1, "Connected", "Established")
    assert (v.disk, v.peer_disk, v.out_of_sync_kib) == ("UpToDate", "UpToDate", 0)
    assert st.healthy and all(r.healthy for r in st.resources)


def test_84_syncsource_progress_tab_indented() -> None:
    st = parse_proc_drbd(*read("proc_drbd.8.4-syncsource-progress.pacemaker-cfs.txt"))
    assert st.version == "8.4.11-1"
    (res,) = st.resources
    v = res.volumes[0]
    assert (v.connection, v.replication) == ("Connected", "SyncSource")
    assert (v.role, v.peer_role, v.disk, v.peer_disk) == (
        "Primary",
        "Secondary",
        "UpToDate",
        "Inconsistent",
    )
    assert v.out_of_sync_kib == 481052
    assert v.progress_pct == pytest.approx(8.6)
    assert v.finish_s == 111
    assert v.resyncing and not v.stalled and not res.healthy and not st.healthy


def test_84_two_minors_source_and_target_with_want() -> None:
    st = parse_proc_drbd(*read("proc_drbd.8.4-2dev-syncsource-synctarget.cockpit-issue17042.txt"))
    one, two = (r.volumes[0] for r in st.resources)
    assert (one.replication, one.progress_pct, one.finish_s) == (
        "SyncSource",
        17.9,
        10 * 3600 + 43 * 60 + 36,
    )
    assert one.out_of_sync_kib == 3209234560
    assert (two.replication, two.role, two.disk) == ("SyncTarget", "Secondary", "Inconsistent")
    assert (two.progress_pct, two.finish_s) == (28.9, 3 * 3600 + 50 * 60 + 39)


def test_83_stalled_with_delay_probe() -> None:
    st = parse_proc_drbd(*read("proc_drbd.8.3-syncsource-stalled.checkmk.txt"))
    assert st.version == "8.3.8"
    v = st.resources[0].volumes[0]
    assert v.stalled and v.finish_s is None
    assert v.progress_pct == pytest.approx(0.1)
    assert v.out_of_sync_kib == 523171100


def test_84_split_brain_both_sides() -> None:
    a = parse_proc_drbd(
        *read("proc_drbd.8.4-standalone-primary-peer-inconsistent.trinity-issue651.txt")
    )
    b = parse_proc_drbd(
        *read("proc_drbd.8.4-wfconnection-secondary-inconsistent.trinity-issue651.txt")
    )
    va, vb = a.resources[0].volumes[0], b.resources[0].volumes[0]
    assert (va.connection, va.replication, va.role, va.peer_role) == (
        "StandAlone",
        "Off",
        "Primary",
        "Unknown",
    )
    assert (va.disk, va.peer_disk, va.out_of_sync_kib) == ("UpToDate", "Inconsistent", 40448716)
    assert (vb.connection, vb.role, vb.disk, vb.peer_disk) == (
        "WFConnection",
        "Secondary",
        "Inconsistent",
        "DUnknown",
    )
    assert not a.healthy and not b.healthy and not va.resyncing


def test_unconfigured_minor_skipped_and_verify_progress() -> None:
    text = (
        "version: 8.4.3 (api:1/proto:86-101)\n"
        " 0: cs:VerifyS ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n"
        "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
        "\t[=====>..............] verified: 30.1% (700/1000)M\n"
        "\tfinish: 0:00:09 speed: 75,112 (75,112) want: 100,000 K/sec\n"
        " 1: cs:Unconfigured\n"
    )
    st = parse_proc_drbd(text, "x")
    (res,) = st.resources
    v = res.volumes[0]
    assert (v.replication, v.progress_pct, v.finish_s) == ("VerifyS", 30.1, 9)
    assert v.resyncing and not v.healthy


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "version"),
        ("version: 8.4.0\n 0: ro:Primary/Secondary ds:UpToDate/UpToDate\n", 2, "cs:"),
        ("version: 8.4.0\n 0: cs:Connected ro:Primary ds:UpToDate/UpToDate\n", 2, "ro:"),
        ("version: 8.4.0\n 0: cs:Bogus ro:Primary/Secondary ds:UpToDate/UpToDate\n", 2, "Bogus"),
        (
            "version: 8.4.0\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate\n"
            "    oos:12x\n",
            3,
            "oos",
        ),
        (
            "version: 8.4.0\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate\n"
            "garbage here\n",
            3,
            "unexpected",
        ),
        (
            "version: 8.4.0\n 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate\n"
            " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate\n",
            3,
            "twice",
        ),
    ],
)
def test_proc_drbd_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_proc_drbd(text, "/proc/drbd")
    assert err.value.path == "/proc/drbd"
    assert err.value.line == line
    assert words in err.value.message


def test_drbd9_proc_drbd_has_no_resources() -> None:
    text = "version: 9.0.16-1 (api:2/proto:86-114)\nGIT-hash: ab9777df build by x, 2018-11-08\n"
    st = parse_proc_drbd(text, "x")
    assert st.version == "9.0.16-1" and st.resources == ()


# ------------------------------------------------------------------ DRBD 9


def test_drbdadm_status_syncsource() -> None:
    st = parse_drbdadm_status(*read("drbdadm_status.9-2node-syncsource.salt-shaptools.txt"))
    (res,) = st.resources
    assert (res.name, res.role) == ("single", "Primary")
    (v,) = res.volumes
    assert (v.peer, v.connection, v.replication) == ("opensuse-node2", "Connected", "SyncSource")
    assert (v.disk, v.peer_disk, v.peer_role) == ("UpToDate", "Inconsistent", "Secondary")
    assert v.progress_pct == pytest.approx(96.47)
    assert v.resyncing and not res.healthy


def test_drbdadm_status_connecting() -> None:
    st = parse_drbdadm_status(
        *read("drbdadm_status.9-2node-connecting-inconsistent.pacemaker-cfs.txt")
    )
    v = st.resources[0].volumes[0]
    assert (st.resources[0].name, v.role, v.disk) == ("wwwdata", "Secondary", "Inconsistent")
    assert (v.peer, v.connection, v.replication, v.peer_disk) == (
        "pcmk-2",
        "Connecting",
        "Off",
        "DUnknown",
    )
    assert not st.healthy


def test_drbdadm_status_two_volumes_two_resources() -> None:
    text = (
        "r0 role:Primary\n"
        "  volume:0 disk:UpToDate\n"
        "  volume:1 disk:UpToDate\n"
        "  bob role:Secondary\n"
        "    volume:0 peer-disk:UpToDate\n"
        "    volume:1 replication:SyncSource peer-disk:Inconsistent done:12.50\n"
        "\n"
        "r1 role:Secondary suspended:no\n"
        "  disk:UpToDate\n"
        "  bob role:Primary\n"
        "    peer-disk:UpToDate\n"
    )
    st = parse_drbdadm_status(text, "x")
    r0, r1 = st.resources
    assert [(v.volume, v.replication, v.progress_pct) for v in r0.volumes] == [
        (0, "Established", None),
        (1, "SyncSource", 12.5),
    ]
    assert not r0.healthy and r1.healthy and r1.volumes[0].peer_role == "Primary"


def test_drbdsetup_json_connected() -> None:
    st = parse_drbdsetup_json(*read("drbdsetup_status_json.9-primary-1peer.salt-shaptools.json"))
    (res,) = st.resources
    (v,) = res.volumes
    assert (res.name, res.role, v.volume, v.minor) == ("beijing", "Primary", 0, 5)
    assert (v.peer, v.connection, v.replication, v.peer_role) == (
        "salt-node3",
        "Connected",
        "Established",
        "Secondary",
    )
    assert (v.disk, v.peer_disk, v.out_of_sync_kib, v.progress_pct) == (
        "UpToDate",
        "UpToDate",
        0,
        None,
    )
    assert st.healthy


def test_drbdsetup_json_no_peers_is_standalone() -> None:
    text = (
        '[{"name": "r0", "role": "Primary", "connections": [],'
        ' "devices": [{"volume": 0, "minor": 0, "disk-state": "UpToDate"}]}]'
    )
    v = parse_drbdsetup_json(text, "x").resources[0].volumes[0]
    assert (v.peer, v.connection, v.peer_disk) == (None, "StandAlone", "DUnknown")
    assert not v.healthy


def test_events2_final_state() -> None:
    st = parse_events2(*read("drbdsetup_events2.9-statistics-sync.drbd-utils-test.txt"))
    (res,) = st.resources
    (v,) = res.volumes
    assert (res.name, res.role) == ("some-resource", "Secondary")
    assert (v.minor, v.disk, v.peer, v.connection) == (1000, "UpToDate", "some-peer", "Connected")
    assert (v.replication, v.peer_disk, v.peer_role) == ("SyncSource", "Inconsistent", "Secondary")
    assert (v.out_of_sync_kib, v.progress_pct, v.finish_s) == (2500, 37.5, 10)


def test_events2_destroy_and_timestamps() -> None:
    text = (
        "2024-01-01T10:00:00.000000+00:00 exists resource name:r0 role:Primary\n"
        "2024-01-01T10:00:00.000000+00:00 exists device name:r0 volume:0 minor:0 disk:UpToDate\n"
        "exists connection name:r0 peer-node-id:1 conn-name:bob connection:Connected"
        " role:Secondary\n"
        "exists peer-device name:r0 peer-node-id:1 conn-name:bob volume:0"
        " replication:Established peer-disk:UpToDate\n"
        "exists resource name:gone role:Secondary\n"
        "exists -\n"
        "destroy resource name:gone\n"
        "call helper name:r0 volume:0 helper:before-resync-target\n"
    )
    st = parse_events2(text, "x")
    assert [r.name for r in st.resources] == ["r0"]
    assert st.healthy


@pytest.mark.parametrize(
    ("parser", "text", "line"),
    [
        (parse_drbdadm_status, "  disk:UpToDate\n", 1),
        (parse_drbdadm_status, "r0 role:Primary\n   disk:UpToDate\n", 2),
        (parse_drbdadm_status, "r0 role:Primary\n  volume:x disk:UpToDate\n", 2),
        (parse_drbdadm_status, "r0\n", 1),
        (parse_drbdsetup_json, '[{"name": "r0", "role": "Primary",\n "devices": 5}]', None),
        (parse_drbdsetup_json, '[{"name": "r0"', 1),
        (parse_events2, "exists device name:r0 volume:0 disk:UpToDate\n", 1),
        (parse_events2, "exists resource name:r0 role:Primary\nfrobnicate resource name:r0\n", 2),
        (parse_events2, "exists resource name:r0\n", 1),
    ],
)
def test_drbd9_errors(parser: Callable[[str, str], object], text: str, line: int | None) -> None:
    with pytest.raises(ParseError) as err:
        parser(text, "drbd-out")
    assert err.value.path == "drbd-out"
    assert err.value.line == line
