"""`lbm plan` (and stored plans: --show, --apply), and how plans and their outcomes are shown
by plan, rebalance and migrate."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lbm.context import State, pass_state
from lbm.output import emit, human_bytes, output_options, render, to_json

if TYPE_CHECKING:
    from algorithms.base import Move, Plan
    from lbvm.executor import MoveResult

MOVE_COLUMNS = ("ve", "from", "to", "kind", "bytes", "reason")


def plan_doc(
    plan: Plan,
    problems: Sequence[str],
    *,
    run_id: int | None = None,
    status: str | None = None,
    results: Sequence[MoveResult] = (),
    mandatory: Collection[Move] | None = None,
) -> dict[str, Any]:
    """The plan as the stable JSON document of `lbm plan` (plus the run, when there is one)."""
    moves: list[dict[str, Any]] = [
        {"ve": m.ve, "from": m.src, "to": m.dst, "kind": m.kind, "bytes": m.bytes,
         "reason": m.reason}
        for m in plan.moves
    ]
    doc: dict[str, Any] = {
        "algorithm": plan.algorithm,
        "score_before": plan.score_before,
        "score_after": plan.score_after,
        "moves": moves,
        "notes": list(plan.notes),
        "valid": not problems,
        "problems": list(problems),
    }
    if run_id is not None:
        doc["run_id"] = run_id
        doc["status"] = status
    if mandatory is not None:
        for move, m in zip(moves, plan.moves, strict=True):
            move["mandatory"] = m in mandatory
    if results:
        for move, r in zip(moves, results, strict=True):
            move["state"] = r.state
            move["exit_code"] = r.outcome.exit_code if r.outcome else None
    return doc


def show(doc: dict[str, Any], fmt: str) -> None:
    """Print a plan document: JSON as is, CSV as the moves, table as a short summary."""
    if fmt == "json":
        click.echo(to_json(doc), nl=False)
        return
    moves = doc["moves"]
    executed = bool(moves) and "state" in moves[0]
    marked = bool(moves) and "mandatory" in moves[0]
    columns = [*MOVE_COLUMNS, *(("mandatory",) if marked else ()),
               *(("state", "exit_code") if executed else ())]
    if fmt == "csv":
        emit(moves, fmt, columns=columns)
        return
    total = sum(int(m["bytes"] or 0) for m in moves)
    verdict = "valid" if doc["valid"] else "REFUSED by the validator"
    stored = f"stored plan {doc['plan_id']} ({doc['plan_state']}), " if "plan_id" in doc else ""
    click.echo(
        f"{stored}plan by {doc['algorithm']}: {len(moves)} move(s), {human_bytes(total)} to copy, "
        f"score {doc['score_before']:.4f} -> {doc['score_after']:.4f} ({verdict})"
    )
    if moves:
        click.echo(render(moves, "table", columns=[c for c in columns if c != "bytes"]), nl=False)
    for note in doc["notes"]:
        click.echo(f"note: {note}")
    for problem in doc["problems"]:
        click.echo(f"problem: {problem}")


@click.command()
@click.option("--algorithm", "-a", help="Algorithm to plan with (default: [balance].algorithm).")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Plan for a scenario file instead of the store (offline; nothing is recorded).",
)
@click.option("--show", "show_id", type=int, metavar="ID",
              help="Show stored plan ID, checked against the cluster as it is now.")
@click.option("--apply", "apply_id", type=int, metavar="ID",
              help="Execute stored plan ID, re-validated first: a stale plan is refused whole.")
@click.option("--yes", "-y", is_flag=True, help="With --apply: execute without asking.")
@output_options
@pass_state
def plan(
    state: State,
    algorithm: str | None,
    scenario: Path | None,
    show_id: int | None,
    apply_id: int | None,
    yes: bool,
    fmt: str,
) -> None:
    """Show the moves an algorithm would make, and the score change.

    Nothing moves. The plan is checked by the same validator that guards `lbm rebalance`;
    'valid' is false and 'problems' says why when it would be refused. Planning from the
    store is recorded as a run (see `lbm log`).

    At the `recommend` automation level the monitor stores its nightly plan (`lbm log`
    names its ID). --show ID prints it with 'mandatory' per move, checked against the
    cluster as it is now; --apply ID executes it after that check, asking first unless
    --yes. A plan whose moves no longer validate (a VE moved since, a node filled up) is
    refused with the reasons and nothing moves; an applied plan cannot be applied again.

    Example: lbm plan --algorithm balance --format json; lbm plan --apply 7 --yes
    """
    picked = [o for o, v in (("--scenario", scenario), ("--show", show_id),
                             ("--apply", apply_id)) if v is not None]
    if len(picked) > 1:
        raise click.UsageError(f"{' and '.join(picked)} do not go together")
    if yes and apply_id is None:
        raise click.UsageError("--yes goes with --apply")
    if show_id is not None:
        _show_stored(state, show_id, fmt)
        return
    if apply_id is not None:
        _apply_stored(state, apply_id, yes, fmt)
        return
    if scenario is not None:
        from algorithms import registry
        from lbvm import scenario as scenarios
        from lbvm.validate import validate

        loaded = scenarios.load(scenario)
        algo = registry.load(algorithm or loaded.algorithm)
        made = algo.plan(loaded.problem)
        show(plan_doc(made, validate(loaded.problem, made)), fmt)
        return
    from lbvm.cycle import apply_plan, prepare

    prepared = prepare(state.engine, state.config, algorithm=algorithm, kind="plan")
    result = apply_plan(state.engine, state.config, prepared, execute=False)
    show(plan_doc(result.plan, result.reasons or prepared.reasons), fmt)


def _show_stored(state: State, plan_id: int, fmt: str) -> None:
    from lbvm.cycle import check_stored

    stored, _, checked, reasons = check_stored(state.engine, state.config, plan_id)
    doc = plan_doc(checked, reasons, mandatory=stored.mandatory)
    doc |= {"plan_id": stored.id, "plan_state": stored.state, "created_at": stored.created_at}
    show(doc, fmt)


def _apply_stored(state: State, plan_id: int, yes: bool, fmt: str) -> None:
    from lbm.commands.rebalance import act, backend_for
    from lbvm import journal
    from lbvm.cycle import prepare_stored

    backend = backend_for(state, False)
    prepared, _ = prepare_stored(state.engine, state.config, plan_id)
    try:
        act(state, prepared, backend, yes=yes, fmt=fmt)
    finally:
        if not journal.moves_frame(state.engine, run_id=prepared.run_id).empty:
            journal.set_plan_state(state.engine, plan_id, "applied")
