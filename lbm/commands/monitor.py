"""`lbm monitor`: the LB monitor as a service (systemd) or one run at a time (cron)."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator

import click

from lbm.context import State, pass_state

SYSLOG_SOCKET = "/dev/log"


@contextlib.contextmanager
def _logging(foreground: bool) -> Iterator[None]:
    """key=value lines of the ``lbvm`` loggers at info level, for as long as the command runs:
    to stderr in the foreground (journald keeps them), else to syslog (facility daemon)."""
    handler: logging.Handler
    if foreground or not os.path.exists(SYSLOG_SOCKET):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    else:
        handler = logging.handlers.SysLogHandler(
            SYSLOG_SOCKET, facility=logging.handlers.SysLogHandler.LOG_DAEMON
        )
        handler.ident = "lbvm-monitor: "
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("lbvm")
    saved = logger.level, logger.propagate
    logger.setLevel(min(logging.getLogger().getEffectiveLevel(), logging.INFO))
    logger.propagate = False  # the root handler would print every line a second time
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@click.command()
@click.option("--once", is_flag=True,
              help="Run one check (with --nightly: one nightly run) and exit; for cron.")
@click.option("--nightly", is_flag=True,
              help="With --once: the nightly run, which acts on the automation level.")
@click.option("--foreground", is_flag=True,
              help="Log to stderr instead of syslog (for systemd and terminals).")
@pass_state
def monitor(state: State, once: bool, nightly: bool, foreground: bool) -> None:
    """Watch the cluster on a schedule and rebalance it at night.

    Every 5 minutes: ingest the spool, plan, report hot nodes and pairs that could not fail
    over. At 02:30: the same, then report, store (recommend) or execute the plan according
    to the automation level. Only one monitor is active at a time (a lease in the store);
    others wait and take over if it dies. Moves a crash left running are reconciled first.
    SIGHUP reloads the config, SIGTERM stops after the move in flight.

    Example: lbm monitor --once
    """
    from lbvm.monitor import Monitor

    if nightly and not once:
        raise click.UsageError("--nightly goes with --once (the service schedules it itself)")
    with _logging(foreground):
        mon = Monitor(state.config_path)
        restore = mon.install_signals()
        try:
            if not once:
                mon.serve()
                return
            result = mon.run_once(nightly=nightly)
        finally:
            restore()
    if result.status in ("error", "failed", "stale"):  # cron mails the operator
        raise click.ClickException(result.message or f"the {'nightly' if nightly else 'check'} "
                                   f"run {result.run_id} {result.status}")
