"""Named executor presets: how each virtualisation stack moves a VE and says where it is.

A preset is an argv template (a list of strings, never a shell line) with the placeholders
{ve} {veid} {src} {dst} {src_host} {dst_host}, and a location query: a second argv template
({ve} {veid} {node} {node_host}) plus a pure parser from its output to the node the VE is on.
After a move, and when a restarted monitor finds a move left 'running', the location query
tells where the VE really is.

Every value put into a template is validated first: VE ids match
``^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`` (Proxmox ids: digits), hosts are RFC-1123 names.
That matters because ssh hands its remote command to a shell on the far side; with these
character sets nothing can be interpreted there.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from lbvm.config import SSH
from lbvm.errors import ExecutorError, ParseError
from lbvm.ids import check_host, check_ve

if TYPE_CHECKING:
    from algorithms.base import Move
    from lbvm.executor import Outcome

log = logging.getLogger(__name__)

_MOVE_FIELDS = frozenset({"ve", "veid", "src", "dst", "src_host", "dst_host"})
_QUERY_FIELDS = frozenset({"ve", "veid", "node", "node_host"})

# parse(stdout, ve, node) -> the node the output shows the VE on, or None.
Parser = Callable[[str, str, str], str | None]


@dataclass(frozen=True)
class LocationQuery:
    """How to ask where a VE runs.

    per_node: the query only says whether the VE is on the node it ran against, so it is run
      once per candidate node (destination first); otherwise one answer names the node.
    via_ssh: run on {node_host} through ssh (per-node queries), or on the first reachable
      candidate (cluster-wide ones).
    """

    argv: tuple[str, ...]
    parse: Parser
    per_node: bool = False
    via_ssh: bool = False


@dataclass(frozen=True)
class Preset:
    """A migration command template; ``via_ssh`` runs it on the source node."""

    name: str
    argv: tuple[str, ...]
    location: LocationQuery | None = None
    via_ssh: bool = False
    numeric_id: bool = False  # Proxmox: the VE id must be an integer vmid
    summary: str = ""


# -- validation and rendering --------------------------------------------------------


def _fill(template: Sequence[str], values: Mapping[str, str], allowed: frozenset[str]) -> list[str]:
    out = []
    for part in template:
        try:
            out.append(part.format_map(values))
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ExecutorError(
                f"command template part {part!r} is not valid (placeholders: "
                f"{', '.join('{' + f + '}' for f in sorted(allowed))}): {exc!r}"
            ) from None
    return out


def check_template(template: Sequence[str], *, query: bool = False) -> None:
    """Raise ExecutorError when a template uses an unknown placeholder or is empty."""
    allowed = _QUERY_FIELDS if query else _MOVE_FIELDS
    if not template or not all(isinstance(p, str) for p in template):
        raise ExecutorError(f"command template {list(template)!r} must be a non-empty string list")
    _fill(template, {f: "x" for f in allowed}, allowed)


def render(
    preset: Preset,
    ve: str,
    src: str,
    dst: str,
    *,
    src_host: str | None = None,
    dst_host: str | None = None,
) -> list[str]:
    """The argv that moves ``ve`` from ``src`` to ``dst`` (hosts default to node names)."""
    check_ve(ve, numeric=preset.numeric_id)
    values = {
        "ve": ve,
        "veid": ve,
        "src": check_host(src),
        "dst": check_host(dst),
        "src_host": check_host(src_host or src),
        "dst_host": check_host(dst_host or dst),
    }
    argv = _fill(preset.argv, values, _MOVE_FIELDS)
    if preset.via_ssh:
        argv = [*SSH, values["src_host"], *argv]
    return argv


def render_location(
    preset: Preset, ve: str, node: str, *, node_host: str | None = None
) -> list[str]:
    """The argv asking where ``ve`` is, run against (or on) ``node``."""
    if preset.location is None:
        raise ExecutorError(f"preset {preset.name} has no location query")
    check_ve(ve, numeric=preset.numeric_id)
    values = {"ve": ve, "veid": ve, "node": check_host(node),
              "node_host": check_host(node_host or node)}
    argv = _fill(preset.location.argv, values, _QUERY_FIELDS)
    if preset.location.via_ssh:
        argv = [*SSH, values["node_host"], *argv]
    return argv


# -- parsers (pure: output text in, node or None out) --------------------------------

# vzlist(8) / prlctl(8) statuses of a container or VM that exists on the node.
_PRESENT = frozenset({"running", "stopped", "mounted", "suspended", "paused"})


def parse_listing(out: str, ve: str, node: str) -> str | None:
    """`vzlist -H -o ctid,status` or `prlctl list -H -o name,status` run on ``node``.

    The VE is there when a row's first field is its id and the row carries a status word.
    A VE the tool does not know prints nothing on stdout (the error goes to stderr).
    """
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == ve and _PRESENT.intersection(fields[1:]):
            return node
    return None


def parse_clustat_xml(out: str, ve: str, node: str) -> str | None:
    """`clustat -x` (rgmanager): the owner of group ``vm:<ve>`` or ``service:<ve>``."""
    try:
        root = ET.fromstring(out)
    except ET.ParseError as exc:
        raise ParseError("clustat -x", None, f"not XML: {exc}") from None
    names = {f"vm:{ve}", f"service:{ve}", ve}
    for group in root.iter("group"):
        if group.get("name") in names:
            owner = group.get("owner", "none")
            started = group.get("state_str", "started") in ("started", "starting", "migrating")
            return owner if owner and owner != "none" and started else None
    return None


_LOCATE = re.compile(r"^resource (\S+) is running on: (\S+)", re.MULTILINE)


def parse_crm_locate(out: str, ve: str, node: str) -> str | None:
    """`crm_resource --locate --resource <ve>`: "resource <ve> is running on: <node>".

    "resource <ve> is NOT running" gives None; so do several nodes (a clone is not one place).
    """
    found = {n for r, n in _LOCATE.findall(out) if r == ve}
    return found.pop() if len(found) == 1 else None


# virsh(1) domstate words of a domain that is active on the host asked.
_ACTIVE = frozenset({"running", "idle", "paused", "in shutdown", "pmsuspended", "blocked"})


def parse_virsh_domstate(out: str, ve: str, node: str) -> str | None:
    """`virsh -c qemu+ssh://<node>/system domstate <ve>`: "running" means it is there."""
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    return node if lines and lines[0] in _ACTIVE else None


def parse_incus_csv(out: str, ve: str, node: str) -> str | None:
    """`incus list <ve> --format csv -c nL`: rows "name,location".

    The name filter matches prefixes, so only the row whose name is exactly ``ve`` counts;
    a standalone server prints an empty location (or "none").
    """
    for line in out.splitlines():
        name, _, where = line.strip().partition(",")
        if name == ve:
            where = where.strip()
            return where if where and where != "none" else None
    return None


def parse_pvesh_resources(out: str, ve: str, node: str) -> str | None:
    """`pvesh get /cluster/resources --type vm --output-format json`: the vmid's node."""
    try:
        items = json.loads(out)
    except json.JSONDecodeError as exc:
        raise ParseError("pvesh get /cluster/resources", None, f"not JSON: {exc}") from None
    if not isinstance(items, list):
        raise ParseError("pvesh get /cluster/resources", None, "expected a JSON list")
    for item in items:
        if isinstance(item, dict) and str(item.get("vmid")) == ve:
            where = item.get("node")
            return str(where) if where else None
    return None


