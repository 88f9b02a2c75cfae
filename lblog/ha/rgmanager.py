"""Red Hat Cluster Suite rgmanager: `clustat -x` (XML) and plain `clustat`.

Members are online when their state is 1 (XML) or "Online" (text); flags such as local,
rgmanager (the resource manager runs there) and estranged are kept in ClusterNode.flags.
Services and VMs (`service:web`, `vm:guest`) are resources; they run on their owner while
starting, started, stopping, migrating or recovering. A quorum disk is not a member.
"""

from __future__ import annotations

from lblog.errors import ParseError
from lblog.ha.model import ClusterNode, ClusterResource, ClusterState
from lblog.ha.xmltree import Element, flag, parse_xml, required

RUNNING = frozenset({"started", "starting", "stopping", "migrating", "recovering"})
FAILED = frozenset({"failed", "error"})
_NODE_FLAGS = ("local", "estranged", "rgmanager", "rgmanager_master", "qdisk")


def parse_clustat_xml(text: str, path: str = "clustat -x") -> ClusterState:
    root = parse_xml(text, path)
    if root.tag != "clustat":
        raise ParseError(path, root.line, f"root <{root.tag}> is not clustat output")
    nodes_el = root.find("nodes")
    if nodes_el is None or not nodes_el.findall("node"):
        raise ParseError(path, root.line, "no <nodes> in clustat output")
    nodes = tuple(_node(n, path) for n in nodes_el.findall("node"))
    quorum_el = root.find("quorum")
    quorum = flag(quorum_el, "quorate", path) if quorum_el is not None else None
    groups_el = root.find("groups")
    groups = groups_el.findall("group") if groups_el is not None else []
    return ClusterState("rgmanager", nodes, tuple(_group(g, path) for g in groups), quorum=quorum)


def _node(el: Element, path: str) -> ClusterNode:
    state = required(el, "state", path)
    if state not in ("0", "1"):
        raise ParseError(path, el.line, f"node state {state!r} is not 0 or 1")
    flags = tuple(f for f in _NODE_FLAGS if flag(el, f, path, default=False))
    return ClusterNode(required(el, "name", path), online=state == "1", flags=flags)


def _group(el: Element, path: str) -> ClusterResource:
    name = required(el, "name", path)
    state = required(el, "state_str", path)
    owner = el.attrs.get("owner", "none")
    return ClusterResource(
        id=name,
        kind=name.split(":", 1)[0] if ":" in name else "service",
        role=state,
        nodes=(owner,) if state in RUNNING and owner not in ("", "none") else (),
        failed=state in FAILED,
        managed="frozen" not in el.attrs.get("flags_str", ""),
    )


def parse_clustat_text(text: str, path: str = "clustat") -> ClusterState:
    """Plain `clustat`: the Member Status line, the member table and the service table."""
    quorum: bool | None = None
    nodes: list[ClusterNode] = []
    resources: list[ClusterResource] = []
    table = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            table = ""
            continue
        if line.startswith("Member Status:"):
            word = line.split(":", 1)[1].strip()
            if word not in ("Quorate", "Inquorate"):
                raise ParseError(path, number, f"unknown member status {word[:40]!r}")
            quorum = word == "Quorate"
        elif line.startswith("Member Name"):
            table = "members"
        elif line.startswith(("Service Name", "Vm Name")):
            table = "services"
        elif set(line) <= {"-", " "} or line.startswith("Cluster Status for"):
            continue
        elif table == "members":
            node = _member(line, number, path)
            if node is not None:
                nodes.append(node)
        elif table == "services":
            resources.append(_service(line, number, path))
        else:
            raise ParseError(path, number, f"unexpected line {line[:60]!r}")
    if not nodes:
        raise ParseError(path, None, "no member table found: not clustat output")
    return ClusterState("rgmanager", tuple(nodes), tuple(resources), quorum=quorum)


def _member(line: str, number: int, path: str) -> ClusterNode | None:
    tokens = line.split()
    if len(tokens) < 3 or not tokens[1].isdigit():
        raise ParseError(path, number, f"unreadable member line {line[:60]!r}")
    words = [w.strip().lower() for w in " ".join(tokens[2:]).split(",")]
    if words[0] not in ("online", "offline"):
        raise ParseError(path, number, f"unknown member status {words[0][:40]!r}")
    flags = tuple(w.replace("rg-master", "rgmanager_master") for w in words[1:] if w)
    if "quorum disk" in flags:
        return None
    return ClusterNode(tokens[0], online=words[0] == "online", flags=flags)


def _service(line: str, number: int, path: str) -> ClusterResource:
    tokens = line.split()
    if len(tokens) < 3:
        raise ParseError(path, number, f"unreadable service line {line[:60]!r}")
    name, owner, state = tokens[0], " ".join(tokens[1:-1]), tokens[-1]
    running = not owner.startswith("(") and state in RUNNING
    return ClusterResource(
        id=name,
        kind=name.split(":", 1)[0] if ":" in name else "service",
        role=state,
        nodes=(owner,) if running else (),
        failed=state in FAILED,
    )
