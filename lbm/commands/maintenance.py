"""`lbm maintenance NODE on|off`: drain a node through a validated plan, and bring it back;
`lbm maintenance rolling`: take the whole cluster through a command, node by node."""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

import click

from lbm.commands.plan import plan_doc, show
from lbm.commands.rebalance import _confirmed
from lbm.context import State, pass_state
from lbm.output import output_options

if TYPE_CHECKING:
    from algorithms.base import Plan, Problem
    from lbvm.executor import Backend


def _flag(state: State, node: str, on: bool) -> bool:
    """Set the node's maintenance flag; return what it was (NotFound for unknown nodes)."""
    import sqlalchemy as sa

    from lbvm.errors import NotFound
    from lbvm.store.events import record_event
    from lbvm.store.queries import set_maintenance
    from lbvm.store.schema import nodes

    if node not in state.config.pair_of():
        raise NotFound(f"node {node!r} is not a node of a configured pair")
    with state.engine.begin() as conn:
        was = conn.execute(sa.select(nodes.c.maintenance).where(nodes.c.name == node)).scalar()
        set_maintenance(conn, node, on)
        record_event(conn, "info", "maintenance", node,
                     f"node {node} maintenance {'on' if on else 'off'}")
    return bool(was)


def _homes(state: State, node: str) -> dict[str, str]:
    """VE -> node, for VEs the latest drain of ``node`` moved away (done moves only)."""
    from lbvm import journal
    from lbvm.maintenance import DRAIN
    from lbvm.store.events import list_events

    on = list_events(state.engine, kind="maintenance", limit=1_000)
    on = on[(on["subject"] == node) & on["message"].str.endswith(" on")]
    since = float(on["ts"].max()) if len(on) else None
    moves = journal.moves_frame(state.engine, since=since)
    drained = moves[(moves["state"] == "done") & (moves["src"] == node)
                    & moves["reason"].fillna("").str.startswith(DRAIN.format(node=node))]
    return {str(ve): node for ve in drained["ve"].drop_duplicates()}


def _run(state: State, problem: Problem, plan: Plan, backend: Backend | None, *,
         yes: bool, fmt: str, strict: bool) -> bool:
    """Validate, show, confirm and execute; True when every move ran (or nothing to do)."""
    from lbvm import journal
    from lbvm.cycle import Prepared, apply_plan
    from lbvm.validate import validate
    from lbvm.validate_ha import reasons as ha_reasons

    engine, config = state.engine, state.config
    reasons = tuple(dict.fromkeys([*validate(problem, plan), *ha_reasons(problem, plan)]))
    if strict and plan.notes[1:] and not reasons:
        reasons = tuple(f"{n} (--partial moves the others)" for n in plan.notes[1:])
    run_id = journal.start_run(engine, "maintenance", plan.algorithm)
    prepared = Prepared(run_id, problem, plan, reasons)
    if reasons or backend is None or not plan.moves:
        result = apply_plan(engine, config, prepared, execute=False)
        show(plan_doc(plan, result.reasons, run_id=result.run_id, status=result.status), fmt)
        if result.reasons:
            raise click.ClickException("the plan was refused; nothing moved")
        return backend is not None
    if not yes:
        if fmt == "table":
            show(plan_doc(plan, ()), fmt)
        if not _confirmed(f"Execute {len(plan.moves)} move(s) with the {backend.name} backend?"):
            apply_plan(engine, config, prepared, execute=False)
            raise click.ClickException("not confirmed; nothing moved")
    result = apply_plan(engine, config, prepared, execute=True, backend=backend)
    show(plan_doc(plan, (), run_id=result.run_id, status=result.status,
                  results=result.results), fmt)
    failed = [r for r in result.results if r.state == "failed"]
    if failed:
        raise click.ClickException(f"run {result.run_id} failed: the move of VE "
                                   f"{failed[0].move.ve} failed; see `lbm log`")
    return True


