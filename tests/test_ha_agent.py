"""The agent's HA report: probes, the VE -> resource mapping, the spool's `ha` key, the CLI."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import make_sample

from lblog import backlog, spool
from lblog.cli import main
from lblog.errors import ParseError
from lblog.ha.agent import collect_ha, discover, drbd_resource_of, parse_mounts, read_map
from lblog.ha.model import ClusterResource, ClusterState
from lblog.ha.probe import RunResult
from lblog.ha.report import HaReport, HaSample, VeMapping, from_doc, to_doc, with_ha
from lblog.sample import VeRow

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def fake_proc(root: Path, drbd: str | None, mounts: str = "") -> Path:
    (root / "proc").mkdir(parents=True)
    if drbd is not None:
        (root / "proc/drbd").write_text(drbd)
    (root / "proc/mounts").write_text(mounts)
    return root


class Run:
    """Answers argv from a table (missing: not installed); records the calls."""

    def __init__(self, answers: dict[tuple[str, ...], RunResult]) -> None:
        self.answers, self.calls = answers, []  # type: ignore[var-annotated]

    def __call__(self, argv: Sequence[str], timeout: float) -> RunResult:
        self.calls.append(tuple(argv))
        if tuple(argv) not in self.answers:
            raise FileNotFoundError(argv[0])
        return self.answers[tuple(argv)]


MOUNTS = ("/dev/sda1 / ext4 rw 0 0\n/dev/drbd1 /vz ext4 rw 0 0\n"
          "/dev/drbd2 /vz/private/102 ext4 rw 0 0\n/dev/drbd/by-res/r103/0 /vz/private/103 "
          "ext4 rw 0 0\n")


def test_drbd8_state_and_mounts_map_ves_to_minors(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, fixture("proc_drbd.8.4-3dev-connected-mixed-roles.drbd-ug84.txt"),
                     MOUNTS)
    report = collect_ha(["101", "102", "103"], drbd="auto", proc_root=root, run=Run({}))
    assert report.drbd_status == "ok" and report.drbd is not None
    assert [r.name for r in report.drbd.resources] == ["0", "1", "2"]
    assert report.cluster_status == "none" and report.cluster is None
    assert {m.ve: (m.drbd, m.source) for m in report.ves} == {
        "101": ("1", "mounts"), "102": ("2", "mounts"), "103": ("r103", "mounts")}


def test_drbd9_falls_back_to_drbdadm_status_and_absent_tools_are_reported(
        tmp_path: Path) -> None:
    root = fake_proc(tmp_path, "version: 9.0.16 (api:2/proto:86-114)\n")
    text = fixture("drbdadm_status.9-2node-syncsource.salt-shaptools.txt")
    run = Run({("drbdadm", "status", "all"): RunResult(0, text, "")})
    report = collect_ha([], drbd="drbdsetup", cluster="pacemaker", proc_root=root, run=run)
    assert report.drbd_status == "ok" and report.drbd_detail == "drbdadm status all"
    assert report.drbd is not None and not report.drbd.healthy
    assert report.cluster_status == "absent" and "crm_mon" in report.cluster_detail
    assert run.calls[0] == ("drbdsetup", "status", "--json", "all")


def test_unreadable_tool_output_is_a_failed_probe_not_a_crash(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, None)
    run = Run({("crm_mon", "-1", "--output-as=xml"): RunResult(0, "<nonsense", "")})
    report = collect_ha([], drbd="proc", cluster="pacemaker", proc_root=root, run=run)
    assert report.drbd_status == "absent"
    assert report.cluster_status == "failed" and "not well-formed" in report.cluster_detail


def test_pacemaker_state_from_the_captured_xml(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, None)
    xml = fixture("crm_mon-xml.pcmk3-2node-offline-maintenance.pacemaker-cts.xml")
    run = Run({("crm_mon", "-1", "--output-as=xml"): RunResult(0, xml, "")})
    report = collect_ha(["rsc1"], cluster="pacemaker", proc_root=root, run=run)
    assert report.cluster is not None and report.cluster.node("cluster02") is not None
    assert not report.cluster.node("cluster02").online  # type: ignore[union-attr]
    assert report.ves == (VeMapping("rsc1", None, "rsc1", "name"),)


def test_map_file_wins_and_bad_lines_name_the_line(tmp_path: Path) -> None:
    good = tmp_path / "ha.map"
    good.write_text("# VE = drbd[,cluster]\n101=r101,vz101\n102 = r102\n103=,vz103\n")
    assert read_map(good) == {
        "101": VeMapping("101", "r101", "vz101"), "102": VeMapping("102", "r102", None),
        "103": VeMapping("103", None, "vz103")}
    for text, line in (("101=r1\n101=r2\n", 2), ("\n-x=r1\n", 2), ("101\n", 1),
                       ("101=a,b,c\n", 1)):
        bad = tmp_path / "bad.map"
        bad.write_text(text)
        with pytest.raises(ParseError) as err:
            read_map(bad)
        assert err.value.line == line and str(bad) in str(err.value)


def test_discovery_helpers() -> None:
    assert parse_mounts("/dev/drbd0 /vz/my\\040dir ext4 rw 0 0\n") == {"/vz/my dir": "/dev/drbd0"}
    assert drbd_resource_of("/dev/sda1", None) is None
    assert drbd_resource_of("/dev/drbd7", None) == "7"
    cluster = ClusterState("heartbeat", (), (
        ClusterResource("drbddisk::r0", "drbddisk", "Started", ("a",), group="drbddisk::r0"),))
    found = discover(["101"], "/dev/drbd/by-res/r0 /vz ext4 rw 0 0\n", None, cluster)
    assert found == (VeMapping("101", "r0", "drbddisk::r0", "mounts"),)


def test_report_round_trip_and_strict_decoding() -> None:
    from lblog.ha.drbd8 import parse_proc_drbd
    from lblog.ha.pacemaker import parse_crm_mon_xml

    report = HaReport(
        "ok", "/proc/drbd",
        parse_proc_drbd(fixture("proc_drbd.8.4-2dev-syncsource-synctarget.cockpit-issue17042.txt")),
        "ok", "crm_mon",
        parse_crm_mon_xml(fixture("crm_mon-xml.pcmk3-failures-partial.pacemaker-cts.xml")),
        (VeMapping("101", "0", "vz101", "map"),),
    )
    doc = json.loads(json.dumps(to_doc(report)))
    assert from_doc(doc) == report
    doc["drbd"]["volumes"][0]["stalled"] = "no"
    with pytest.raises(ParseError, match=r"ha.drbd.volumes\[0\].stalled"):
        from_doc(doc)
    with pytest.raises(ParseError, match=r"ha\.cluster\.status"):
        from_doc({"cluster": {"status": "maybe"}})
    with pytest.raises(ParseError, match="mapped twice"):
        from_doc({"ves": [{"ve": "1", "drbd": None, "cluster": None, "source": "map"}] * 2})


def test_spool_carries_ha_and_old_documents_stay_plain(tmp_path: Path) -> None:
    sample = make_sample("vz1a", 1000.0, (VeRow("101", cpu_raw=1),))
    plain = spool.to_sample(spool.read(spool.write(tmp_path, sample)))
    assert not isinstance(plain, HaSample)
    report = HaReport(cluster_status="absent", cluster_detail="crm_mon is not installed",
                      ves=(VeMapping("101", "r101", None),))
    path = spool.write(tmp_path, with_ha(make_sample("vz1a", 1001.0), report))
    doc = spool.read(path)
    assert doc["version"] == 1 and doc["ha"]["cluster"]["status"] == "absent"
    back = spool.to_sample(doc)
    assert isinstance(back, HaSample) and back.ha == report
    raw = json.loads(path.read_text())
    raw["ha"]["ves"] = "101"
    with pytest.raises(ParseError, match=r"ha\.ves"):
        spool.decode(json.dumps(raw).encode(), "x.json")


def test_backlog_keeps_the_ha_section(tmp_path: Path) -> None:
    report = HaReport(drbd_status="failed", drbd_detail="drbdsetup timed out")
    backlog.save(tmp_path / "backlog", with_ha(make_sample("vz1a", 1000.0), report))
    (tmp_path / "spool").mkdir()
    assert backlog.flush(tmp_path / "backlog", tmp_path / "spool") == (1, None)
    [path] = (tmp_path / "spool/incoming/vz1a").iterdir()
    assert spool.read(path)["ha"]["drbd"]["detail"] == "drbdsetup timed out"


def test_lblog_collect_writes_the_ha_section(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from lbvm.fakeproc import FakeVe, write_node

    root = tmp_path / "root"
    write_node(root, ves=[FakeVe("101", 500, 100.0, 1 << 30, None)], cpus=4,
               mem_bytes=8 << 30, busy_jiffies=5000, idle_jiffies=50000, load=(1.0, 1.0, 1.0))
    (root / "proc/drbd").write_text(
        fixture("proc_drbd.8.4-3dev-connected-mixed-roles.drbd-ug84.txt"))
    (root / "proc/mounts").write_text("/dev/drbd1 /vz ext4 rw 0 0\n")
    (tmp_path / "spool").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no cluster tools at all
    code = main(["collect", "--proc-root", str(root), "--spool", str(tmp_path / "spool"),
                 "--backlog", str(tmp_path / "bl"), "--node", "vz1a", "--drbd", "proc",
                 "--cluster", "pacemaker", "--print"])
    assert code == 0, capsys.readouterr().err
    doc = spool.read(capsys.readouterr().out.strip())
    assert doc["ha"]["drbd"]["status"] == "ok" and len(doc["ha"]["drbd"]["volumes"]) == 3
    assert doc["ha"]["cluster"]["status"] == "absent"
    assert doc["ha"]["ves"] == [{"ve": "101", "drbd": "1", "cluster": None, "source": "mounts"}]

