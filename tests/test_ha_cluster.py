"""Pacemaker (XML and text), rgmanager and Heartbeat parsers, and the pair health verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from lblog.errors import ParseError
from lblog.ha import (
    ClusterFailure,
    ClusterNode,
    ClusterState,
    heartbeat_state,
    pair_health,
    parse_clustat_text,
    parse_clustat_xml,
    parse_crm_mon_text,
    parse_crm_mon_xml,
    parse_haresources,
    parse_hbstatus,
    parse_listnodes,
    parse_proc_drbd,
    parse_word,
)
from lblog.ha.heartbeat import NODE_STATUSES, RSC_STATUSES

FIXTURES = Path(__file__).parent / "fixtures"


def read(name: str) -> tuple[str, str]:
    path = FIXTURES / name
    return path.read_text(), str(path)


def flags(node: ClusterNode | None) -> tuple[bool, ...]:
    assert node is not None
    return (node.online, node.standby, node.unclean, node.maintenance, node.shutdown, node.pending)


# ------------------------------------------------------------- Pacemaker XML


def test_crm_mon_xml_offline_node_and_maintenance_mode() -> None:
    st = parse_crm_mon_xml(*read("crm_mon-xml.pcmk3-2node-offline-maintenance.pacemaker-cts.xml"))
    assert st.manager == "pacemaker"
    assert [n.name for n in st.nodes] == ["cluster01", "cluster02"]
    assert flags(st.node("cluster01")) == (True, False, False, False, False, False)
    assert flags(st.node("cluster02")) == (False, False, False, False, False, False)
    assert st.node("cluster02").flags == ("dc",)  # type: ignore[union-attr]
    assert st.maintenance_mode and st.quorum is True
    assert [(r.id, r.kind, r.role, r.nodes, r.managed) for r in st.resources] == [
        ("Fencing", "stonith:fence_xvm", "Started", ("cluster01",), False),
        ("rsc1", "ocf:pacemaker:Dummy", "Started", ("cluster01",), False),
        ("rsc2", "ocf:pacemaker:Dummy", "Started", ("cluster02",), False),
    ]
    assert st.failures == ()


def test_crm_mon_xml_failures_clones_bundles_groups() -> None:
    st = parse_crm_mon_xml(*read("crm_mon-xml.pcmk3-failures-partial.pacemaker-cts.xml"))
    assert len(st.nodes) == 4
    assert st.node("httpd-bundle-0").flags == ("remote",)  # type: ignore[union-attr]
    assert not st.maintenance_mode and st.quorum is True
    assert len(st.resources) == 16
    ping = [(r.role, r.nodes, r.group) for r in st.resources if r.id == "ping"]
    assert ping == [("Started", ("cluster01",), "ping-clone"), ("Stopped", (), "ping-clone")]
    failed = [(r.id, r.nodes, r.group) for r in st.resources if r.failed]
    assert failed == [
        ("httpd", ("httpd-bundle-1",), "httpd-bundle"),
        ("dummy-2", ("cluster02",), "partially-active-group"),
    ]
    stopped = [r.id for r in st.resources if r.role == "Stopped"]
    assert stopped == ["ping", "dummy-3", "dummy-4", "smart-mon"]
    assert st.failures == (
        ClusterFailure("cluster02", "dummy-2", "monitor", "Unimplemented (rc=3)"),
    )


def test_crm_mon_xml_11_resources_nested_under_nodes() -> None:
    st = parse_crm_mon_xml(*read("crm_mon-xml.pcmk1.1-2node-hana-by-node.ha_cluster_exporter.xml"))
    assert [n.name for n in st.nodes if n.usable] == ["hana01", "hana02"]
    hana = [(r.role, r.nodes) for r in st.resources if r.id == "rsc_SAPHana_PRD_HDB00"]
    assert hana == [("Master", ("hana01",)), ("Slave", ("hana02",))]
    assert len(st.resources) == 6
    assert st.resources[0].kind == "ocf:suse:SAPHana"
    assert st.quorum is True and not st.maintenance_mode


def test_crm_mon_legacy_as_xml() -> None:
    st = parse_crm_mon_xml(*read("crm_mon-X.pcmk1.1-2node-ms-drbd-failure.handwritten.xml"))
    assert st.quorum is False
    assert flags(st.node("node2")) == (True, False, False, False, True, False)
    assert [(r.id, r.role, r.nodes, r.group) for r in st.resources] == [
        ("drbd_r0", "Master", ("node1",), "ms_drbd_r0"),
        ("drbd_r0", "Slave", ("node2",), "ms_drbd_r0"),
        ("vip", "Started", ("node1",), None),
    ]
    assert st.resources[2].failed and st.resources[2].kind == "ocf:heartbeat:IPaddr2"
    assert st.failures == (ClusterFailure("node1", "vip", "monitor", "not running (rc=7)"),)


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("<cib/>", 1, "not crm_mon"),
        (
            '<pacemaker-result>\n<status code="102" message="Not connected"/>\n</pacemaker-result>',
            1,
            "Not connected",
        ),
        ("<crm_mon>\n<nodes>\n<node name='a' online='maybe'/>\n</nodes></crm_mon>", 3, "boolean"),
        ("<crm_mon>\n<nodes>\n<node online='true'/>\n</nodes></crm_mon>", 3, "name"),
        ("<crm_mon>\n<nodes>\n</crm_mon>", 3, "XML"),
        ('<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<crm_mon/>', 1, "entity"),
    ],
)
def test_crm_mon_xml_errors(text: str, line: int, words: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_crm_mon_xml(text, "crm_mon")
    assert (err.value.path, err.value.line) == ("crm_mon", line)
    assert words in err.value.message


# ------------------------------------------------------------ Pacemaker text


def test_crm_mon_text_10_heartbeat_stack() -> None:
    st = parse_crm_mon_text(*read("crm_mon-1.pcmk1.0-heartbeat-stack-header.linux-ha-ug.txt"))
    assert [n.name for n in st.nodes if n.usable] == ["alice", "bob"]
    assert st.quorum is True and st.resources == ()


def test_crm_mon_text_3x_offline_maintenance() -> None:
    st = parse_crm_mon_text(*read("crm_mon-1.pcmk3-2node-offline-maintenance.pacemaker-cts.txt"))
    assert flags(st.node("cluster01"))[0] is True
    assert flags(st.node("cluster02"))[0] is False
    assert st.maintenance_mode and st.quorum is True
    assert [(r.id, r.kind, r.nodes, r.managed) for r in st.resources] == [
        ("Fencing", "stonith:fence_xvm", ("cluster01",), False),
        ("rsc1", "ocf:pacemaker:Dummy", ("cluster01",), False),
        ("rsc2", "ocf:pacemaker:Dummy", ("cluster02",), False),
    ]


def test_crm_mon_text_unclean_offline() -> None:
    st = parse_crm_mon_text(
        *read("crm_mon-1r.pcmk1.1-2node-unclean-offline.whamcloud-issue646.txt")
    )
    assert flags(st.node("kmds02")) == (False, False, True, False, False, False)
    assert flags(st.node("kmds01")) == (True, False, False, False, False, False)
    assert [(r.id, r.kind, r.role, r.nodes) for r in st.resources] == [
        ("MGS_5e14ce", "ocf:chroma:Target", "Stopped", ())
    ]


def test_pcs_status_standby_and_master_slave_set() -> None:
    st = parse_crm_mon_text(*read("pcs_status.pcmk1.1-2node-drbd-ms-standby.pacemaker-cfs.txt"))
    assert flags(st.node("pcmk-1")) == (True, True, False, False, False, False)
    assert flags(st.node("pcmk-2")) == (True, False, False, False, False, False)
    assert [(r.id, r.role, r.nodes, r.group) for r in st.resources] == [
        ("ClusterIP", "Started", ("pcmk-2",), None),
        ("WebSite", "Started", ("pcmk-2",), None),
        ("WebData", "Master", ("pcmk-2",), "WebDataClone"),
        ("WebData", "Stopped", (), "WebDataClone"),
        ("WebFS", "Started", ("pcmk-2",), None),
    ]


def test_pcs_status_failed_resource_and_fencing_actions() -> None:
    st = parse_crm_mon_text(*read("pcs_status.pcmk1.1-2node-failed-actions.insights-core.txt"))
    assert [n.name for n in st.nodes] == ["test-host1", "test-host2"]
    assert st.failures == (
        ClusterFailure("test-host1", "clusterfence", "start", "unknown error (rc=1)"),
        ClusterFailure("test-host2", "clusterfence", "start", "unknown error (rc=1)"),
        ClusterFailure("test-HOST2", None, "reboot", "fencing failed"),
        ClusterFailure("test-host2", None, "reboot", "fencing failed"),
    )


def test_crm_mon_text_2x_layout_flags() -> None:
    text = (
        "Cluster Summary:\n"
        "  * Current DC: n1 (version 2.1.2) - partition WITHOUT quorum\n"
        "Node List:\n"
        "  * Node n2: UNCLEAN (online)\n"
        "  * Node n3: maintenance\n"
        "  * Online: [ n1 ]\n"
        "Full List of Resources:\n"
        "  * Clone Set: ping-clone [ping]:\n"
        "    * Started: [ n1 n2 ]\n"
        "  * Resource Group: web (1 member inactive):\n"
        "    * ip\t(ocf:heartbeat:IPaddr2):\t Started n1\n"
        "    * www\t(ocf:heartbeat:apache):\t FAILED n1\n"
    )
    st = parse_crm_mon_text(text, "x")
    assert st.quorum is False
    assert flags(st.node("n2")) == (True, False, True, False, False, False)
    assert flags(st.node("n3")) == (True, False, False, True, False, False)
    assert [(r.id, r.nodes, r.group, r.failed) for r in st.resources] == [
        ("ping", ("n1",), "ping-clone", False),
        ("ping", ("n2",), "ping-clone", False),
        ("ip", ("n1",), "web", False),
        ("www", ("n1",), "web", True),
    ]


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("Stack: corosync\n", None),
        ("Online: [ a b\n", 1),
        ("Online: [ a ]\n\nFull list of resources:\n\n what is this\n", 5),
        ("Online: [ a ]\nFull list of resources:\n x\t(ocf::h:D):\tFlying a\n", 3),
        ("Online: [ a ]\nFailed Actions:\n* nonsense\n", 3),
    ],
)
def test_crm_mon_text_errors(text: str, line: int | None) -> None:
    with pytest.raises(ParseError) as err:
        parse_crm_mon_text(text, "pcs status")
    assert (err.value.path, err.value.line) == ("pcs status", line)


# ---------------------------------------------------------------- rgmanager


def test_clustat_xml_disabled_service() -> None:
    st = parse_clustat_xml(*read("clustat-x.rhel6-3node-service-disabled.deimos.xml"))
    assert st.manager == "rgmanager" and st.quorum is True
    assert [(n.name, n.online, n.flags) for n in st.nodes] == [
        ("node2.deimos.fr", True, ("rgmanager",)),
        ("node1.deimos.fr", True, ("local", "rgmanager")),
        ("node3.deimos.fr", True, ("rgmanager",)),
    ]
    (svc,) = st.resources
    assert (svc.id, svc.kind, svc.role, svc.nodes, svc.failed) == (
        "service:webby",
        "service",
        "disabled",
        (),
        False,
    )


def test_clustat_text_started_service() -> None:
    st = parse_clustat_text(*read("clustat.rhel6-2node-service-started.deimos.txt"))
    assert st.quorum is True
    assert [(n.name, n.online, n.flags) for n in st.nodes] == [
        ("node2.deimos.fr", True, ("rgmanager",)),
        ("node1.deimos.fr", True, ("local", "rgmanager")),
    ]
    (svc,) = st.resources
    assert (svc.id, svc.role, svc.nodes) == ("service:apache", "started", ("node2.deimos.fr",))


def test_clustat_text_offline_member_failed_service_quorum_disk() -> None:
    text = (
        "Member Status: Inquorate\n\n"
        " Member Name          ID   Status\n"
        " ------ ----          ---- ------\n"
        " a                       1 Online, Local, rgmanager\n"
        " b                       2 Offline\n"
        " /dev/sdb1               0 Online, Quorum Disk\n\n"
        " Service Name         Owner (Last)         State\n"
        " ------- ----         ----- ------         -----\n"
        " service:db           (b)                  failed\n"
        " vm:guest1            a                    migrating\n"
    )
    st = parse_clustat_text(text, "clustat")
    assert st.quorum is False
    assert [(n.name, n.online) for n in st.nodes] == [("a", True), ("b", False)]
    assert [(r.id, r.kind, r.nodes, r.failed) for r in st.resources] == [
        ("service:db", "service", (), True),
        ("vm:guest1", "vm", ("a",), False),
    ]


def test_clustat_errors() -> None:
    with pytest.raises(ParseError) as err:
        parse_clustat_xml('<clustat>\n<nodes>\n<node name="a" state="7"/>\n</nodes></clustat>', "c")
    assert err.value.line == 3
    with pytest.raises(ParseError) as err:
        parse_clustat_text("Member Status: Quorate\n", "c")
    assert err.value.line is None


# ---------------------------------------------------------------- Heartbeat


def test_haresources_continuation_and_kinds() -> None:
    (group,) = parse_haresources(*read("haresources.drbddisk-mysql.drbd-ug84.txt"))
    assert (group.node, group.line, group.name) == ("bob", 1, "drbddisk::mysql")
    assert [(r.kind, r.args) for r in group.resources] == [
        ("drbddisk", ("mysql",)),
        ("Filesystem", ("/dev/drbd0", "/var/lib/mysql", "ext3")),
        ("IPaddr", ("10.9.42.1",)),
        ("mysql", ()),
    ]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("bob drbddisk::r0 \\\n", 1, "continued"),
        ("bob\n", 1, "no resources"),
        ("bob Filesystem::/dev/drbd0::::ext3\n", 1, "malformed"),
        ("# c\nbob a\nalice a\n", 3, "line 2"),
    ],
)
def test_haresources_errors(text: str, line: int, words: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_haresources(text, "/etc/ha.d/haresources")
    assert (err.value.path, err.value.line) == ("/etc/ha.d/haresources", line)
    assert words in err.value.message


def test_cl_status_answers() -> None:
    assert parse_hbstatus("Heartbeat is running on this machine.\n") is True
    assert parse_hbstatus("Heartbeat is stopped on this machine.\n") is False
    assert parse_listnodes("alice\nbob\n10.0.0.254\n") == ("alice", "bob", "10.0.0.254")
    assert parse_word("dead\n", NODE_STATUSES, "x") == "dead"
    assert parse_word("foreign\n", RSC_STATUSES, "x") == "foreign"
    with pytest.raises(ParseError):
        parse_word("sleepy", NODE_STATUSES, "cl_status nodestatus bob")
    with pytest.raises(ParseError):
        parse_hbstatus("cl_status: unknown command")


def test_heartbeat_state_places_groups() -> None:
    text = (
        "alice drbddisk::r0 Filesystem::/dev/drbd0::/srv::ext4 vz\n"
        "bob drbddisk::r1 10.0.0.5/24/eth0\n"
    )
    groups = parse_haresources(text, "h")
    status = {"alice": "active", "bob": "active", "gw": "ping"}
    st = heartbeat_state(True, "alice", status, groups, "local")
    assert [n.name for n in st.nodes] == ["alice", "bob"]
    placed = {r.id: r.nodes for r in st.resources}
    assert placed["vz"] == ("alice",) and placed["drbddisk::r1"] == ("bob",)
    # bob died: alice took everything over
    st = heartbeat_state(True, "alice", {"alice": "active", "bob": "dead"}, groups, "all")
    assert {r.nodes for r in st.resources} == {("alice",)}
    assert not pair_health(st, None).healthy
    # in transition nothing has a place
    st = heartbeat_state(True, "alice", status, groups, "transition")
    assert {r.role for r in st.resources} == {"Transition"}
    stopped = heartbeat_state(False, "alice", {})
    assert stopped.nodes == (ClusterNode("alice", online=False, flags=("local",)),)


# ------------------------------------------------------------------ health


def test_pair_health() -> None:
    ok = parse_crm_mon_xml(*read("crm_mon-xml.pcmk1.1-2node-hana-by-node.ha_cluster_exporter.xml"))
    drbd_ok = parse_proc_drbd(*read("proc_drbd.8.4-3dev-connected-mixed-roles.drbd-ug84.txt"))
    assert pair_health(ok, drbd_ok).healthy
    assert pair_health(ok, drbd_ok, pair=("hana01", "hana02")).reasons == ()

    syncing = parse_proc_drbd(*read("proc_drbd.8.4-syncsource-progress.pacemaker-cfs.txt"))
    (reason,) = pair_health(ok, syncing).reasons
    assert reason.startswith("drbd 1/0: Connected SyncSource") and "8.6% synced" in reason

    standby = parse_crm_mon_text(
        *read("pcs_status.pcmk1.1-2node-drbd-ms-standby.pacemaker-cfs.txt")
    )
    assert pair_health(standby, None).reasons == ("node pcmk-1 standby",)

    maint = parse_crm_mon_xml(
        *read("crm_mon-xml.pcmk3-2node-offline-maintenance.pacemaker-cts.xml")
    )
    reasons = pair_health(maint, None).reasons
    assert reasons[:2] == ("node cluster02 offline", "cluster in maintenance mode")
    assert "resource rsc1 not managed" in reasons

    fails = parse_crm_mon_xml(*read("crm_mon-xml.pcmk3-failures-partial.pacemaker-cts.xml"))
    reasons = pair_health(fails, None, pair=("cluster01", "cluster02")).reasons
    assert reasons[0].startswith("failed monitor of dummy-2 on cluster02")
    assert "resource httpd failed on httpd-bundle-1" in reasons

    lost = ClusterState("pacemaker", (ClusterNode("a", True),), quorum=False)
    assert pair_health(lost, None, pair=("a", "b")).reasons == (
        "node b unknown to pacemaker",
        "cluster has no quorum",
    )
