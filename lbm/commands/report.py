"""`lbm report`: one page for an operator or a daily mail."""

from __future__ import annotations

import time

import click

from lbm.context import State, pass_state
from lbm.output import iso, render
from lbm.params import DURATION

NODE_COLUMNS = ["node", "pair", "ves", "cpu_util", "mem_util", "maintenance", "last_seen"]
MOVE_COLUMNS = ["planned_at", "ve", "src", "dst", "kind", "state", "exit_code"]


def _score_lines(state: State) -> list[str]:
    """Score and failover from the Problem the balancer would see, or why it cannot."""
    import numpy as np

    from lbvm.errors import LbvmError
    from lbvm.model import build_problem
    from lbvm.validate import headroom

    try:
        problem = build_problem(state.engine, state.config)
    except LbvmError as exc:
        return [f"imbalance score: unavailable ({exc})"]
    room = headroom(problem)
    pair_of = state.config.pair_of()
    broken = sorted(
        pair_of.get(problem.nodes[int(np.flatnonzero(problem.pair == p)[0])], f"#{p}")
        for p in np.flatnonzero((room < 0).any(axis=1))
    )
    return [
        f"imbalance score: {problem.score():.4f} (weighted std of node utilisation; 0 is even)",
        "pairs that could not fail over: " + (", ".join(broken) if broken else "none"),
    ]


@click.command()
@click.option("--since", type=DURATION, default="24h", show_default=True,
              help="Period for runs, moves and quarantined files (e.g. 7d).")
@pass_state
def report(state: State, since: float) -> None:
    """Summarise the cluster: utilisation, score, recent moves, problems.

    Plain text, meant for a terminal or a daily mail from cron. Node figures use
    [balance].window; runs, moves and quarantined spool files cover --since.

    Example: lbm report --since 7d | mail -s "LBVM report" root
    """
    from lbvm import journal
    from lbvm.store.events import list_events
    from lbvm.store.queries import node_table

    config, engine = state.config, state.engine
    now = time.time()
    cutoff = now - since
    hours = since / 3600
    click.echo(f"LBVM report at {iso(now)}, covering the last {hours:g} h")
    click.echo(f"config: {config.path or 'built-in defaults'}\n")

    click.echo(f"Nodes (statistics over {config.balance.window / 3600:g} h)")
    click.echo(render(node_table(engine, config, window=config.balance.window), "table",
                      columns=NODE_COLUMNS), nl=False)
    for line in _score_lines(state):
        click.echo(line)

    runs = journal.runs_frame(engine, since=cutoff)
    counts = runs["status"].value_counts().sort_index()
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    click.echo(f"\nRuns: {len(runs)}" + (f" ({detail})" if detail else ""))

    moves = journal.moves_frame(engine, since=cutoff)
    click.echo(f"\nMoves: {len(moves)}")
    if len(moves):
        click.echo(render(moves.tail(20), "table", columns=MOVE_COLUMNS), nl=False)
        if len(moves) > 20:
            click.echo(f"(the last 20 of {len(moves)}; see `lbm log`)")

    bad = list_events(engine, since=cutoff, kind="quarantine", limit=20)
    click.echo(f"\nQuarantined spool files: {len(bad)}")
    if len(bad):
        click.echo(render(bad, "table", columns=["ts", "subject", "message"]), nl=False)
