"""`lbm history`: runs with their moves, newest first."""

from __future__ import annotations

import time
from typing import Any, cast

import click

from lbm.context import State, pass_state
from lbm.output import emit, iso, output_options, record, render, to_json
from lbm.params import DURATION

RUN_COLUMNS = ["id", "kind", "algorithm", "started_at", "finished_at", "status",
               "score_before", "score_after", "moves", "done", "failed", "message"]
MOVE_COLUMNS = ["id", "ve", "src", "dst", "kind", "state", "exit_code", "reason"]


def history_docs(state: State, since: float, limit: int) -> list[dict[str, Any]]:
    """Runs started since ``since`` (the newest ``limit``), newest first, each with its
    journalled moves (in plan order)."""
    from lbvm import journal

    runs = journal.runs_frame(state.engine, since=since).tail(limit).iloc[::-1]
    moves = journal.moves_frame(state.engine, since=since)
    keyed = moves.dropna(subset=["run_id"])
    by_run = {int(cast(float, k)): g for k, g in keyed.groupby("run_id")}
    docs = []
    for run in runs.to_dict("records"):
        mine = by_run.get(int(run["id"]))
        rows = [] if mine is None else mine[MOVE_COLUMNS].to_dict("records")
        states = [m["state"] for m in rows]
        docs.append({
            **{k: run[k] for k in RUN_COLUMNS if k in run},
            "moves": len(rows), "done": states.count("done"), "failed": states.count("failed"),
            "message": run["message"],
            "move_rows": rows,
        })
    return docs


@click.command()
@click.option("--since", type=DURATION, default="7d", show_default=True,
              help="How far back to look (e.g. 24h, 30d).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="At most this many runs (the newest).")
@output_options
@pass_state
def history(state: State, since: float, limit: int, fmt: str) -> None:
    """Show runs with their moves, newest first.

    A run is one plan, rebalance, migrate, maintenance or monitor cycle. Columns (CSV, one
    row per run): id, kind, algorithm, started_at, finished_at, status, score_before,
    score_after, moves, done, failed, message. JSON adds "moves_detail": the run's moves
    with id, ve, src, dst, kind, state, exit_code, reason.

    Example: lbm history --since 30d --format json
    """
    docs = history_docs(state, time.time() - since, limit)
    if fmt == "csv":
        emit([{k: d[k] for k in RUN_COLUMNS} for d in docs], fmt, columns=RUN_COLUMNS)
        return
    if fmt == "json":
        out = [record({k: d[k] for k in RUN_COLUMNS})
               | {"moves_detail": [record(m) for m in d["move_rows"]]} for d in docs]
        click.echo(to_json(out), nl=False)
        return
    if not docs:
        click.echo("(none)")
    for d in docs:
        score = ("" if d["score_before"] is None or d["score_before"] != d["score_before"]
                 else f", score {d['score_before']:.4f} -> {d['score_after']:.4f}")
        click.echo(f"run {d['id']} {d['kind']} ({d['algorithm'] or '-'}) {d['status']} at "
                   f"{iso(d['started_at'])}{score}: {d['message'] or ''}".rstrip(": "))
        if d["move_rows"]:
            table = render(d["move_rows"], "table", columns=MOVE_COLUMNS)
            click.echo("".join(f"    {line}\n" for line in table.splitlines()), nl=False)

