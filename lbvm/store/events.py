"""The event log behind `lbm log`: runs, errors, quarantined files, refusals."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lbvm.errors import StoreError
from lbvm.store.schema import events

LEVELS = ("info", "warning", "error")
EVENT_COLUMNS = ["id", "ts", "level", "kind", "subject", "message"]


@dataclass(frozen=True)
class Event:
    level: str
    kind: str
    subject: str | None
    message: str
    ts: float | None = None


def _row(ev: Event, now: float) -> dict[str, object]:
    if ev.level not in LEVELS:
        raise StoreError(f"event level {ev.level!r} is not one of {', '.join(LEVELS)}")
    return {
        "ts": now if ev.ts is None else float(ev.ts),
        "level": ev.level,
        "kind": ev.kind[:32],
        "subject": None if ev.subject is None else ev.subject[:255],
        "message": ev.message,
    }


def record_events(conn: Connection, items: Iterable[Event]) -> int:
    """Insert events in the caller's transaction; return how many."""
    now = time.time()
    rows = [_row(ev, now) for ev in items]
    if rows:
        conn.execute(events.insert(), rows)
    return len(rows)


def record_event(
    conn: Connection,
    level: str,
    kind: str,
    subject: str | None,
    message: str,
    ts: float | None = None,
) -> None:
    """Insert one event in the caller's transaction (commit is the caller's)."""
    record_events(conn, [Event(level, kind, subject, message, ts)])


def list_events(
    engine: Engine,
    *,
    since: float | None = None,
    kind: str | None = None,
    level: str | None = None,
    limit: int = 100,
) -> pd.DataFrame:
    """Newest first; columns id, ts, level, kind, subject, message."""
    query = sa.select(*[events.c[c] for c in EVENT_COLUMNS])
    if since is not None:
        query = query.where(events.c.ts >= since)
    if kind is not None:
        query = query.where(events.c.kind == kind)
    if level is not None:
        query = query.where(events.c.level == level)
    query = query.order_by(events.c.ts.desc(), events.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)
