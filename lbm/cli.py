"""`lbm`: the operator's command line over the LBVM store.

Commands are registered lazily (name -> "module:attr") so `lbm --help` imports no more than
click; the store, pandas and numpy load only for the command that runs. LBVM's typed errors
become one-line messages with exit code 1; usage errors exit with 2 (see docs/cli.md).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import click

from lbm.context import State

COMMANDS: dict[str, str] = {
    "add": "lbm.commands.flags:add",
    "algorithms": "lbm.commands.algorithms:algorithms",
    "automation": "lbm.commands.automation:automation",
    "check": "lbm.commands.check:check",
    "completion": "lbm.commands.completion:completion",
    "demo": "lbm.commands.demo:demo",
    "export": "lbm.commands.export:export",
    "history": "lbm.commands.history:history",
    "ingest": "lbm.commands.ingest:ingest",
    "list": "lbm.commands.listing:list_ves",
    "log": "lbm.commands.log:log",
    "maintenance": "lbm.commands.maintenance:maintenance",
    "migrate": "lbm.commands.migrate:migrate",
    "monitor": "lbm.commands.monitor:monitor",
    "nodes": "lbm.commands.listing:nodes",
    "pairs": "lbm.commands.listing:pairs",
    "pin": "lbm.commands.flags:pin",
    "plan": "lbm.commands.plan:plan",
    "rebalance": "lbm.commands.rebalance:rebalance",
    "remove": "lbm.commands.flags:remove",
    "report": "lbm.commands.report:report",
    "retention": "lbm.commands.retention:retention",
    "show": "lbm.commands.show:show",
    "simulate": "lbm.commands.simulate:simulate",
    "unpin": "lbm.commands.flags:unpin",
}

# One line per command for `lbm --help`, so listing them imports none of them. A test
# checks each line against the command's own help.
SUMMARIES: dict[str, str] = {
    "add": "Put a VE under balancing (the balancer may move it).",
    "algorithms": "List the placement algorithms that are installed.",
    "automation": "Set how the nightly run treats one VE's moves, whatever the cluster's level.",
    "check": "Check that every HA pair can fail over now, as a monitoring plugin.",
    "completion": "Print the shell completion script for bash, zsh or fish.",
    "demo": (
        "Balance a simulated cluster of HA pairs from /proc files to executed moves."
    ),
    "export": "Write metrics for Prometheus in node_exporter's textfile-collector format.",
    "history": "Show runs with their moves, newest first.",
    "ingest": "Load new spool files into the store, each file exactly once.",
    "list": "List VEs with their recent use, where they run and their flags.",
    "log": "Show what LBVM did: events and journalled moves, oldest first.",
    "maintenance": "Drain a node for maintenance (on), or end maintenance (off).",
    "migrate": "Move one VE to another node, through the plan validator.",
    "monitor": "Watch the cluster on a schedule and rebalance it at night.",
    "nodes": "List nodes with their capacity and recent use.",
    "pairs": "List HA pairs: their load and whether a survivor could carry it.",
    "pin": "Pin a VE to its node: no plan, drain or manual move will take it away.",
    "plan": "Show the moves an algorithm would make, and the score change.",
    "rebalance": "Plan, validate and execute moves that even out the cluster.",
    "remove": "Take a VE out of balancing (the balancer leaves it where it is).",
    "report": "Summarise the cluster: utilisation, score, recent moves, problems.",
    "retention": "Roll raw samples up into hours and drop what is past retention.",
    "show": "Show one VE: where it runs, its flags, recent use and every journalled move.",
    "simulate": "Replay a workload trace step by step through the planner, validator and executor.",
    "unpin": "Unpin a VE so plans may move it again.",
}

CONFIG_CANDIDATES = (Path("lbvm.toml"), Path("/etc/lbvm/lbvm.toml"))


class LazyGroup(click.Group):
    """A group whose commands are imported on first use from "module:attr" strings."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str] | None = None,
        summaries: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})
        self.summaries = dict(summaries or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def _load(self, name: str) -> click.Command:
        module_name, attr = self.lazy[name].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.lazy[name]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            summary = self.summaries.get(name)
            if summary is None:
                command = self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                summary = command.get_short_help_str(formatter.width - 6 - len(name))
            rows.append((name, summary))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from algorithms.errors import AlgorithmError
        from lbvm.errors import LbvmError

        try:
            return super().invoke(ctx)
        except (LbvmError, AlgorithmError) as exc:
            raise click.ClickException(_first_line(exc)) from exc
        except Exception as exc:
            # The store going away mid-command (a dropped connection, a locked or deleted
            # SQLite file) is the operator's to fix, not a bug: one line, no traceback.
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                orig = getattr(exc, "orig", None) or exc
                raise click.ClickException(f"store error: {_first_line(orig)}") from exc
            raise


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else repr(exc)


def resolve_config(explicit: Path | None) -> Path | None:
    """--config / LBVM_CONFIG, else ./lbvm.toml, else /etc/lbvm/lbvm.toml, else None."""
    if explicit is not None:
        return explicit
    for candidate in CONFIG_CANDIDATES:
        if candidate.is_file():
            return candidate
    return None


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    summaries=SUMMARIES,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Example: lbm --config /etc/lbvm/lbvm.toml nodes --format json",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    envvar="LBVM_CONFIG",
    help="Config file (default: $LBVM_CONFIG, ./lbvm.toml, /etc/lbvm/lbvm.toml, built-ins).",
)
@click.option("-v", "--verbose", count=True, help="Log more to stderr (-v info, -vv debug).")
@click.version_option(package_name="lbvm")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """Balance VEs (containers, VMs) across a cluster of 2-node HA pairs.

    Example: lbm plan --format json
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    state = State(resolve_config(config_path))
    ctx.obj = state
    ctx.call_on_close(state.close)