class _NodeOrCommand(click.Group):
    """`lbm maintenance NODE on|off` and `lbm maintenance rolling`: a first word that is not
    a subcommand is a node name, handled by the hidden `node` subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["node", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_NodeOrCommand)
def maintenance() -> None:
    """Drain a node for maintenance (on), or end maintenance (off).

    lbm maintenance NODE on|off [--return] [--partial] [--dry-run] [--yes] drains NODE
    (see `lbm maintenance NODE on --help`); it is refused while NODE's partner or its
    pair's replication is not healthy. lbm maintenance rolling --command CMD takes every
    node through CMD in turn (see `lbm maintenance rolling --help`).

    Example: lbm maintenance vz1a on --yes
    """


@maintenance.command("node", hidden=True)
@click.argument("node")
@click.argument("action", type=click.Choice(["on", "off"]))
@click.option("--return", "bring_back", is_flag=True,
              help="With 'off': move the VEs the last drain took away back to NODE.")
@click.option("--partial", is_flag=True,
              help="Drain what can be drained even when some VEs must stay.")
@click.option("--dry-run", is_flag=True, help="Plan and validate only; change nothing.")
@click.option("--force", is_flag=True,
              help="Drain even when the partner or the pair's replication is not healthy.")
@click.option("--yes", "-y", is_flag=True, help="Execute without asking for confirmation.")
@output_options
@pass_state
def node_maintenance(state: State, node: str, action: str, bring_back: bool, partial: bool,
                     dry_run: bool, force: bool, yes: bool, fmt: str) -> None:
    """Drain a node for maintenance (on), or end maintenance (off).

    'on' flags the node (no plan will put a VE on it) and evacuates every VE on it: to its
    HA partner when the partner has room (a switchover), else to the node of another pair
    with most room. The plan goes through the shared validator: capacity after every move,
    failover headroom of every pair, pins, maintenance. The routine move budget
    (max_moves, max_bytes) does not apply to a drain. When a VE cannot leave (pinned, out of
    balancing, no room) nothing moves and the flag is left as it was, unless --partial.
    Each move is journalled; `lbm log` shows the run.

    'off' clears the flag; with --return it moves back the VEs the last drain took away
    (read from the journal), where they still fit.

    'on' is refused while the node's HA partner is not healthy (offline, standby, unclean,
    its disk not UpToDate) or the pair's replication is broken, unless --force: the
    drained VEs would land where they cannot fail over.

    Example: lbm maintenance vz1a on --yes
    """
    from lbvm.maintenance import drain_plan, for_drain, partner_blockers, return_plan

    on = action == "on"
    if bring_back and on:
        raise click.UsageError("--return goes with 'off'")
    if on and not force:
        blockers = partner_blockers(state.engine, state.config, node)
        if blockers:
            raise click.ClickException(f"maintenance of {node} refused: its pair is not "
                                       f"healthy: {'; '.join(blockers)} (--force to drain anyway)")
    backend = _backend(state, dry_run)
    build_problem = _problems(state)
    if dry_run:
        problem = for_drain(build_problem(state.engine, state.config), node, on)
        plan = drain_plan(problem, node) if on else return_plan(
            problem, _homes(state, node) if bring_back else {}, node)
        _run(state, problem, plan, None, yes=yes, fmt=fmt, strict=on and not partial)
        return
    was = _flag(state, node, on)
    try:
        problem = for_drain(build_problem(state.engine, state.config), node, on)
        if on:
            plan = drain_plan(problem, node)
        elif bring_back:
            plan = return_plan(problem, _homes(state, node), node)
        else:
            click.echo(f"node {node} is out of maintenance")
            return
        _run(state, problem, plan, backend, yes=yes, fmt=fmt, strict=on and not partial)
    except Exception as exc:
        if on and not _moved(exc):
            _flag(state, node, was)
        raise
    if on and fmt == "table":
        click.echo(f"node {node} is in maintenance")


def _backend(state: State, dry_run: bool) -> Backend | None:
    """The configured backend (``live-switchover`` included), None for a dry run."""
    from lbvm.switchover import backend_for as switchover_backend

    return None if dry_run else switchover_backend(state.config, state.engine)


def _problems(state: State) -> Any:
    """build_problem with the HA state applied (no new VE on a degraded pair)."""
    from lbvm import hastate
    from lbvm.model import build_problem

    def build(engine: Any, config: Any) -> Problem:
        return hastate.apply(build_problem(engine, config), engine, config)

    return build


def parse_command(text: str) -> list[str]:
    """A JSON list of strings, or shell-like words split with shlex (never run by a shell)."""
    if text.strip().startswith("["):
        try:
            argv = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not a JSON list: {exc}", param_hint="--command") from None
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise click.BadParameter("the JSON must be a list of strings", param_hint="--command")
    else:
        try:
            argv = shlex.split(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--command") from None
    if not argv or not all(argv):
        raise click.BadParameter("the command is empty", param_hint="--command")
    return argv


@maintenance.command("rolling")
@click.option("--command", "command_text", required=True, metavar="CMD",
              help="What to run on each node: a JSON list of strings, or words split like "
                   "a shell would (shlex) but never run through a shell.")
@click.option("--dry-run", is_flag=True, help="Print the sequence; change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Start without asking for confirmation.")
@pass_state
def rolling(state: State, command_text: str, dry_run: bool, yes: bool) -> None:
    """Upgrade the whole cluster node by node: drain, run a command, wait, bring VEs back.

    Refused while any pair is degraded. For each node, pair by pair: drain it to its
    partner (a validated plan, the HA rules included), run CMD on it through ssh with
    [rolling].command_timeout (exit 255, a reboot dropping ssh, counts as run), wait up to
    [rolling].wait_timeout for it to come back (its lblog samples resume, its cluster
    manager says online, its DRBD resources are UpToDate again), bring its VEs home, and
    go on. Nothing proceeds past a node that did not come back healthy. Progress is kept
    in the store: run the same command again to resume an interrupted upgrade where it
    stopped. Every move is journalled; `lbm log --kind rolling` follows the nodes.

    Example: lbm maintenance rolling --command 'yum -y update vzkernel' --dry-run
    """
    from lbvm.rolling import Rolling, describe
    from lbvm.store.ingest import ingest

    argv = parse_command(command_text)
    engine, config = state.engine, state.config
    problems = _problems(state)
    if dry_run:
        for line in describe(config, argv, problems(engine, config)):
            click.echo(line)
        return
    backend = _backend(state, False)
    assert backend is not None
    if not yes and not _confirmed(f"Run {json.dumps(argv)} on every node, one at a time?"):
        raise click.ClickException("not confirmed; nothing changed")
    run_id = Rolling(engine, config, argv, backend, lambda: problems(engine, config),
                     lambda: ingest(engine, config.spool)).run()
    click.echo(f"rolling upgrade {run_id}: every node done")


def _moved(exc: BaseException) -> bool:
    """Whether an error came after moves ran (then the flag must stay)."""
    return isinstance(exc, click.ClickException) and "failed: the move of VE" in exc.message
