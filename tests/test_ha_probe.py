"""The probe runner: argv lists and timeouts, absent tools, failures, fallbacks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from lblog.errors import LbvmError, ParseError
from lblog.ha import RunResult, probe_cluster, probe_drbd
from lblog.ha.probe import run_command

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class FakeRun:
    """Answers argv lists from a table; records every call and its timeout."""

    def __init__(self, answers: dict[tuple[str, ...], RunResult | type[BaseException]]) -> None:
        self.answers = answers
        self.calls: list[tuple[tuple[str, ...], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> RunResult:
        assert isinstance(argv, list | tuple) and all(isinstance(a, str) for a in argv)
        self.calls.append((tuple(argv), timeout))
        answer = self.answers.get(tuple(argv), FileNotFoundError)
        if isinstance(answer, RunResult):
            return answer
        if answer is subprocess.TimeoutExpired:
            raise subprocess.TimeoutExpired(list(argv), timeout)
        raise answer()


def ok(stdout: str) -> RunResult:
    return RunResult(0, stdout, "")


def test_drbd8_reads_proc_without_running_anything(tmp_path: Path) -> None:
    proc = tmp_path / "drbd"
    proc.write_text(fixture("proc_drbd.8.4-3dev-connected-mixed-roles.drbd-ug84.txt"))
    run = FakeRun({})
    got = probe_drbd(run=run, proc_drbd=proc)
    assert got.status == "ok" and got.drbd is not None and len(got.drbd.resources) == 3
    assert run.calls == []


def test_drbd_module_absent(tmp_path: Path) -> None:
    got = probe_drbd(run=FakeRun({}), proc_drbd=tmp_path / "missing")
    assert got.status == "absent" and got.drbd is None and "not loaded" in got.detail


def test_drbd9_json_then_fallback_to_drbdadm(tmp_path: Path) -> None:
    proc = tmp_path / "drbd"
    proc.write_text("version: 9.0.16-1 (api:2/proto:86-114)\n")
    json_argv = ("drbdsetup", "status", "--json", "all")
    run = FakeRun(
        {json_argv: ok(fixture("drbdsetup_status_json.9-primary-1peer.salt-shaptools.json"))}
    )
    got = probe_drbd(run=run, proc_drbd=proc, timeout=3)
    assert got.status == "ok" and got.drbd is not None and got.drbd.healthy
    assert run.calls == [(json_argv, 3)]

    adm_argv = ("drbdadm", "status", "all")
    run = FakeRun(
        {
            json_argv: RunResult(20, "", "drbdsetup: unrecognized option '--json'"),
            adm_argv: ok(fixture("drbdadm_status.9-2node-syncsource.salt-shaptools.txt")),
        }
    )
    got = probe_drbd(run=run, proc_drbd=proc)
    assert got.status == "ok" and got.detail == "drbdadm status all"
    assert got.drbd is not None and got.drbd.resources[0].resyncing


def test_drbd9_tools_absent_or_timing_out(tmp_path: Path) -> None:
    proc = tmp_path / "drbd"
    proc.write_text("version: 9.1.0\n")
    assert probe_drbd(run=FakeRun({}), proc_drbd=proc).status == "absent"
    slow = FakeRun(
        {
            ("drbdsetup", "status", "--json", "all"): subprocess.TimeoutExpired,
            ("drbdadm", "status", "all"): subprocess.TimeoutExpired,
        }
    )
    got = probe_drbd(run=slow, proc_drbd=proc, timeout=2)
    assert got.status == "failed" and "timed out after 2 s" in got.detail


def test_pacemaker_xml_and_legacy_fallback() -> None:
    xml = fixture("crm_mon-xml.pcmk3-failures-partial.pacemaker-cts.xml")
    run = FakeRun({("crm_mon", "-1", "--output-as=xml"): ok(xml)})
    got = probe_cluster("pacemaker", run=run, timeout=5)
    assert got.status == "ok" and got.cluster is not None and len(got.cluster.nodes) == 4
    assert run.calls == [(("crm_mon", "-1", "--output-as=xml"), 5)]

    legacy = fixture("crm_mon-xml.pcmk1.1-2node-hana-by-node.ha_cluster_exporter.xml")
    run = FakeRun(
        {
            ("crm_mon", "-1", "--output-as=xml"): RunResult(64, "", "crm_mon: unrecognized option"),
            ("crm_mon", "-1", "--as-xml"): ok(legacy),
        }
    )
    got = probe_cluster("pacemaker", run=run)
    assert got.status == "ok" and got.detail == "crm_mon -1 --as-xml"


def test_pacemaker_not_running_is_failed_not_exception() -> None:
    run = FakeRun({("crm_mon", "-1", "--output-as=xml"): RunResult(102, "", "Not connected")})
    got = probe_cluster("pacemaker", run=run)
    assert got.status == "failed" and "exited 102: Not connected" in got.detail


def test_unparseable_output_names_the_command() -> None:
    run = FakeRun({("clustat", "-x"): ok("<clustat><nodes>")})
    with pytest.raises(ParseError) as err:
        probe_cluster("rgmanager", run=run)
    assert err.value.path == "clustat -x"


def test_rgmanager_and_absent_managers() -> None:
    run = FakeRun(
        {("clustat", "-x"): ok(fixture("clustat-x.rhel6-3node-service-disabled.deimos.xml"))}
    )
    got = probe_cluster("rgmanager", run=run)
    assert got.status == "ok" and got.cluster is not None and len(got.cluster.nodes) == 3
    for manager in ("pacemaker", "heartbeat", "rgmanager"):
        assert probe_cluster(manager, run=FakeRun({})).status == "absent"
    with pytest.raises(LbvmError, match="unknown cluster manager"):
        probe_cluster("corosync", run=FakeRun({}))  # type: ignore[arg-type]


def test_heartbeat_probe(tmp_path: Path) -> None:
    haresources = tmp_path / "haresources"
    haresources.write_text(fixture("haresources.drbddisk-mysql.drbd-ug84.txt"))
    run = FakeRun(
        {
            ("cl_status", "hbstatus"): ok("Heartbeat is running on this machine.\n"),
            ("cl_status", "listnodes"): ok("alice\nbob\n"),
            ("cl_status", "nodestatus", "alice"): ok("active\n"),
            ("cl_status", "nodestatus", "bob"): ok("dead\n"),
            ("cl_status", "rscstatus"): ok("all\n"),
        }
    )
    got = probe_cluster("heartbeat", run=run, local="alice", haresources=haresources)
    assert got.status == "ok" and got.cluster is not None
    assert [(n.name, n.online) for n in got.cluster.nodes] == [("alice", True), ("bob", False)]
    assert {r.nodes for r in got.cluster.resources} == {("alice",)}

    stopped = FakeRun(
        {("cl_status", "hbstatus"): RunResult(1, "", "Heartbeat is stopped on this machine.\n")}
    )
    got = probe_cluster("heartbeat", run=stopped, local="alice", haresources=haresources)
    assert got.cluster is not None and got.cluster.nodes[0].online is False


def test_run_command_uses_argv_and_timeout() -> None:
    done = run_command([sys.executable, "-c", "print('hi')"], timeout=30)
    assert (done.returncode, done.stdout) == (0, "hi\n")
    with pytest.raises(FileNotFoundError):
        run_command(["lbvm-no-such-tool-here"], timeout=5)
    with pytest.raises(subprocess.TimeoutExpired):
        run_command([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)
