"""`lbm rebalance`, and the confirm-then-act step it shares with `lbm migrate`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from lbm.commands.plan import plan_doc, show
from lbm.context import State, pass_state
from lbm.output import output_options

if TYPE_CHECKING:
    from lbvm.cycle import Prepared
    from lbvm.executor import Backend


def backend_for(state: State, dry_run: bool) -> Backend | None:
    """The configured backend, built before a run opens so a bad template fails first."""
    from lbvm.executor import backend_from_config

    return None if dry_run else backend_from_config(state.config, state.engine)


def _confirmed(question: str) -> bool:
    """Ask on stderr; end of input or Ctrl-C counts as no."""
    try:
        return click.confirm(question, err=True)
    except click.Abort:
        click.echo("", err=True)
        return False


def act(
    state: State, prepared: Prepared, backend: Backend | None, *, yes: bool, fmt: str
) -> None:
    """Show the plan, ask unless --yes, execute with ``backend``, show the results.

    ``backend`` None means a dry run. Exits 1 when the plan is refused, the operator
    declines, or a move fails.
    """
    from lbvm.cycle import apply_plan

    engine, config = state.engine, state.config
    plan = prepared.plan
    if prepared.reasons or backend is None or not plan.moves:
        result = apply_plan(engine, config, prepared, execute=False)
        show(plan_doc(plan, result.reasons, run_id=result.run_id, status=result.status), fmt)
        if result.reasons:
            raise click.ClickException("the plan was refused by the validator; nothing moved")
        return
    if not yes:
        if fmt == "table":
            show(plan_doc(plan, ()), fmt)
        question = f"Execute {len(plan.moves)} move(s) with the {backend.name} backend?"
        if not _confirmed(question):
            apply_plan(engine, config, prepared, execute=False)
            raise click.ClickException("not confirmed; nothing moved")
    result = apply_plan(engine, config, prepared, execute=True, backend=backend)
    doc = plan_doc(plan, (), run_id=result.run_id, status=result.status, results=result.results)
    show(doc, fmt)
    failed = [r for r in result.results if r.state == "failed"]
    if failed:
        output = failed[0].outcome.output if failed[0].outcome else ""
        last = (output.strip().splitlines() or [""])[-1]
        raise click.ClickException(
            f"run {result.run_id} failed: the move of VE {failed[0].move.ve} failed"
            + (f" ({last})" if last else "")
            + "; later moves were skipped, see `lbm log`"
        )


@click.command()
@click.option("--algorithm", "-a", help="Algorithm to plan with (default: [balance].algorithm).")
@click.option("--dry-run", is_flag=True, help="Plan and validate only; move nothing.")
@click.option("--yes", "-y", is_flag=True, help="Execute without asking for confirmation.")
@output_options
@pass_state
def rebalance(
    state: State, algorithm: str | None, dry_run: bool, yes: bool, fmt: str
) -> None:
    """Plan, validate and execute moves that even out the cluster.

    Moves VEs with the configured backend ([executor].backend) in the plan's order, one at a
    time unless [executor].max_parallel allows more where safe; each move is journalled
    (`lbm log`). A failed move stops the run and the rest are skipped. VEs moved within
    [executor].cooldown are left alone. Asks before moving anything unless --yes; ingest
    first for fresh data.

    Example: lbm ingest && lbm rebalance --yes
    """
    from lbvm.cycle import prepare

    backend = backend_for(state, dry_run)
    prepared = prepare(state.engine, state.config, algorithm=algorithm, kind="rebalance")
    act(state, prepared, backend, yes=yes, fmt=fmt)
