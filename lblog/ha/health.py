"""Is an HA pair healthy, i.e. can either node take over the other's VEs right now?"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lblog.ha.model import ClusterNode, ClusterState, DrbdStatus, DrbdVolume


@dataclass(frozen=True)
class PairHealth:
    """healthy is True when ``reasons`` is empty; each reason is one readable line."""

    reasons: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        return not self.reasons


def pair_health(
    cluster: ClusterState | None,
    drbd: DrbdStatus | None,
    pair: Sequence[str] | None = None,
) -> PairHealth:
    """Judge a pair from its cluster manager's view and one node's DRBD view.

    Healthy means: both nodes online and usable (not standby, unclean, in maintenance,
    shutting down or pending), quorum not lost, cluster maintenance mode off, no failed
    actions, no failed or unmanaged resources, and every DRBD volume Connected,
    Established, UpToDate on both sides with nothing out of sync. ``pair`` limits the node
    checks to the pair's two nodes (default: every member node, remote/guest nodes aside).
    Either view may be None when the pair has no such layer; it is then not judged.
    """
    reasons: list[str] = []
    if cluster is not None:
        reasons.extend(_cluster_reasons(cluster, pair))
    if drbd is not None:
        for res in drbd.resources:
            reasons.extend(_volume_reason(v) for v in res.volumes if not v.healthy)
    return PairHealth(tuple(reasons))


def _cluster_reasons(cluster: ClusterState, pair: Sequence[str] | None) -> list[str]:
    out = []
    if pair is None:
        names = [n.name for n in cluster.nodes if not {"remote", "guest"} & set(n.flags)]
    else:
        names = list(pair)
    for name in names:
        node = cluster.node(name)
        if node is None:
            out.append(f"node {name} unknown to {cluster.manager}")
        elif not node.usable:
            out.append(f"node {name} {_node_words(node)}")
    if cluster.quorum is False:
        out.append("cluster has no quorum")
    if cluster.maintenance_mode:
        out.append("cluster in maintenance mode")
    out.extend(
        f"failed {f.operation or 'action'} of {f.resource or 'fencing'} on {f.node}: {f.message}"
        for f in cluster.failures
    )
    for r in cluster.resources:
        if r.failed:
            out.append(f"resource {r.id} failed on {', '.join(r.nodes) or 'no node'}")
        elif not r.managed:
            out.append(f"resource {r.id} not managed")
    return out


def _node_words(node: ClusterNode) -> str:
    words = [] if node.online else ["offline"]
    for word, on in (
        ("standby", node.standby),
        ("unclean", node.unclean),
        ("maintenance", node.maintenance),
        ("shutdown", node.shutdown),
        ("pending", node.pending),
    ):
        if on:
            words.append(word)
    return " ".join(words)


def _volume_reason(v: DrbdVolume) -> str:
    name = v.resource if v.volume is None else f"{v.resource}/{v.volume}"
    text = (
        f"drbd {name}: {v.connection} {v.replication} {v.role}/{v.peer_role} {v.disk}/{v.peer_disk}"
    )
    if v.out_of_sync_kib:
        text += f" oos {v.out_of_sync_kib} KiB"
    if v.progress_pct is not None:
        text += f" {v.progress_pct:.1f}% synced"
    if v.stalled:
        text += " stalled"
    return text
