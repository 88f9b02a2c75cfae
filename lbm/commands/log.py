"""`lbm log`: events and journalled moves, merged by time; --follow keeps watching."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from lbm.context import State, pass_state
from lbm.output import emit, output_options, record, render
from lbm.params import DURATION

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

COLUMNS = ["time", "level", "kind", "subject", "message"]
LEVELS = ("info", "warning", "error")
_LEVEL = {"failed": "error", "unknown": "warning", "skipped": "warning"}


def log_frame(engine: Engine, *, since: float, limit: int) -> pd.DataFrame:
    """The newest ``limit`` entries since ``since``, oldest first: COLUMNS plus ``key``
    (unique per entry and move state, so --follow prints each change once).

    Move events written by the executor are left out: the journal rows say the same with
    the exit code and command.
    """
    import pandas as pd

    from lbvm import journal
    from lbvm.store.events import list_events

    events = list_events(engine, since=since, limit=limit)
    events = events[events["kind"] != "move"].rename(columns={"ts": "time"})
    events = events.assign(key="event:" + events["id"].astype(str))
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
        "key": "move:" + moves["id"].astype(str) + ":" + moves["state"],
    })
    parts = [f[[*COLUMNS, "key"]] for f in (events, journal_rows) if len(f)]
    if not parts:
        return pd.DataFrame(columns=[*COLUMNS, "key"])
    merged = pd.concat(parts, ignore_index=True).sort_values("time", kind="stable")
    return merged.tail(limit).reset_index(drop=True)


def _filter(frame: pd.DataFrame, level: str | None, kind: str | None) -> pd.DataFrame:
    if level is not None:
        frame = frame[frame["level"].map(LEVELS.index) >= LEVELS.index(level)]
    if kind is not None:
        frame = frame[frame["kind"] == kind]
    return frame


def _line(row: Mapping[Any, Any], fmt: str) -> str:
    """One entry as a line of --follow output: JSON Lines, CSV, or table text."""
    if fmt == "json":
        return json.dumps(record(row)) + "\n"
    rows = [{str(k): v for k, v in row.items()}]
    return render(rows, fmt, columns=COLUMNS).splitlines()[1] + "\n"


@click.command()
@click.option("--since", type=DURATION, default="24h", show_default=True,
              help="How far back to look (e.g. 1h, 7d).")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="At most this many entries (the newest).")
@click.option("--level", type=click.Choice(LEVELS), help="Only entries at this level or worse.")
@click.option("--kind", help="Only this kind: run, move, quarantine, spool, maintenance, "
                              "operator, ...")
@click.option("--follow", "-f", is_flag=True,
              help="Keep printing new entries as they happen, until Ctrl-C.")
@click.option("--interval", type=DURATION, default="2s", show_default=True,
              help="With --follow: how often to look for new entries.")
@output_options
@pass_state
def log(state: State, since: float, limit: int, level: str | None, kind: str | None,
        follow: bool, interval: float, fmt: str) -> None:
    """Show what LBVM did: events and journalled moves, oldest first.

    Columns: time, level, kind, subject, message. Events are runs, refusals, quarantined
    spool files, maintenance and operator changes, and errors; moves show their state
    (planned, running, done, failed, skipped, unknown), backend and exit code. --follow
    prints each new entry (and each move's state change) as one line; with --format json
    one JSON object per line.

    Example: lbm log --since 7d --level warning
    """
    engine = state.engine
    frame = _filter(log_frame(engine, since=time.time() - since, limit=limit), level, kind)
    if not follow:
        emit(frame, fmt, columns=COLUMNS)
        return
    seen = set(frame["key"])
    if fmt == "json":
        for row in frame[COLUMNS].to_dict("records"):
            click.echo(_line(row, fmt), nl=False)
    else:
        emit(frame, fmt, columns=COLUMNS)
    last = float(frame["time"].max()) if len(frame) else time.time() - since
    try:
        while True:
            time.sleep(interval)
            # Moves are found by planned_at: look an hour back for long ones finishing now.
            fresh = _filter(log_frame(engine, since=last - 3600, limit=10_000), level, kind)
            fresh = fresh[~fresh["key"].isin(seen)]
            for row in fresh.to_dict("records"):
                seen.add(row["key"])
                click.echo(_line({c: row[c] for c in COLUMNS}, fmt), nl=False)
            if len(fresh):
                last = max(last, float(fresh["time"].max()))
    except KeyboardInterrupt:
        return
