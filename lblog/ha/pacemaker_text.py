"""Pacemaker's human-readable status: `crm_mon -1` (1.0 to 3.x layouts) and `pcs status`.

Prefer the XML (pacemaker.py); this reads what the text shows reliably: quorum, the
"Resource management is DISABLED" banner, node lists and `Node x: <state>` lines,
primitive and clone/master-slave set lines, and the Failed (Resource|Fencing) Actions.
Sections it does not need (Daemon Status, Migration Summary, ...) are skipped whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from lblog.errors import ParseError
from lblog.ha.model import ClusterFailure, ClusterNode, ClusterResource, ClusterState

_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):$")
_NODE_LIST = re.compile(
    r"^\*?\s*(Online|OFFLINE|Standby|GuestOnline|RemoteOnline|RemoteOFFLINE|GuestOFFLINE)"
    r":\s*\[(.*)\]\s*$"
)
_NODE_STATE = re.compile(r"^\*?\s*Node\s+(\S+?)(?:\s+\([0-9]+\))?:\s+(\S.*)$")
_PRIMITIVE = re.compile(r"^\*?\s*(\S+)\s+\(([^()]*)\):\s+(\S+)(.*)$")
_SET = re.compile(
    r"^\*?\s*(?:Master/Slave Set|Clone Set|Resource Group|Container bundle set|"
    r"Container bundle):\s+(\S+?)(?:\s+\[([^\]]*)\])?(?:\s+\([^)]*\))?:?(?:\s+\([^)]*\))?$"
)
_SET_MEMBERS = re.compile(
    r"^\*?\s*(Masters|Slaves|Started|Stopped|Promoted|Unpromoted)"
    r"(?:\s+\(disabled\))?:\s*\[(.*)\]\s*$"
)
_FAILED_OP = re.compile(r"^\*\s+(\S+)\s+on\s+'?([^'\s]+)'?\s+'([^']*)'\s+\(([0-9]+)\)")
_FAILED_FENCE = re.compile(r"^\*\s+(\S+)\s+of\s+(\S+)\s+failed")
_ROLES = frozenset(
    {
        "Started",
        "Stopped",
        "Master",
        "Slave",
        "Promoted",
        "Unpromoted",
        "Starting",
        "Stopping",
        "Migrating",
        "Promoting",
        "Demoting",
    }
)
_SET_ROLE = {"Masters": "Master", "Slaves": "Slave"}
_NODE_SECTIONS = {"", "Cluster Summary", "Node List"}
_RESOURCE_SECTIONS = {
    "Full list of resources",
    "Full List of Resources",
    "Active Resources",
    "Inactive Resources",
    "Active resources",
}
_FAILURE_SECTIONS = {"Failed Actions", "Failed Resource Actions", "Failed Fencing Actions"}


@dataclass
class _Acc:
    nodes: dict[str, ClusterNode] = field(default_factory=dict)
    resources: list[ClusterResource] = field(default_factory=list)
    failures: list[ClusterFailure] = field(default_factory=list)
    groups: list[tuple[int, str]] = field(default_factory=list)  # (indent, id) stack
    members: dict[str, str] = field(default_factory=dict)  # clone set id -> primitive


def parse_crm_mon_text(text: str, path: str = "crm_mon -1") -> ClusterState:
    """Parse `crm_mon -1` or `pcs status` text into a ClusterState."""
    acc = _Acc()
    section = ""
    quorum: bool | None = None
    maintenance = False
    for number, raw in enumerate(text.expandtabs(8).splitlines(), 1):
        line = raw.strip()
        if not line or set(line) == {"="}:
            continue
        m = _SECTION.match(raw.rstrip())
        if m:
            section = m.group(1)
            acc.groups.clear()
            continue
        if "partition with quorum" in line:
            quorum = True
        elif "partition WITHOUT quorum" in line:
            quorum = False
        if "Resource management is DISABLED" in line:
            maintenance = True
        if section in _NODE_SECTIONS:
            _node_line(line, number, path, acc)
        elif section in _RESOURCE_SECTIONS:
            _resource_line(raw, number, path, acc)
        elif section in _FAILURE_SECTIONS:
            _failure_line(line, number, path, acc)
    if not acc.nodes:
        raise ParseError(path, None, "no node list found: not crm_mon / pcs status output")
    return ClusterState(
        manager="pacemaker",
        nodes=tuple(acc.nodes.values()),
        resources=tuple(acc.resources),
        failures=tuple(acc.failures),
        maintenance_mode=maintenance,
        quorum=quorum,
    )


def _names(inside: str) -> list[str]:
    """`[ a (1) b (2) ]` -> [a, b]: node ids in parentheses are dropped."""
    return [t for t in inside.split() if not (t.startswith("(") and t.endswith(")"))]


def _node_line(line: str, number: int, path: str, acc: _Acc) -> None:
    m = _NODE_LIST.match(line)
    if m:
        kind = m.group(1)
        for name in _names(m.group(2)):
            old = acc.nodes.get(name, ClusterNode(name, online=False))
            acc.nodes[name] = replace(
                old, online="OFFLINE" not in kind, standby=old.standby or kind == "Standby"
            )
        return
    if "[" in line and re.match(r"^\*?\s*[A-Za-z]+:\s*\[", line):
        raise ParseError(path, number, f"unclosed node list {line[:60]!r}")
    m = _NODE_STATE.match(line)
    if m:
        name, state = m.group(1), m.group(2).lower()
        acc.nodes[name] = ClusterNode(
            name,
            online="offline" not in state,
            standby="standby" in state,
            unclean="unclean" in state,
            maintenance="maintenance" in state,
            shutdown="shutting down" in state,
            pending="pending" in state,
        )


def _resource_line(raw: str, number: int, path: str, acc: _Acc) -> None:
    indent = len(raw) - len(raw.lstrip(" "))
    line = raw.strip()
    while acc.groups and acc.groups[-1][0] >= indent:
        acc.groups.pop()
    group = acc.groups[-1][1] if acc.groups else None
    m = _SET.match(line)
    if m:
        acc.groups.append((indent, m.group(1)))
        if m.group(2):
            acc.members[m.group(1)] = m.group(2)
        return
    m = _SET_MEMBERS.match(line)
    if m:
        if group is None:
            raise ParseError(path, number, "instance list outside a clone set")
        member = acc.members.get(group, group)
        role = _SET_ROLE.get(m.group(1), m.group(1))
        for node in _names(m.group(2)):
            running: tuple[str, ...] = () if role == "Stopped" else (node,)
            acc.resources.append(ClusterResource(member, "", role, running, group=group))
        return
    m = _PRIMITIVE.match(line)
    if m:
        rid, agent, word, rest = m.groups()
        failed = word == "FAILED"
        words = rest.split()
        if failed:
            role = words.pop(0) if words and words[0] in _ROLES else "Unknown"
        elif word in _ROLES:
            role = word
        else:
            raise ParseError(path, number, f"unknown resource role {word[:40]!r}")
        flags = [w for w in words if w.startswith("(")]
        on_nodes = tuple(w for w in words if not w.startswith("(") and w != "FAILED")
        managed = not any(f in ("(unmanaged)", "(maintenance)") for f in flags)
        acc.resources.append(
            ClusterResource(
                rid,
                agent.replace("::", ":"),
                role,
                () if role == "Stopped" else on_nodes,
                failed=failed or "FAILED" in words,
                managed=managed,
                group=group,
            )
        )
        return
    if line.startswith("No resources") or line.startswith("No active resources"):
        return
    raise ParseError(path, number, f"unrecognised resource line {line[:60]!r}")


def _failure_line(line: str, number: int, path: str, acc: _Acc) -> None:
    if not line.startswith("*"):
        return  # continuation of the previous failure (last-rc-change=..., exec=...)
    m = _FAILED_OP.match(line)
    if m:
        op_key, node, status, rc = m.groups()
        parts = op_key.rsplit("_", 2)
        resource, task = (parts[0], parts[1]) if len(parts) == 3 else (op_key, None)
        acc.failures.append(ClusterFailure(node, resource, task, f"{status} (rc={rc})"))
        return
    m = _FAILED_FENCE.match(line)
    if m:
        acc.failures.append(ClusterFailure(m.group(2), None, m.group(1), "fencing failed"))
        return
    raise ParseError(path, number, f"unrecognised failed action {line[:60]!r}")
