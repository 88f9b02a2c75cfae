"""HA-pair state: DRBD 8/9 replication and the cluster managers (Pacemaker, Heartbeat,
rgmanager), parsed from their tools' output into frozen dataclasses. Standard library only.
"""

from lblog.ha.drbd8 import parse_proc_drbd
from lblog.ha.drbd9 import parse_drbdadm_status, parse_drbdsetup_json, parse_events2
from lblog.ha.health import PairHealth, pair_health
from lblog.ha.heartbeat import (
    heartbeat_state,
    parse_haresources,
    parse_hbstatus,
    parse_listnodes,
    parse_word,
)
from lblog.ha.model import (
    ClusterFailure,
    ClusterNode,
    ClusterResource,
    ClusterState,
    DrbdResource,
    DrbdStatus,
    DrbdVolume,
    HeartbeatGroup,
    HeartbeatResource,
)
from lblog.ha.pacemaker import parse_crm_mon_xml
from lblog.ha.pacemaker_text import parse_crm_mon_text
from lblog.ha.probe import ClusterProbe, DrbdProbe, RunResult, probe_cluster, probe_drbd
from lblog.ha.rgmanager import parse_clustat_text, parse_clustat_xml

__all__ = [
    "ClusterFailure",
    "ClusterNode",
    "ClusterProbe",
    "ClusterResource",
    "ClusterState",
    "DrbdProbe",
    "DrbdResource",
    "DrbdStatus",
    "DrbdVolume",
    "HeartbeatGroup",
    "HeartbeatResource",
    "PairHealth",
    "RunResult",
    "heartbeat_state",
    "pair_health",
    "parse_clustat_text",
    "parse_clustat_xml",
    "parse_crm_mon_text",
    "parse_crm_mon_xml",
    "parse_drbdadm_status",
    "parse_drbdsetup_json",
    "parse_events2",
    "parse_haresources",
    "parse_hbstatus",
    "parse_listnodes",
    "parse_proc_drbd",
    "parse_word",
    "probe_cluster",
    "probe_drbd",
]
