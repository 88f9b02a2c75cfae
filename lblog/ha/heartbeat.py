"""Heartbeat (R1 style): `cl_status` answers and `/etc/ha.d/haresources`.

`cl_status hbstatus` says whether Heartbeat runs here, `listnodes` names the members,
`nodestatus <node>` says active / up / dead (ping nodes answer `ping`), `rscstatus` says
which resource groups this node holds: local (its own), foreign (the peer's), all, none,
or transition. haresources lists each resource group on one line under its preferred node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from lblog.errors import ParseError
from lblog.ha.model import (
    ClusterNode,
    ClusterResource,
    ClusterState,
    HeartbeatGroup,
    HeartbeatResource,
)

NODE_STATUSES = frozenset({"active", "up", "dead", "ping"})
RSC_STATUSES = frozenset({"local", "foreign", "all", "none", "transition"})
_IP = re.compile(r"^[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?:/[^\s/]+)*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def parse_hbstatus(text: str, path: str = "cl_status hbstatus") -> bool:
    """True for "Heartbeat is running on this machine.", False for "... is stopped ..."."""
    low = text.strip().lower()
    if "is running" in low:
        return True
    if "is stopped" in low:
        return False
    raise ParseError(path, 1, f"unexpected hbstatus answer {text.strip()[:60]!r}")


def parse_listnodes(text: str, path: str = "cl_status listnodes") -> tuple[str, ...]:
    """One node name per line."""
    names = []
    for number, raw in enumerate(text.splitlines(), 1):
        name = raw.strip()
        if not name:
            continue
        if not _NAME.match(name):
            raise ParseError(path, number, f"not a node name: {name[:60]!r}")
        names.append(name)
    if not names:
        raise ParseError(path, None, "no nodes listed")
    return tuple(names)


def parse_word(text: str, allowed: frozenset[str], path: str) -> str:
    """A one-word answer (`nodestatus`, `rscstatus`), checked against ``allowed``."""
    word = text.strip()
    if word not in allowed:
        raise ParseError(path, 1, f"expected one of {sorted(allowed)}, got {word[:60]!r}")
    return word


def parse_haresources(text: str, path: str = "/etc/ha.d/haresources") -> tuple[HeartbeatGroup, ...]:
    """Resource groups per preferred node; `\\` at line end continues the line."""
    groups = []
    seen: dict[str, int] = {}
    pending: list[str] = []
    start = 0
    lines = text.splitlines()
    for number, raw in enumerate(lines, 1):
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if not pending:
            start = number
        body = raw.rstrip()
        if body.endswith("\\"):
            pending.append(body[:-1])
            continue
        pending.append(body)
        group = _group(" ".join(pending).split(), start, path)
        pending = []
        for res in group.resources:
            if res.spec in seen:
                raise ParseError(
                    path, start, f"{res.spec} is also in the group on line {seen[res.spec]}"
                )
            seen[res.spec] = start
        groups.append(group)
    if pending:
        raise ParseError(path, len(lines), "file ends inside a continued line")
    return tuple(groups)


def _group(tokens: list[str], line: int, path: str) -> HeartbeatGroup:
    node = tokens[0]
    if not _NAME.match(node):
        raise ParseError(path, line, f"not a node name: {node[:60]!r}")
    if len(tokens) < 2:
        raise ParseError(path, line, f"node {node} has no resources")
    return HeartbeatGroup(node, tuple(_resource(t, line, path) for t in tokens[1:]), line)


def _resource(spec: str, line: int, path: str) -> HeartbeatResource:
    if _IP.match(spec):
        return HeartbeatResource(spec, "IPaddr", (spec,))
    kind, *args = spec.split("::")
    if not _NAME.match(kind) or not all(args):
        raise ParseError(path, line, f"malformed resource {spec[:60]!r}")
    return HeartbeatResource(spec, kind, tuple(args))


def heartbeat_state(
    running: bool,
    local: str,
    node_status: Mapping[str, str],
    groups: Sequence[HeartbeatGroup] = (),
    rscstatus: str = "none",
) -> ClusterState:
    """Combine cl_status answers and haresources into a ClusterState.

    Ping nodes are network reference points, not members, so they are left out. A group
    runs here when rscstatus says this node holds it, else on the other member when that
    one is active; `transition` leaves every group's place unknown (no nodes).
    """
    if not running:
        return ClusterState("heartbeat", (ClusterNode(local, online=False, flags=("local",)),))
    nodes = tuple(
        ClusterNode(
            name,
            online=status in ("active", "up"),
            pending=status == "up",
            flags=("local",) if name == local else (),
        )
        for name, status in node_status.items()
        if status != "ping"
    )
    others = [n.name for n in nodes if n.name != local and n.online and not n.pending]
    resources: list[ClusterResource] = []
    for g in groups:
        mine = g.node == local
        held_here = (
            rscstatus == "all"
            or (rscstatus == "local" and mine)
            or (rscstatus == "foreign" and not mine)
        )
        where: tuple[str, ...] = ()
        if rscstatus == "transition":
            role = "Transition"
        elif held_here:
            role, where = "Started", (local,)
        elif len(others) == 1:
            role, where = "Started", (others[0],)
        else:
            role = "Stopped"
        resources.extend(
            ClusterResource(r.spec, r.kind, role, where, group=g.name) for r in g.resources
        )
    return ClusterState("heartbeat", nodes, tuple(resources))