# -- the presets ---------------------------------------------------------------------

_CRM_LOCATE = LocationQuery(("crm_resource", "--locate", "--resource", "{ve}"), parse_crm_locate)
_PVESH = LocationQuery(
    ("pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"),
    parse_pvesh_resources,
)

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        # vzmigrate(8): vzmigrate [--online] <destination> <CTID>, run on the source node;
        # vzlist(8): -H no header, -o ctid,status.
        Preset(
            "vzmigrate",
            ("vzmigrate", "--online", "{dst_host}", "{ve}"),
            LocationQuery(("vzlist", "-H", "-o", "ctid,status", "{ve}"), parse_listing,
                          per_node=True, via_ssh=True),
            via_ssh=True,
            summary="legacy OpenVZ live migration",
        ),
        # prlctl(8): prlctl migrate <ID|name> <[user@]server>; prlctl list -H -o name,status.
        Preset(
            "prlctl",
            ("prlctl", "migrate", "{ve}", "{dst_host}"),
            LocationQuery(("prlctl", "list", "-H", "-o", "name,status", "{ve}"), parse_listing,
                          per_node=True, via_ssh=True),
            via_ssh=True,
            summary="OpenVZ 7 / Virtuozzo migration",
        ),
        # clusvcadm(8): -M <vm> -m <member> live-migrates a VM; clustat(8): -x prints XML.
        Preset(
            "clusvcadm",
            ("clusvcadm", "-M", "vm:{ve}", "-m", "{dst}"),
            LocationQuery(("clustat", "-x"), parse_clustat_xml),
            summary="RHCS rgmanager VM migration",
        ),
        # clusvcadm(8): -r <service> -m <member> relocates (stop, start) a service.
        Preset(
            "clusvcadm-relocate",
            ("clusvcadm", "-r", "{ve}", "-m", "{dst}"),
            LocationQuery(("clustat", "-x"), parse_clustat_xml),
            summary="RHCS rgmanager service relocation",
        ),
        # crm_resource(8): --move --resource <id> --node <node> adds a cli-prefer constraint
        # (clear it later with --clear); --locate prints "resource <id> is running on: <node>".
        Preset(
            "crm_resource",
            ("crm_resource", "--move", "--resource", "{ve}", "--node", "{dst}"),
            _CRM_LOCATE,
            summary="Pacemaker resource move",
        ),
        # pcs(8): pcs resource move <resource id> [destination node].
        Preset(
            "pcs",
            ("pcs", "resource", "move", "{ve}", "{dst}"),
            _CRM_LOCATE,
            summary="Pacemaker through pcs",
        ),
        # virsh(1): migrate [--live] [--persistent] [--undefinesource] <domain> <desturi>,
        # run on the source host; domstate asked per host through a remote URI.
        Preset(
            "virsh",
            ("virsh", "migrate", "--live", "--persistent", "--undefinesource", "{ve}",
             "qemu+ssh://{dst_host}/system"),
            LocationQuery(("virsh", "-c", "qemu+ssh://{node_host}/system", "domstate", "{ve}"),
                          parse_virsh_domstate, per_node=True),
            via_ssh=True,
            summary="libvirt/KVM live migration",
        ),
        # incus-move(1): incus move <instance> --target <cluster member>;
        # incus-list(1): -c n (name) L (location), --format csv.
        Preset(
            "incus",
            ("incus", "move", "{ve}", "--target", "{dst}"),
            LocationQuery(("incus", "list", "{ve}", "--format", "csv", "-c", "nL"),
                          parse_incus_csv),
            summary="Incus cluster move",
        ),
        # pct(1): pct migrate <vmid> <target> --restart (restart migration of a running CT),
        # run on the node that holds the CT.
        Preset(
            "pct",
            ("pct", "migrate", "{veid}", "{dst}", "--restart"),
            _PVESH,
            via_ssh=True,
            numeric_id=True,
            summary="Proxmox container migration",
        ),
        # qm(1): qm migrate <vmid> <target> --online, run on the node that holds the VM;
        # pvesh(1): get /cluster/resources --type vm lists every guest with its node.
        Preset(
            "qm",
            ("qm", "migrate", "{veid}", "{dst}", "--online"),
            _PVESH,
            via_ssh=True,
            numeric_id=True,
            summary="Proxmox VM live migration",
        ),
        # Inside an HA pair the data is already mirrored by DRBD: the cluster manager just
        # stops the VE on one node and starts it on its partner (crm_resource(8) as above).
        Preset(
            "switchover",
            ("crm_resource", "--move", "--resource", "{ve}", "--node", "{dst}"),
            _CRM_LOCATE,
            summary="switchover inside a Pacemaker-managed pair",
        ),
    )
}


