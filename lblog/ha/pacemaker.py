"""Pacemaker `crm_mon` XML: `--output-as=xml` (Pacemaker 2/3, root <pacemaker-result>) and
the legacy `crm_mon -X` / `--as-xml` (root <crm_mon version="...">), including the
group-by-node variant where <resource> elements sit inside <node> elements.
"""

from __future__ import annotations

from lblog.errors import ParseError
from lblog.ha.model import ClusterFailure, ClusterNode, ClusterResource, ClusterState
from lblog.ha.xmltree import Element, flag, parse_xml, required

_CONTAINERS = ("group", "clone", "bundle")


def parse_crm_mon_xml(text: str, path: str = "crm_mon --output-as=xml") -> ClusterState:
    """Nodes with their flags, every resource instance, failed actions (and failed fencing),
    cluster-wide maintenance mode and quorum (None when there is no DC)."""
    root = parse_xml(text, path)
    if root.tag not in ("pacemaker-result", "crm_mon"):
        raise ParseError(path, root.line, f"root <{root.tag}> is not crm_mon output")
    nodes_el = root.find("nodes")
    if nodes_el is None:
        status = root.find("status")
        why = status.attrs.get("message", "") if status is not None else ""
        raise ParseError(path, root.line, f"no <nodes> in crm_mon output {why}".rstrip())
    nodes = tuple(_node(n, path) for n in nodes_el.findall("node"))
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise ParseError(path, nodes_el.line, "a node is listed twice")

    resources: list[ClusterResource] = []
    res_el = root.find("resources")
    if res_el is not None:
        _walk(res_el, None, None, path, resources)
    for node_el in nodes_el.findall("node"):
        # group-by-node: the node is where its nested resources run
        _walk(node_el, None, node_el.attrs.get("name"), path, resources)

    summary = root.find("summary")
    quorum: bool | None = None
    maintenance = False
    if summary is not None:
        dc = summary.find("current_dc")
        if dc is not None and flag(dc, "present", path, default=True):
            quorum = flag(dc, "with_quorum", path, default=False)
        options = summary.find("cluster_options")
        if options is not None:
            maintenance = flag(options, "maintenance-mode", path, default=False)
    return ClusterState(
        manager="pacemaker",
        nodes=nodes,
        resources=tuple(resources),
        failures=_failures(root, path),
        maintenance_mode=maintenance,
        quorum=quorum,
    )


def _node(el: Element, path: str) -> ClusterNode:
    flags = []
    if flag(el, "is_dc", path, default=False):
        flags.append("dc")
    kind = el.attrs.get("type", "member")
    if kind != "member":
        flags.append(kind)
    return ClusterNode(
        name=required(el, "name", path),
        online=flag(el, "online", path),
        standby=flag(el, "standby", path, default=False),
        unclean=flag(el, "unclean", path, default=False),
        maintenance=flag(el, "maintenance", path, default=False),
        shutdown=flag(el, "shutdown", path, default=False),
        pending=flag(el, "pending", path, default=False),
        flags=tuple(flags),
    )


def _walk(
    el: Element, group: str | None, on_node: str | None, path: str, out: list[ClusterResource]
) -> None:
    """Collect <resource> elements below ``el``, remembering the nearest container id."""
    for child in el.children:
        if child.tag == "resource":
            out.append(_resource(child, group, on_node, path))
        elif child.tag in _CONTAINERS:
            _walk(child, required(child, "id", path), on_node, path, out)
        elif child.tag == "replica":
            _walk(child, group, on_node, path, out)


def _resource(el: Element, group: str | None, on_node: str | None, path: str) -> ClusterResource:
    if on_node is not None:
        running: tuple[str, ...] = (on_node,)
    else:
        running = tuple(required(n, "name", path) for n in el.findall("node"))
    return ClusterResource(
        id=required(el, "id", path),
        kind=el.attrs.get("resource_agent", "").replace("::", ":"),
        role=required(el, "role", path),
        nodes=running,
        failed=flag(el, "failed", path, default=False),
        managed=flag(el, "managed", path, default=True),
        group=group,
    )


def _failures(root: Element, path: str) -> tuple[ClusterFailure, ...]:
    out = []
    failures = root.find("failures")
    for f in failures.findall("failure") if failures is not None else []:
        op_key = required(f, "op_key", path)
        parts = op_key.rsplit("_", 2)
        resource = parts[0] if len(parts) == 3 else op_key
        task = f.attrs.get("task") or (parts[1] if len(parts) == 3 else None)
        reason = f.attrs.get("exitreason", "")
        message = f"{f.attrs.get('exitstatus', 'failed')} (rc={f.attrs.get('exitcode', '?')})"
        out.append(
            ClusterFailure(
                node=f.attrs.get("node"),
                resource=resource,
                operation=task,
                message=f"{message}: {reason}" if reason else message,
            )
        )
    history = root.find("fence_history")
    for ev in history.findall("fence_event") if history is not None else []:
        if ev.attrs.get("status") == "failed":
            out.append(
                ClusterFailure(
                    node=ev.attrs.get("target"),
                    resource=None,
                    operation=ev.attrs.get("action"),
                    message="fencing failed",
                )
            )
    return tuple(out)
