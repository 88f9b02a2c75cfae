"""Run the HA tools on this node and parse what they say.

Commands are argv lists with timeouts, run through an injectable ``run`` callable so tests
and other transports (ssh wrappers) can stand in. A tool that is not installed gives the
status "absent"; one that times out or exits non-zero gives "failed" with the reason;
output that cannot be understood raises ParseError (the path is the command line).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lblog.errors import LbvmError
from lblog.ha.drbd8 import parse_proc_drbd
from lblog.ha.drbd9 import parse_drbdadm_status, parse_drbdsetup_json, parse_events2
from lblog.ha.heartbeat import (
    NODE_STATUSES,
    RSC_STATUSES,
    heartbeat_state,
    parse_haresources,
    parse_hbstatus,
    parse_listnodes,
    parse_word,
)
from lblog.ha.model import ClusterState, DrbdStatus, HeartbeatGroup
from lblog.ha.pacemaker import parse_crm_mon_xml
from lblog.ha.rgmanager import parse_clustat_xml

Status = Literal["ok", "absent", "failed"]
Manager = Literal["pacemaker", "heartbeat", "rgmanager"]


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], float], RunResult]


@dataclass(frozen=True)
class DrbdProbe:
    status: Status
    detail: str
    drbd: DrbdStatus | None = None


@dataclass(frozen=True)
class ClusterProbe:
    status: Status
    detail: str
    cluster: ClusterState | None = None


class _Absent(Exception):
    pass


class _Failed(Exception):
    pass


def run_command(argv: Sequence[str], timeout: float) -> RunResult:
    """Run argv (no shell) in the C locale; raises FileNotFoundError when not installed."""
    env = {**os.environ, "LC_ALL": "C"}
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False, env=env
    )
    return RunResult(done.returncode, done.stdout, done.stderr)


def _call(
    run: Runner, argv: Sequence[str], timeout: float, ok_codes: tuple[int, ...] = (0,)
) -> RunResult:
    try:
        result = run(argv, timeout)
    except FileNotFoundError:
        raise _Absent(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise _Failed(f"{' '.join(argv)} timed out after {timeout:g} s") from None
    except OSError as exc:
        raise _Failed(f"{' '.join(argv)}: {exc}") from None
    if result.returncode not in ok_codes:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        raise _Failed(f"{' '.join(argv)} exited {result.returncode}: {tail[0][:200]}")
    return result


def probe_drbd(
    run: Runner = run_command,
    proc_drbd: Path = Path("/proc/drbd"),
    timeout: float = 10.0,
) -> DrbdProbe:
    """DRBD 8: parse /proc/drbd. DRBD 9: `drbdsetup status --json all`, falling back to
    `drbdadm status all` for drbd-utils without JSON. No /proc/drbd: the module is absent."""
    try:
        text = proc_drbd.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return DrbdProbe("absent", f"{proc_drbd} not found: DRBD module not loaded")
    except OSError as exc:
        return DrbdProbe("failed", f"{proc_drbd}: {exc}")
    if text.startswith("version: 8."):
        return DrbdProbe("ok", str(proc_drbd), parse_proc_drbd(text, str(proc_drbd)))
    return probe_drbd9(run, timeout)


# DRBD 9 tools, best first: the JSON status, the text status, the event stream's snapshot.
DRBD9_COMMANDS: tuple[tuple[tuple[str, ...], Callable[[str, str], DrbdStatus]], ...] = (
    (("drbdsetup", "status", "--json", "all"), parse_drbdsetup_json),
    (("drbdadm", "status", "all"), parse_drbdadm_status),
    (("drbdsetup", "events2", "--now", "--statistics", "all"), parse_events2),
)


def probe_drbd9(run: Runner = run_command, timeout: float = 10.0) -> DrbdProbe:
    """DRBD 9: `drbdsetup status --json all`, else `drbdadm status all` (drbd-utils without
    JSON), else `drbdsetup events2 --now --statistics all`; the first that answers counts."""
    failed: list[str] = []
    for argv, parse in DRBD9_COMMANDS:
        try:
            out = _call(run, argv, timeout)
        except _Absent as exc:
            failed.append(str(exc))
            continue
        except _Failed as exc:
            failed.append(str(exc))
            continue
        return DrbdProbe("ok", " ".join(argv), parse(out.stdout, " ".join(argv)))
    if all("is not installed" in f for f in failed):
        return DrbdProbe("absent", "; ".join(dict.fromkeys(failed)))
    return DrbdProbe("failed", "; ".join(f for f in failed if "is not installed" not in f))


def probe_cluster(
    manager: Manager,
    run: Runner = run_command,
    timeout: float = 20.0,
    local: str | None = None,
    haresources: Path = Path("/etc/ha.d/haresources"),
) -> ClusterProbe:
    """Ask the pair's cluster manager for its state.

    pacemaker: `crm_mon -1 --output-as=xml` (Pacemaker >= 2.0.3), else the legacy
    `crm_mon -1 --as-xml`. heartbeat: cl_status (hbstatus, listnodes, nodestatus,
    rscstatus) plus the haresources file. rgmanager: `clustat -x`.
    ``local`` is this node's cluster name (default: the host name).
    """
    try:
        if manager == "pacemaker":
            return _pacemaker(run, timeout)
        if manager == "heartbeat":
            return _heartbeat(run, timeout, local or os.uname().nodename, haresources)
        if manager == "rgmanager":
            argv = ["clustat", "-x"]
            out = _call(run, argv, timeout)
            return ClusterProbe("ok", " ".join(argv), parse_clustat_xml(out.stdout, " ".join(argv)))
    except _Absent as exc:
        return ClusterProbe("absent", str(exc))
    except _Failed as exc:
        return ClusterProbe("failed", str(exc))
    raise LbvmError(f"unknown cluster manager {manager!r}: pacemaker, heartbeat or rgmanager")


def _pacemaker(run: Runner, timeout: float) -> ClusterProbe:
    argv = ["crm_mon", "-1", "--output-as=xml"]
    try:
        out = _call(run, argv, timeout)
    except _Failed as exc:
        if "exited 64" not in str(exc) and "unrecognized option" not in str(exc):
            raise
        argv = ["crm_mon", "-1", "--as-xml"]
        out = _call(run, argv, timeout)
    return ClusterProbe("ok", " ".join(argv), parse_crm_mon_xml(out.stdout, " ".join(argv)))


def _heartbeat(run: Runner, timeout: float, local: str, haresources: Path) -> ClusterProbe:
    hb = _call(run, ["cl_status", "hbstatus"], timeout, ok_codes=(0, 1, 2))
    if not parse_hbstatus(hb.stdout + hb.stderr):
        return ClusterProbe("ok", "heartbeat stopped", heartbeat_state(False, local, {}))
    nodes = parse_listnodes(_call(run, ["cl_status", "listnodes"], timeout).stdout)
    status = {}
    for node in nodes:
        argv = ["cl_status", "nodestatus", node]
        status[node] = parse_word(_call(run, argv, timeout).stdout, NODE_STATUSES, " ".join(argv))
    argv = ["cl_status", "rscstatus"]
    rsc = parse_word(_call(run, argv, timeout).stdout, RSC_STATUSES, " ".join(argv))
    groups: tuple[HeartbeatGroup, ...] = ()
    try:
        text = haresources.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        pass  # no R1 resources: a CRM-style Heartbeat cluster; nodes are still reported
    else:
        groups = parse_haresources(text, str(haresources))
    state = heartbeat_state(True, local, status, groups, rsc)
    return ClusterProbe("ok", "cl_status", state)