def get(name: str, *, via_ssh: bool | None = None) -> Preset:
    """The preset called ``name``; ``via_ssh`` overrides where its command runs."""
    try:
        preset = PRESETS[name]
    except KeyError:
        raise ExecutorError(
            f"unknown executor preset {name!r}; known: {', '.join(sorted(PRESETS))}"
        ) from None
    return preset if via_ssh is None else replace(preset, via_ssh=via_ssh)


# -- running a location query ----------------------------------------------------------

Runner = Callable[[list[str], float], tuple[int, str]]


def run_argv(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run ``argv`` (no shell) and return (exit code, stdout); -1 on timeout or no binary."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        log.warning("event=locate_timeout argv=%r timeout=%s", argv, timeout)
        return -1, ""
    except OSError as exc:
        log.warning("event=locate_error argv=%r error=%s", argv, exc)
        return -1, ""
    return done.returncode, done.stdout


@dataclass(frozen=True)
class Location:
    """Where a query found a VE: ``node``, or None with ``certain`` telling absent from unknown."""

    node: str | None
    certain: bool


def locate(
    preset: Preset,
    ve: str,
    candidates: Sequence[str],
    *,
    hosts: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    run: Runner = run_argv,
) -> Location:
    """Ask where ``ve`` is, trying ``candidates`` (destination first) in order.

    A per-node query is run against each candidate until one shows the VE; the answer is
    certain only when every candidate answered (ssh exit 255 or a timeout means "cannot
    tell"). A cluster-wide query is run against the first candidate that answers at all.
    """
    if preset.location is None:
        return Location(None, False)
    hosts = hosts or {}
    answered = 0
    for node in candidates:
        argv = render_location(preset, ve, node, node_host=hosts.get(node))
        code, out = run(argv, timeout)
        if code < 0 or code == 255:  # no binary, timeout, or ssh could not connect
            continue
        try:
            found = preset.location.parse(out, ve, node)
        except ParseError as exc:
            log.warning("event=locate_unparsed ve=%s node=%s error=%s", ve, node, exc)
            continue
        if found is not None:
            return Location(found, True)
        if not preset.location.per_node:
            return Location(None, code == 0)
        answered += 1
    return Location(None, answered == len(candidates) and answered > 0)


# -- as an executor backend ----------------------------------------------------------


class PresetBackend:
    """An executor backend that renders a preset per move and runs it like ``Command``, and
    answers ``locate`` with the preset's location query.

    The executor's ``Command`` only knows {ve} {src} {dst}; a preset also needs {veid},
    host names and the ssh prefix, so this backend builds the argv itself and hands it to a
    ``Command`` for the running part (own session, timeout, output tail).
    """

    def __init__(
        self,
        preset: Preset,
        timeout: float,
        output_tail: int,
        *,
        hosts: Mapping[str, str] | None = None,
        locate_timeout: float = 60.0,
        runner: Runner = run_argv,
    ) -> None:
        from lbvm.executor import Command  # the executor imports the store; keep this lazy

        self.preset = preset
        self.name = preset.name[:32]
        self.hosts = dict(hosts or {})
        self.locate_timeout = float(locate_timeout)
        self.runner = runner
        self._command = Command(preset.argv[:1], timeout, output_tail)

    def locate(self, ve: str, candidates: Sequence[str]) -> Location:
        """Where ``ve`` is now (the preset's location query); the executor asks after a move."""
        return locate(self.preset, ve, candidates, hosts=self.hosts,
                      timeout=self.locate_timeout, run=self.runner)

    def argv(self, move: Move) -> list[str]:
        return render(
            self.preset, move.ve, move.src, move.dst,
            src_host=self.hosts.get(move.src), dst_host=self.hosts.get(move.dst),
        )

    def run(self, move: Move, argv: Sequence[str]) -> Outcome:
        return self._command.run(move, argv)
