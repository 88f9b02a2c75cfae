"""Executor presets: every argv, every location parser, validation, and `locate`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lbvm import presets
from lbvm.errors import ExecutorError, ParseError
from lbvm.presets import SSH, Location, get, locate, render, render_location

FIXTURES = Path(__file__).parent / "fixtures"

MOVES = {
    "vzmigrate": (
        "101", [*SSH, "vz1a", "vzmigrate", "--online", "vz2a", "101"]),
    "prlctl": (
        "ct101", [*SSH, "vz1a", "prlctl", "migrate", "ct101", "vz2a"]),
    "clusvcadm": (
        "guest1", ["clusvcadm", "-M", "vm:guest1", "-m", "vz2a"]),
    "clusvcadm-relocate": (
        "apache", ["clusvcadm", "-r", "apache", "-m", "vz2a"]),
    "crm_resource": (
        "vm101", ["crm_resource", "--move", "--resource", "vm101", "--node", "vz2a"]),
    "pcs": (
        "vm101", ["pcs", "resource", "move", "vm101", "vz2a"]),
    "virsh": (
        "web01", [*SSH, "vz1a", "virsh", "migrate", "--live", "--persistent",
                  "--undefinesource", "web01", "qemu+ssh://vz2a/system"]),
    "incus": (
        "c1", ["incus", "move", "c1", "--target", "vz2a"]),
    "pct": (
        "101", [*SSH, "vz1a", "pct", "migrate", "101", "vz2a", "--restart"]),
    "qm": (
        "100", [*SSH, "vz1a", "qm", "migrate", "100", "vz2a", "--online"]),
    "switchover": (
        "vm101", ["crm_resource", "--move", "--resource", "vm101", "--node", "vz2a"]),
}  # fmt: skip

LOCATES = {
    "vzmigrate": ("101", [*SSH, "vz2a", "vzlist", "-H", "-o", "ctid,status", "101"]),
    "prlctl": ("ct101", [*SSH, "vz2a", "prlctl", "list", "-H", "-o", "name,status", "ct101"]),
    "clusvcadm": ("guest1", ["clustat", "-x"]),
    "crm_resource": ("vm101", ["crm_resource", "--locate", "--resource", "vm101"]),
    "pcs": ("vm101", ["crm_resource", "--locate", "--resource", "vm101"]),
    "virsh": ("web01", ["virsh", "-c", "qemu+ssh://vz2a/system", "domstate", "web01"]),
    "incus": ("c1", ["incus", "list", "c1", "--format", "csv", "-c", "nL"]),
    "qm": ("100", ["pvesh", "get", "/cluster/resources", "--type", "vm",
                   "--output-format", "json"]),
}  # fmt: skip


def test_every_preset_is_tested() -> None:
    assert set(MOVES) == set(presets.PRESETS)
    assert all(p.location is not None for p in presets.PRESETS.values())


@pytest.mark.parametrize("name", sorted(MOVES))
def test_move_argv(name: str) -> None:
    ve, expected = MOVES[name]
    assert render(get(name), ve, "vz1a", "vz2a") == expected


@pytest.mark.parametrize("name", sorted(LOCATES))
def test_location_argv(name: str) -> None:
    ve, expected = LOCATES[name]
    assert render_location(get(name), ve, "vz2a") == expected


def test_hosts_override_node_names() -> None:
    argv = render(get("vzmigrate"), "101", "vz1a", "vz2a",
                  src_host="vz1a.dc.example.org", dst_host="10.0.0.12")
    assert argv == [*SSH, "vz1a.dc.example.org", "vzmigrate", "--online", "10.0.0.12", "101"]
    assert render(get("vzmigrate", via_ssh=False), "101", "a", "b")[0] == "vzmigrate"


@pytest.mark.parametrize(
    "ve",
    ["", "-rf", "101; reboot", "a b", "$(id)", "ve`x`", "x" * 129, "a/b", "ve\n", ".hidden"],
)
def test_bad_ve_ids_are_refused(ve: str) -> None:
    with pytest.raises(ExecutorError, match="VE id"):
        render(get("crm_resource"), ve, "vz1a", "vz2a")


@pytest.mark.parametrize("ve", ["abc", "1o1", "99", "0100", "1234567890"])
def test_proxmox_ids_are_integers(ve: str) -> None:
    with pytest.raises(ExecutorError, match="vmid"):
        render(get("qm"), ve, "pve1", "pve2")


@pytest.mark.parametrize("host", ["", "-oProxyCommand=x", "a..b", "-a", "a-", "x" * 64,
                                  "node1;id", "a b", "vz2a\n"])
def test_bad_hosts_are_refused(host: str) -> None:
    with pytest.raises(ExecutorError, match="host name"):
        render(get("pcs"), "vm1", "vz1a", host)


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ExecutorError, match=r"unknown executor preset 'xen'.*vzmigrate"):
        get("xen")


def test_template_check() -> None:
    presets.check_template(["virsh", "migrate", "{ve}", "qemu+ssh://{dst_host}/system"])
    presets.check_template(["vzlist", "{node}", "{veid}"], query=True)
    with pytest.raises(ExecutorError, match="placeholders"):
        presets.check_template(["vzmigrate", "{dest}", "{ve}"])
    with pytest.raises(ExecutorError, match="non-empty"):
        presets.check_template([])


# -- parsers ---------------------------------------------------------------------------


def test_vzlist_parser() -> None:
    parse = presets.parse_listing
    assert parse("       101 running\n", "101", "vz2a") == "vz2a"
    assert parse("       101 stopped\n", "101", "vz2a") == "vz2a"
    assert parse("", "101", "vz2a") is None  # "Container(s) not found" goes to stderr
    assert parse("      1011 running\n", "101", "vz2a") is None
    # the captured `vzlist -aH` layout (ctid nproc status ip hostname) still reads
    listing = (FIXTURES / "vzlist-aH.vz_tools.txt").read_text()
    assert parse(listing, "754", "vz2a") == "vz2a"
    assert parse(listing, "75", "vz2a") is None


def test_prlctl_parser() -> None:
    out = "ct101                            running\n"
    assert presets.parse_listing(out, "ct101", "vz2a") == "vz2a"
    assert presets.parse_listing("ct1012  running\n", "ct101", "vz2a") is None


def test_clustat_parser_on_captured_xml() -> None:
    xml = (FIXTURES / "clustat-x.rhel6-3node-service-disabled.deimos.xml").read_text()
    assert presets.parse_clustat_xml(xml, "webby", "n") is None  # disabled, owner "none"
    started = xml.replace('state="119" state_str="disabled"', 'state="112" state_str="started"')
    started = started.replace('owner="none"', 'owner="node3.deimos.fr"')
    assert presets.parse_clustat_xml(started, "webby", "n") == "node3.deimos.fr"
    vm = started.replace("service:webby", "vm:webby")
    assert presets.parse_clustat_xml(vm, "webby", "n") == "node3.deimos.fr"
    assert presets.parse_clustat_xml(started, "other", "n") is None
    with pytest.raises(ParseError, match="clustat"):
        presets.parse_clustat_xml("clustat: could not connect to cluster", "webby", "n")


def test_crm_locate_parser() -> None:
    parse = presets.parse_crm_locate
    assert parse("resource vm101 is running on: vz2a\n", "vm101", "x") == "vz2a"
    assert parse("resource ms_drbd is running on: vz2a Master\n", "ms_drbd", "x") == "vz2a"
    assert parse("resource vm101 is NOT running\n", "vm101", "x") is None
    clone = "resource c is running on: vz1a\nresource c is running on: vz1b\n"
    assert parse(clone, "c", "x") is None
    assert parse("resource vm1011 is running on: vz2a\n", "vm101", "x") is None


def test_virsh_domstate_parser() -> None:
    assert presets.parse_virsh_domstate("running\n\n", "web01", "vz2a") == "vz2a"
    assert presets.parse_virsh_domstate("paused\n\n", "web01", "vz2a") == "vz2a"
    assert presets.parse_virsh_domstate("shut off\n\n", "web01", "vz2a") is None
    assert presets.parse_virsh_domstate("", "web01", "vz2a") is None


def test_incus_csv_parser() -> None:
    out = "c1,vz2a\nc10,vz1a\n"
    assert presets.parse_incus_csv(out, "c1", "x") == "vz2a"
    assert presets.parse_incus_csv(out, "c10", "x") == "vz1a"
    assert presets.parse_incus_csv("c1,\n", "c1", "x") is None
    assert presets.parse_incus_csv(out, "c2", "x") is None


def test_pvesh_parser() -> None:
    out = json.dumps([
        {"id": "qemu/100", "type": "qemu", "node": "pve1", "vmid": 100, "status": "running",
         "name": "web", "maxmem": 4294967296, "maxcpu": 2, "template": 0},
        {"id": "lxc/101", "type": "lxc", "node": "pve2", "vmid": 101, "status": "running",
         "name": "ct101", "maxmem": 536870912, "maxcpu": 1},
    ], indent=2)  # fmt: skip
    assert presets.parse_pvesh_resources(out, "100", "x") == "pve1"
    assert presets.parse_pvesh_resources(out, "101", "x") == "pve2"
    assert presets.parse_pvesh_resources(out, "102", "x") is None
    with pytest.raises(ParseError, match="pvesh"):
        presets.parse_pvesh_resources("ipcc_send_rec[1] failed", "100", "x")
    with pytest.raises(ParseError, match="list"):
        presets.parse_pvesh_resources("{}", "100", "x")


# -- locate with a fake runner ------------------------------------------------------------


class FakeRunner:
    def __init__(self, answers: dict[str, tuple[int, str]]) -> None:
        self.answers = answers  # keyed by the ssh target or the -c URI host
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], timeout: float) -> tuple[int, str]:
        self.calls.append(argv)
        for key, answer in self.answers.items():
            if key in argv or any(key in a for a in argv):
                return answer
        return 0, ""


def test_locate_per_node_finds_the_source() -> None:
    run = FakeRunner({"vz2a": (1, ""), "vz1a": (0, "  101 running\n")})
    assert locate(get("vzmigrate"), "101", ["vz2a", "vz1a"], run=run) == Location("vz1a", True)
    assert [c[len(SSH)] for c in run.calls] == ["vz2a", "vz1a"]


def test_locate_per_node_absent_everywhere_is_certain() -> None:
    run = FakeRunner({"vz2a": (1, ""), "vz1a": (1, "")})
    assert locate(get("vzmigrate"), "101", ["vz2a", "vz1a"], run=run) == Location(None, True)


def test_locate_unreachable_node_is_not_certain() -> None:
    run = FakeRunner({"vz2a": (255, ""), "vz1a": (1, "")})
    assert locate(get("vzmigrate"), "101", ["vz2a", "vz1a"], run=run) == Location(None, False)


def test_locate_cluster_wide_asks_once() -> None:
    run = FakeRunner({"vm101": (0, "resource vm101 is running on: vz2a\n")})
    assert locate(get("crm_resource"), "vm101", ["vz2a", "vz1a"], run=run) == Location(
        "vz2a", True
    )
    assert len(run.calls) == 1


def test_locate_garbage_is_not_certain() -> None:
    run = FakeRunner({"clustat": (0, "not xml")})
    assert locate(get("clusvcadm"), "g1", ["a", "b"], run=run) == Location(None, False)


def test_run_argv_real_process_and_timeout(tmp_path: Path) -> None:
    assert presets.run_argv(["sh", "-c", "echo resource x is NOT running"], 5) == (
        0, "resource x is NOT running\n")  # fmt: skip
    assert presets.run_argv(["sleep", "5"], 0.2) == (-1, "")
    assert presets.run_argv([str(tmp_path / "missing-tool")], 5) == (-1, "")
