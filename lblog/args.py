"""The options of ``lblog collect``: one table feeds argparse and the cron run's own reader.

argparse costs a cron run ~4 ms of its ~50 (its import with gettext, then locale and
shutil, and a help formatter built for every option). ``parse_args`` therefore reads the
plain forms itself: ``collect`` followed by known ``--option value``, ``--option=value`` and
flags, into the namespace argparse would give. Anything else (help, --version, an
abbreviated option, a value starting with '-', a value an option refuses) goes to argparse,
which prints the help or the usage error as it always did. Paths stay strings: the agent
does not import pathlib either.
"""

from __future__ import annotations

from types import SimpleNamespace

from lblog.backlog import DEFAULT_DIR, DEFAULT_MAX
from lblog.collect import SOURCES
from lblog.deliver import DEFAULT_LOCK_WAIT
from lblog.ha.modes import CLUSTER_MODES, DRBD_MODES, PRIVATE_TEMPLATE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any

DEFAULT_SPOOL = "/var/spool/lbvm"
EXAMPLE = (
    "example: lblog collect --spool /mnt/lbvm/spool --backlog /var/lib/lblog/backlog "
    "--drbd auto --cluster pacemaker"
)


def _path(text: str) -> str:
    """A path as given; empty means the current directory, as ``Path("")`` does."""
    return text or "."


def _positive_int(text: str) -> int:
    import argparse  # only when the value is bad: argparse reports it

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


class Option:
    """One option of ``collect``: its flags, and what argparse's add_argument is given."""

    __slots__ = ("choices", "default", "dest", "flag", "flags", "help", "metavar", "type")

    def __init__(
        self,
        *flags: str,
        help: str,
        type: Callable[[str], Any] = str,
        default: Any = None,
        choices: tuple[str, ...] | None = None,
        metavar: str | None = None,
        dest: str | None = None,
        flag: bool = False,
    ) -> None:
        self.flags = flags
        self.help = help
        self.type = type
        self.default = False if flag else default
        self.choices = choices
        self.metavar = metavar
        self.dest = dest or flags[-1].lstrip("-").replace("-", "_")
        self.flag = flag  # store_true, takes no value


COLLECT = (
    Option("--proc-root", type=_path, default="/", metavar="DIR",
           help="root holding proc/ (default: /)"),
    Option("--spool", type=_path, metavar="DIR",
           help=f"spool directory (default: $LBLOG_SPOOL or {DEFAULT_SPOOL})"),
    Option("--node", metavar="NAME", help="node name (default: short host name)"),
    Option("--source", choices=SOURCES, default="openvz",
           help="what accounts the VEs (default: openvz)"),
    Option("--sys-root", type=_path, default="/", metavar="DIR",
           help="root holding sys/fs/cgroup (default: /)"),
    Option("--ve-glob", metavar="GLOB",
           help="cgroup glob of the VEs, e.g. 'machine.slice/*' or 'lxc.payload.*'"),
    Option("--private-path", type=_path, default="/vz", metavar="DIR",
           help="filesystem of the VE private areas, for disk totals (default: /vz)"),
    Option("--cpu-hz", type=_positive_int, metavar="N",
           help="unit of vestat CPU counters (default: the kernel's CONFIG_HZ)"),
    Option("--backlog", type=_path, default=DEFAULT_DIR, metavar="DIR",
           help=f"local backlog while the spool is away (default: {DEFAULT_DIR})"),
    Option("--backlog-max", type=_positive_int, default=DEFAULT_MAX, metavar="N",
           help=f"samples kept in the backlog, oldest dropped (default: {DEFAULT_MAX})"),
    Option("--lock-wait", type=float, default=DEFAULT_LOCK_WAIT, metavar="SECONDS",
           help=f"wait for a running collect (default: {DEFAULT_LOCK_WAIT:g})"),
    Option("--drbd", choices=DRBD_MODES, default="none",
           help="DRBD state to report: auto (/proc/drbd for DRBD 8, else the DRBD 9 tools), "
           "proc, drbdsetup (DRBD 9: status --json, drbdadm status, events2) or none "
           "(default)"),
    Option("--cluster", choices=CLUSTER_MODES, default="none",
           help="cluster manager to ask: pacemaker (crm_mon), heartbeat (cl_status and "
           "haresources), rgmanager (clustat -x) or none (default)"),
    Option("--ha-map", type=_path, metavar="FILE",
           help="VE -> resources, one 've=drbd_resource[,cluster_resource]' per line "
           "(default: found from /proc/mounts and the cluster's resources)"),
    Option("--private-template", default=PRIVATE_TEMPLATE, metavar="PATH",
           help=f"where a VE's private area is, to find its DRBD device (default: "
           f"{PRIVATE_TEMPLATE})"),
    Option("--print", dest="print_path", flag=True, help="print the path of the file written"),
    Option("-v", "--verbose", flag=True, help="log progress on stderr"),
)  # fmt: skip
_BY_FLAG = {name: option for option in COLLECT for name in option.flags}


def build_parser() -> argparse.ArgumentParser:
    """The full argparse parser: help, --version and every usage error."""
    import argparse

    class Version(argparse.Action):
        """--version without importing importlib.metadata unless asked."""

        def __call__(self, parser: argparse.ArgumentParser, *args: object, **kw: object) -> None:
            from importlib.metadata import PackageNotFoundError, version

            try:
                text = version("lbvm")
            except PackageNotFoundError:
                text = "unknown"
            print(f"lblog {text}")  # noqa: T201 (the command's own output)
            parser.exit()

    parser = argparse.ArgumentParser(
        prog="lblog", description="LBVM node agent: collect VE usage into the shared spool."
    )
    parser.add_argument("--version", action=Version, nargs=0, help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "collect",
        help="write one sample of this node to the spool",
        description="Read this node's VEs and totals and write one spool file (atomic). "
        "Prints nothing on success. When the spool is unreachable the sample is kept in "
        "a local backlog and flushed into the spool by the next run that can reach it.",
        epilog=EXAMPLE,
    )
    for o in COLLECT:
        if o.flag:
            p.add_argument(*o.flags, dest=o.dest, action="store_true", help=o.help)
        else:
            p.add_argument(
                *o.flags,
                dest=o.dest,
                type=o.type,
                default=o.default,
                choices=o.choices,
                metavar=o.metavar,
                help=o.help,
            )
    return parser


def parse_args(argv: Sequence[str]) -> SimpleNamespace:
    """The options in ``argv`` (no program name), as argparse would read them.

    Raises SystemExit as argparse does: 0 after help or --version, 2 for bad usage.
    """
    args = read_plain(argv)
    if args is None:
        args = build_parser().parse_args(argv, namespace=SimpleNamespace())
    return args


def read_plain(argv: Sequence[str]) -> SimpleNamespace | None:
    """``collect`` with exact long options and valid values, read without argparse;
    None for anything else (argparse then reads it, and reports what is wrong)."""
    if not argv or argv[0] != "collect":
        return None
    values = {o.dest: o.default for o in COLLECT}
    i, end = 1, len(argv)
    while i < end:
        name, eq, text = argv[i].partition("=")
        i += 1
        option = _BY_FLAG.get(name)
        if option is None:
            return None
        if option.flag:
            if eq:
                return None
            values[option.dest] = True
            continue
        if not eq:
            if i == end or argv[i].startswith("-"):
                return None
            text = argv[i]
            i += 1
        try:
            value = option.type(text)
        except Exception:  # whatever the option's type raises, argparse reports
            return None
        if option.choices is not None and value not in option.choices:
            return None
        values[option.dest] = value
    return SimpleNamespace(version=None, command="collect", **values)
