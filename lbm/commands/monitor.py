"""`lbm monitor`: the LB monitor as a service (systemd) or one run at a time (cron)."""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator

import click

from lbm.context import State, pass_state

SYSLOG_SOCKET = "/dev/log"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, then the event's keys (or ``message``)."""

    def format(self, record: logging.LogRecord) -> str:
        from lbvm.monitor import KV

        doc: dict[str, object] = {"ts": round(record.created, 3), "level": record.levelname,
                                  "logger": record.name}
        arg = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if isinstance(arg, KV) and record.msg == "%s":
            doc |= {"event": arg.event, **arg.values}
        else:
            doc["message"] = record.getMessage()
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


@contextlib.contextmanager
def _logging(foreground: bool, fmt: str = "kv") -> Iterator[None]:
    """key=value (or JSON) lines of the ``lbvm`` loggers at info level, for as long as the
    command runs: to stderr in the foreground (journald keeps them), else to syslog."""
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
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
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
@click.option("--log-format", type=click.Choice(["kv", "json"]), default="kv",
              show_default=True, help="Log lines as key=value text or as one JSON object each.")
@pass_state
def monitor(state: State, once: bool, nightly: bool, foreground: bool, log_format: str) -> None:
    """Watch the cluster on a schedule and rebalance it at night.

    Every 5 minutes: ingest the spool, plan, report hot nodes and pairs that could not fail
    over. At 02:30: the same, then report, store (recommend) or execute each move according
    to its VE's automation level (`lbm automation`) and [monitor].threshold. Only one
    monitor is active at a time (a lease in the store); others wait and take over if it
    dies. Moves a crash left running are reconciled first. While the database is
    unreachable the service retries with growing pauses and resumes. SIGHUP reloads the
    config, SIGTERM stops after the moves in flight.

    Example: lbm monitor --once
    """
    from lbvm.monitor import Monitor

    if nightly and not once:
        raise click.UsageError("--nightly goes with --once (the service schedules it itself)")
    with _logging(foreground, log_format):
        mon = Monitor(state.config_path, wait_for_store=not once)
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
