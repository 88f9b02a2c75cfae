"""HA-pair state: DRBD 8/9 replication and the cluster managers (Pacemaker, Heartbeat,
rgmanager), parsed from their tools' output into frozen dataclasses. Standard library only.

The names below load on first use (PEP 562), so the agent's cron run that only needs a
constant from one submodule does not import every parser.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from typing import Any

_WHERE = {
    "ClusterFailure": "lblog.ha.model",
    "ClusterNode": "lblog.ha.model",
    "ClusterProbe": "lblog.ha.probe",
    "ClusterResource": "lblog.ha.model",
    "ClusterState": "lblog.ha.model",
    "DrbdProbe": "lblog.ha.probe",
    "DrbdResource": "lblog.ha.model",
    "DrbdStatus": "lblog.ha.model",
    "DrbdVolume": "lblog.ha.model",
    "HeartbeatGroup": "lblog.ha.model",
    "HeartbeatResource": "lblog.ha.model",
    "PairHealth": "lblog.ha.health",
    "RunResult": "lblog.ha.probe",
    "heartbeat_state": "lblog.ha.heartbeat",
    "pair_health": "lblog.ha.health",
    "parse_clustat_text": "lblog.ha.rgmanager",
    "parse_clustat_xml": "lblog.ha.rgmanager",
    "parse_crm_mon_text": "lblog.ha.pacemaker_text",
    "parse_crm_mon_xml": "lblog.ha.pacemaker",
    "parse_drbdadm_status": "lblog.ha.drbd9",
    "parse_drbdsetup_json": "lblog.ha.drbd9",
    "parse_events2": "lblog.ha.drbd9",
    "parse_haresources": "lblog.ha.heartbeat",
    "parse_hbstatus": "lblog.ha.heartbeat",
    "parse_listnodes": "lblog.ha.heartbeat",
    "parse_proc_drbd": "lblog.ha.drbd8",
    "parse_word": "lblog.ha.heartbeat",
    "probe_cluster": "lblog.ha.probe",
    "probe_drbd": "lblog.ha.probe",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # here: importing it (with warnings) costs every cron run

    return getattr(importlib.import_module(_WHERE[name]), name)
