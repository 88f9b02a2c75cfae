"""`lbm log`: events and journalled moves, merged by time."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from lbm.context import State, pass_state
from lbm.output import emit, output_options
from lbm.params import DURATION

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

COLUMNS = ["time", "level", "kind", "subject", "message"]
_LEVEL = {"failed": "error", "unknown": "warning", "skipped": "warning"}


def log_frame(engine: Engine, *, since: float, limit: int) -> pd.DataFrame:
    """The newest ``limit`` entries since ``since``, oldest first (columns COLUMNS).

    Move events written by the executor are left out: the journal rows say the same with
    the exit code and command.
    """
    import pandas as pd

    from lbvm import journal
    from lbvm.store.events import list_events

    events = list_events(engine, since=since, limit=limit)
    events = events[events["kind"] != "move"].rename(columns={"ts": "time"})
    moves = journal.moves_frame(engine, since=since)
    when = moves["finished_at"].fillna(moves["started_at"]).fillna(moves["planned_at"])
    exit_note = moves["exit_code"].map(lambda c: "" if pd.isna(c) else f", exit {int(c)}")
    text = (
        "move " + moves["id"].astype(str) + " " + moves["state"] + ": " + moves["src"] + " -> "
        + moves["dst"] + " (" + moves["kind"] + ", " + moves["backend"].fillna("?")
        + exit_note + ")"
    )
    journal_rows = pd.DataFrame({
        "time": when,
        "level": moves["state"].map(_LEVEL).fillna("info"),
        "kind": "move",
        "subject": moves["ve"],
        "message": text,
    })
    parts = [f[COLUMNS] for f in (events, journal_rows) if len(f)]
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    merged = pd.concat(parts, ignore_index=True).sort_values("time", kind="stable")
    return merged.tail(limit).reset_index(drop=True)


@click.command()
@click.option("--since", type=DURATION, default="24h", show_default=True,
              help="How far back to look (e.g. 1h, 7d).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many entries (the newest).")
@output_options
@pass_state
def log(state: State, since: float, limit: int, fmt: str) -> None:
    """Show what LBVM did: events and journalled moves, oldest first.

    Events are runs, refusals, quarantined spool files and errors; moves show their state
    (planned, running, done, failed, skipped, unknown), backend and exit code.

    Example: lbm log --since 7d --limit 20
    """
    emit(log_frame(state.engine, since=time.time() - since, limit=limit), fmt)
