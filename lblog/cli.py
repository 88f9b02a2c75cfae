"""``lblog``: the node agent's command line (standard library only, quiet for cron).

Exit status: 0 the sample was written (to the spool, or kept in the local backlog),
1 it could not be collected or written (one ``lblog: <file>:<line>: <what>`` line on
stderr, nothing written), 2 bad usage.
"""

from __future__ import annotations

import gc
import os
import sys

from lblog.args import DEFAULT_SPOOL, build_parser, parse_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import SimpleNamespace
    from typing import Any

    from lblog.sample import Sample

__all__ = ["build_parser", "main"]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
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
    # A run allocates tens of thousands of short-lived containers and no reference cycles:
    # the cyclic collector would only walk them (~2 ms). Restored for an embedding process.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _collect(args)
    finally:
        if collecting:
            gc.enable()
        lazylog.on_first_use(None)
        for logger, handler in installed:
            logger.removeHandler(handler)
            logger.propagate = True


def _collect(args: SimpleNamespace) -> int:
    from lblog import spool
    from lblog.collect import collect, run_command
    from lblog.deliver import deliver
    from lblog.errors import LbvmError

    node = args.node or os.uname().nodename.split(".")[0]
    spool_dir = args.spool or os.environ.get("LBLOG_SPOOL") or DEFAULT_SPOOL
    try:
        spool.check_node_name(node)
    except LbvmError as exc:
        print(f"lblog: {exc}", file=sys.stderr)
        return 2
    live = os.path.realpath(args.proc_root) == "/"
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


def _with_ha(args: SimpleNamespace, sample: Sample, node: str) -> Sample:
    """The sample with this node's HA report (absent tools are reported, not fatal)."""
    from pathlib import Path

    from lblog.ha.agent import collect_ha
    from lblog.ha.report import with_ha

    report = collect_ha(
        [ve.ve for ve in sample.ves],
        drbd=args.drbd,
        cluster=args.cluster,
        ha_map=None if args.ha_map is None else Path(args.ha_map),
        proc_root=Path(args.proc_root),
        private_template=args.private_template,
        local=node,
    )
    return with_ha(sample, report)


if __name__ == "__main__":
    sys.exit(main())
