"""``lblog``: the node agent's command line (standard library only, quiet for cron).

Exit status: 0 the sample was written (to the spool, or kept in the local backlog),
1 it could not be collected or written (one ``lblog: <file>:<line>: <what>`` line on
stderr, nothing written), 2 bad usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from lblog.sample import Sample

DEFAULT_SPOOL = "/var/spool/lbvm"
EXAMPLE = (
    "example: lblog collect --spool /mnt/lbvm/spool --backlog /var/lib/lblog/backlog "
    "--drbd auto --cluster pacemaker"
)


class _Version(argparse.Action):
    """--version without importing importlib.metadata on every cron run."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kw: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = version("lbvm")
        except PackageNotFoundError:
            text = "unknown"
        print(f"lblog {text}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    from lblog.backlog import DEFAULT_DIR, DEFAULT_MAX
    from lblog.collect import SOURCES
    from lblog.deliver import DEFAULT_LOCK_WAIT
    from lblog.ha.modes import CLUSTER_MODES, DRBD_MODES, PRIVATE_TEMPLATE

    parser = argparse.ArgumentParser(
        prog="lblog", description="LBVM node agent: collect VE usage into the shared spool."
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="print the version")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "collect",
        help="write one sample of this node to the spool",
        description="Read this node's VEs and totals and write one spool file (atomic). "
        "Prints nothing on success. When the spool is unreachable the sample is kept in "
        "a local backlog and flushed into the spool by the next run that can reach it.",
        epilog=EXAMPLE,
    )
    p.add_argument(
        "--proc-root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="root holding proc/ (default: /)",
    )
    p.add_argument(
        "--spool",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"spool directory (default: $LBLOG_SPOOL or {DEFAULT_SPOOL})",
    )
    p.add_argument(
        "--node", default=None, metavar="NAME", help="node name (default: short host name)"
    )
    p.add_argument(
        "--source",
        choices=SOURCES,
        default="openvz",
        help="what accounts the VEs (default: openvz)",
    )
    p.add_argument(
        "--sys-root",
        type=Path,
        default=Path("/"),
        metavar="DIR",
        help="root holding sys/fs/cgroup (default: /)",
    )
    p.add_argument(
        "--ve-glob",
        default=None,
        metavar="GLOB",
        help="cgroup glob of the VEs, e.g. 'machine.slice/*' or 'lxc.payload.*'",
    )
    p.add_argument(
        "--private-path",
        type=Path,
        default=Path("/vz"),
        metavar="DIR",
        help="filesystem of the VE private areas, for disk totals (default: /vz)",
    )
    p.add_argument(
        "--cpu-hz",
        type=_positive_int,
        default=None,
        metavar="N",
        help="unit of vestat CPU counters (default: the kernel's CONFIG_HZ)",
    )
    p.add_argument(
        "--backlog",
        type=Path,
        default=DEFAULT_DIR,
        metavar="DIR",
        help=f"local backlog while the spool is away (default: {DEFAULT_DIR})",
    )
    p.add_argument(
        "--backlog-max",
        type=_positive_int,
        default=DEFAULT_MAX,
        metavar="N",
        help=f"samples kept in the backlog, oldest dropped (default: {DEFAULT_MAX})",
    )
    p.add_argument(
        "--lock-wait",
        type=float,
        default=DEFAULT_LOCK_WAIT,
        metavar="SECONDS",
        help=f"wait for a running collect (default: {DEFAULT_LOCK_WAIT:g})",
    )
    p.add_argument(
        "--drbd",
        choices=DRBD_MODES,
        default="none",
        help="DRBD state to report: auto (/proc/drbd for DRBD 8, else the DRBD 9 tools), "
        "proc, drbdsetup (DRBD 9: status --json, drbdadm status, events2) or none (default)",
    )
    p.add_argument(
        "--cluster",
        choices=CLUSTER_MODES,
        default="none",
        help="cluster manager to ask: pacemaker (crm_mon), heartbeat (cl_status and "
        "haresources), rgmanager (clustat -x) or none (default)",
    )
    p.add_argument(
        "--ha-map",
        type=Path,
        default=None,
        metavar="FILE",
        help="VE -> resources, one 've=drbd_resource[,cluster_resource]' per line "
        "(default: found from /proc/mounts and the cluster's resources)",
    )
    p.add_argument(
        "--private-template",
        default=PRIVATE_TEMPLATE,
        metavar="PATH",
        help=f"where a VE's private area is, to find its DRBD device (default: "
        f"{PRIVATE_TEMPLATE})",
    )
    p.add_argument(
        "--print", dest="print_path", action="store_true", help="print the path of the file written"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log progress on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help/--version, 2 for bad usage
        return exc.code if isinstance(exc.code, int) else 2
    # Our own handler on the "lblog" logger, installed only if something is logged (a
    # normal run logs nothing and skips importing logging): warnings reach stderr, where
    # cron mails them, whatever logging setup the embedding process has.
    from lblog import lazylog

    installed: list[Any] = []

    def setup() -> None:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("lblog: %(message)s"))
        logger = logging.getLogger("lblog")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
        logger.propagate = False
        installed.append((logger, handler))

    lazylog.on_first_use(setup)
    try:
        return _collect(args)
    finally:
        lazylog.on_first_use(None)
        for logger, handler in installed:
            logger.removeHandler(handler)
            logger.propagate = True


def _collect(args: argparse.Namespace) -> int:
    from lblog import spool
    from lblog.collect import collect, run_command
    from lblog.deliver import deliver
    from lblog.errors import LbvmError

    node = args.node or os.uname().nodename.split(".")[0]
    spool_dir = args.spool or Path(os.environ.get("LBLOG_SPOOL") or DEFAULT_SPOOL)
    try:
        spool.check_node_name(node)
    except LbvmError as exc:
        print(f"lblog: {exc}", file=sys.stderr)
        return 2
    live = args.proc_root.resolve() == Path("/")
    try:
        sample = collect(
            args.proc_root,
            node,
            source=args.source,
            sys_root=args.sys_root,
            ve_glob=args.ve_glob,
            private_path=args.private_path,
            cpu_hz=args.cpu_hz,
            vzlist=run_command if live else None,  # vzlist reads the live node only
        )
        if args.drbd != "none" or args.cluster != "none" or args.ha_map is not None:
            sample = _with_ha(args, sample, node)
        done = deliver(
            sample,
            spool_dir,
            args.backlog,
            backlog_max=args.backlog_max,
            lock_wait=args.lock_wait,
        )
    except LbvmError as exc:
        print(f"lblog: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"lblog: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.print_path:
        print(done.path)
    return 0


def _with_ha(args: argparse.Namespace, sample: Sample, node: str) -> Sample:
    """The sample with this node's HA report (absent tools are reported, not fatal)."""
    from lblog.ha.agent import collect_ha
    from lblog.ha.report import with_ha

    report = collect_ha(
        [ve.ve for ve in sample.ves],
        drbd=args.drbd,
        cluster=args.cluster,
        ha_map=args.ha_map,
        proc_root=args.proc_root,
        private_template=args.private_template,
        local=node,
    )
    return with_ha(sample, report)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


if __name__ == "__main__":
    sys.exit(main())
