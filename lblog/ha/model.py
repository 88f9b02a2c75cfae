"""Typed, frozen views of an HA pair's state: DRBD replication and the cluster manager.

Parsers in this package turn tool output into these objects; nothing here does I/O.
Names follow DRBD 9 and Pacemaker wording; DRBD 8 and the older managers are mapped onto
them (see docs/ha-state.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Replication states during which data is being copied or compared (DRBD 8 `cs:`,
# DRBD 9 `replication:`). StartingSync*/WFBitMap*/WFSyncUUID precede a resync.
RESYNC_STATES = frozenset(
    {
        "SyncSource",
        "SyncTarget",
        "PausedSyncS",
        "PausedSyncT",
        "VerifyS",
        "VerifyT",
        "StartingSyncS",
        "StartingSyncT",
        "WFBitMapS",
        "WFBitMapT",
        "WFSyncUUID",
        "Ahead",
        "Behind",
    }
)


@dataclass(frozen=True)
class DrbdVolume:
    """One replicated volume as seen towards one peer.

    connection: the DRBD 9 style connection state (Connected, Connecting, StandAlone, ...);
    DRBD 8's `cs:` SyncSource & co. imply Connected and go to ``replication``.
    replication: Established, Off, SyncSource, ... (DRBD 9 `replication:`).
    out_of_sync_kib: data still to copy to or from the peer, KiB; None when not reported.
    progress_pct / finish_s: resync progress and estimated seconds left, when reported.
    stalled: DRBD 8 printed `stalled` instead of a finish estimate.
    """

    resource: str
    volume: int | None
    minor: int | None
    peer: str | None
    connection: str
    replication: str
    role: str
    peer_role: str
    disk: str
    peer_disk: str
    out_of_sync_kib: int | None = None
    progress_pct: float | None = None
    finish_s: int | None = None
    stalled: bool = False

    @property
    def resyncing(self) -> bool:
        """A resync or online verify is running, paused or about to start."""
        return self.replication in RESYNC_STATES

    @property
    def healthy(self) -> bool:
        """Connected, both disks UpToDate, nothing being resynced."""
        return (
            self.connection == "Connected"
            and self.replication == "Established"
            and self.disk == "UpToDate"
            and self.peer_disk == "UpToDate"
            and not self.out_of_sync_kib
        )


@dataclass(frozen=True)
class DrbdResource:
    """A DRBD resource (DRBD 8: one minor, named by its number) and its volumes."""

    name: str
    role: str
    volumes: tuple[DrbdVolume, ...]

    @property
    def healthy(self) -> bool:
        return bool(self.volumes) and all(v.healthy for v in self.volumes)

    @property
    def resyncing(self) -> bool:
        return any(v.resyncing for v in self.volumes)


@dataclass(frozen=True)
class DrbdStatus:
    """Every DRBD resource on one node. source: which tool output it came from."""

    source: Literal["proc_drbd", "drbdsetup_json", "drbdadm_status", "events2"]
    version: str | None
    resources: tuple[DrbdResource, ...]

    @property
    def healthy(self) -> bool:
        """True when every resource is healthy (also when there are none)."""
        return all(r.healthy for r in self.resources)

    def resource(self, name: str) -> DrbdResource | None:
        return next((r for r in self.resources if r.name == name), None)


@dataclass(frozen=True)
class ClusterNode:
    """A cluster member. flags: extra raw markers (local, dc, rgmanager, ...)."""

    name: str
    online: bool
    standby: bool = False
    unclean: bool = False
    maintenance: bool = False
    shutdown: bool = False
    pending: bool = False
    flags: tuple[str, ...] = ()

    @property
    def usable(self) -> bool:
        """Online and able to take resources over."""
        return self.online and not (
            self.standby or self.unclean or self.maintenance or self.shutdown or self.pending
        )


@dataclass(frozen=True)
class ClusterResource:
    """One resource instance (a clone instance or bundle replica appears once each).

    kind: the agent (`ocf:heartbeat:IPaddr2`, `stonith:fence_xvm`, `service`, `drbddisk`).
    role: as the manager says it (Started, Stopped, Master, Slave, started, disabled, ...).
    nodes: where it runs now (empty when stopped).
    group: the enclosing group/clone/bundle (Pacemaker), or Heartbeat resource group.
    """

    id: str
    kind: str
    role: str
    nodes: tuple[str, ...] = ()
    failed: bool = False
    managed: bool = True
    group: str | None = None


@dataclass(frozen=True)
class ClusterFailure:
    """A failed action: a resource operation (resource set) or a fencing action (not)."""

    node: str | None
    resource: str | None
    operation: str | None
    message: str


@dataclass(frozen=True)
class ClusterState:
    """What a cluster manager reports. quorum is None where the manager does not say."""

    manager: Literal["pacemaker", "heartbeat", "rgmanager"]
    nodes: tuple[ClusterNode, ...]
    resources: tuple[ClusterResource, ...] = ()
    failures: tuple[ClusterFailure, ...] = ()
    maintenance_mode: bool = False
    quorum: bool | None = None

    def node(self, name: str) -> ClusterNode | None:
        return next((n for n in self.nodes if n.name == name), None)


@dataclass(frozen=True)
class HeartbeatResource:
    """One haresources entry: `drbddisk::r0` is kind drbddisk, args ('r0',)."""

    spec: str
    kind: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class HeartbeatGroup:
    """One haresources line: the preferred node and its resources, started in order."""

    node: str
    resources: tuple[HeartbeatResource, ...]
    line: int

    @property
    def name(self) -> str:
        """Heartbeat names a group by its first resource."""
        return self.resources[0].spec
