"""`lbm migrate`: one operator-chosen move, through the same validator and journal."""

from __future__ import annotations

import click

from lbm.commands.rebalance import act, backend_for
from lbm.context import State, pass_state
from lbm.output import output_options


@click.command()
@click.argument("veid")
@click.argument("node")
@click.option("--dry-run", is_flag=True, help="Validate only; move nothing.")
@click.option("--yes", "-y", is_flag=True, help="Execute without asking for confirmation.")
@click.option("--force", is_flag=True,
              help="Override should-rules (preferences). Must-rules are never overridden.")
@output_options
@pass_state
def migrate(
    state: State, veid: str, node: str, dry_run: bool, yes: bool, force: bool, fmt: str
) -> None:
    """Move one VE to another node, through the plan validator.

    A move inside the VE's pair is a switchover; to another pair, a migration. It is refused
    with the validator's reasons when the target would be over [balance].max_utilisation,
    a pair could no longer fail over, the VE is pinned, or the node is in maintenance.
    These are must-rules: --force never overrides them. A move against a should-rule (a
    `kind = "should"` rule of the config: where a VE would rather run) is refused too,
    unless --force.
    --dry-run shows the validated plan and moves nothing. The move is journalled like any
    other (`lbm log`, `lbm history`). Output as `lbm plan`.

    Example: lbm migrate 101 vz2a --yes
    """
    from lbvm.cycle import prepare_move

    backend = backend_for(state, dry_run)
    prepared = prepare_move(state.engine, state.config, veid, node, force=force)
    act(state, prepared, backend, yes=yes, fmt=fmt)
