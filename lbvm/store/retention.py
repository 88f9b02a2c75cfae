"""Retention: raw samples for ``raw_days``, hourly rollups for ``rollup_days``.

``run`` first builds the rollups of every complete hour not rolled up yet (from a
watermark kept in store_marks, a few hours per transaction, so a killed run resumes where
it stopped), and rebuilds hours that received late files since the last run (the ledger
says which: their ingested_at is newer). Samples of late files older than the raw
samples kept are merged into their hours' rollups (rollup.merge) and their raw rows go in
the same transaction, so they are merged once. Only then does it delete raw samples, and
never past the watermark: no raw hour goes before its rollup exists. Running it twice
changes nothing the second time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from lbvm.errors import StoreError
from lbvm.store import bulk, rollup
from lbvm.store.events import record_event
from lbvm.store.rollup import HOUR
from lbvm.store.schema import (
    ingest_runs,
    node_rollups,
    node_samples,
    spool_files,
    store_marks,
    ve_rollups,
    ve_samples,
)

log = logging.getLogger(__name__)

RAW_DAYS = 14.0  # [store] raw_days
ROLLUP_DAYS = 365.0  # [store] rollup_days
DAY = 86400.0
CHUNK_HOURS = 6  # hours rolled up per transaction
LATE_MARGIN = 600.0  # a file committed while the last run read counts as late
WATERMARK = "rollup_watermark"  # every hour before this has its rollup
BUILT_AT = "rollup_built_at"  # when the last run started
RAW_FROM = "raw_complete_from"  # raw samples before this are deleted
KEYS_PER_QUERY = 500  # series named in one IN list
MERGED = "merged into hourly rollups"  # spool_files.reason of late files merged (kept longer)


@dataclass(frozen=True)
class RetentionResult:
    hours: int = 0  # hours rolled up (or rebuilt)
    ve_rollups: int = 0  # rows written
    node_rollups: int = 0
    raw_deleted: int = 0  # ve_samples rows deleted
    node_raw_deleted: int = 0
    rollups_deleted: int = 0  # VE and node rollup rows past rollup_days
    ledger_deleted: int = 0  # spool_files rows of files whose samples are gone
    late_merged: int = 0  # VE and node samples older than the raw kept, merged into rollups


def marks(conn: Connection) -> dict[str, float]:
    return {r.name: float(r.value) for r in conn.execute(sa.select(store_marks))}


def _set_mark(conn: Connection, name: str, value: float) -> None:
    conn.execute(sa.delete(store_marks).where(store_marks.c.name == name))
    conn.execute(sa.insert(store_marks).values(name=name, value=value))


def run(
    engine: Engine,
    now: float,
    raw_days: float = RAW_DAYS,
    rollup_days: float = ROLLUP_DAYS,
) -> RetentionResult:
    """Roll up, then delete what is past retention; see the module docstring."""
    if not raw_days > 0 or not rollup_days >= raw_days:
        raise StoreError(
            f"retention: raw_days ({raw_days:g}) must be positive and rollup_days "
            f"({rollup_days:g}) at least as long"
        )
    complete = math.floor(now / HOUR) * HOUR  # hours before this one are over
    try:
        with engine.connect() as conn:
            known = marks(conn)
            first = _first_hour(conn) if WATERMARK not in known else known[WATERMARK]
            late = _late_hours(conn, known, first, complete)
        built = _build(engine, late, first, complete, now)
        merged = _merge_late(engine, known.get(RAW_FROM), now)
        deleted = _delete(engine, now, raw_days, rollup_days)
    except exc.SQLAlchemyError as error:
        raise StoreError(f"retention failed: {_one_line(error)}") from None
    result = RetentionResult(built[0], built[1], built[2], *deleted, late_merged=merged)
    log.info("retention: %s", result)
    return result


def _first_hour(conn: Connection) -> float:
    oldest = [
        conn.execute(sa.select(sa.func.min(t.c.ts))).scalar() for t in (ve_samples, node_samples)
    ]
    known = [float(t) for t in oldest if t is not None]
    return math.floor(min(known) / HOUR) * HOUR if known else math.inf


def _late_hours(conn: Connection, known: dict[str, float], first: float, end: float) -> list[float]:
    """Rolled-up hours that files loaded since the last run fall in (raw still complete)."""
    if BUILT_AT not in known:
        return []
    since = known[BUILT_AT] - LATE_MARGIN
    floor = max(known.get(RAW_FROM, -math.inf), -1e300)
    rows = conn.execute(
        sa.select(spool_files.c.sample_time).where(
            spool_files.c.ingested_at > since,
            spool_files.c.status == "ingested",
            spool_files.c.sample_time < min(first, end),
            spool_files.c.sample_time >= floor,
        )
    ).scalars()
    return sorted({math.floor(float(t) / HOUR) * HOUR for t in rows})


def _build(
    engine: Engine, late: list[float], first: float, end: float, now: float
) -> tuple[int, int, int]:
    """Roll up the late hours, then every hour from ``first`` to ``end``."""
    hours = ves = nodes = 0
    spans = [(h, h + HOUR, False) for h in late]
    if math.isfinite(first):
        step = CHUNK_HOURS * HOUR
        spans += [(h, min(h + step, end), True) for h in np.arange(first, end, step).tolist()]
    for start, stop, forward in spans:
        with engine.connect() as conn, conn.execution_options(sqlite_begin="IMMEDIATE").begin():
            v, n = _rollup_span(conn, start, stop)
            if forward:  # the watermark moves in the same transaction as the rollups
                _set_mark(conn, WATERMARK, stop)
        hours += round((stop - start) / HOUR)
        ves += v
        nodes += n
    with engine.begin() as conn:
        if not math.isfinite(first):
            _set_mark(conn, WATERMARK, end)  # an empty store: nothing before now to roll up
        _set_mark(conn, BUILT_AT, now)
        if late:
            record_event(conn, "info", "retention", None,
                         f"rebuilt {len(late)} hourly rollup(s) for late files", now)  # fmt: skip
    return hours, ves, nodes


def _read(conn: Connection, table: sa.Table, cols: list[str], start: float, stop: float,
          text: tuple[str, ...]) -> pd.DataFrame:  # fmt: skip
    query = sa.select(*[table.c[c] for c in cols]).where(table.c.ts >= start, table.c.ts < stop)
    rows = conn.execute(query).all()
    values = list(zip(*rows, strict=True)) if rows else [()] * len(cols)
    return pd.DataFrame(
        {
            c: (list(v) if c in text else pd.Series(list(v), dtype="float64"))
            for c, v in zip(cols, values, strict=True)
        },
        columns=cols,
    )


def _rollup_span(conn: Connection, start: float, stop: float) -> tuple[int, int]:
    """Replace the rollups of [start, stop) with ones built from the raw samples."""
    ves = rollup.ve_hours(_read(conn, ve_samples, rollup.VE_RAW, start, stop, ("ve", "node")))
    nodes = rollup.node_hours(_read(conn, node_samples, rollup.NODE_RAW, start, stop, ("node",)))
    for table, frame in ((ve_rollups, ves), (node_rollups, nodes)):
        conn.execute(sa.delete(table).where(table.c.hour >= start, table.c.hour < stop))
        if len(frame):
            for col in ("samples", "cpu_n"):
                if col in frame:
                    frame[col] = frame[col].astype(np.int64)
            bulk.insert_frame(conn, table, frame)
    return len(ves), len(nodes)


def _merge_late(engine: Engine, raw_from: float | None, now: float) -> int:
    """Merge samples older than ``raw_from`` (only late files put them there: the last run
    deleted the rest) into their hours' rollups, an hour per transaction that also deletes
    them and marks their files' ledger rows, kept until rollup_days so a file delivered
    again is known. Returns the samples merged."""
    if raw_from is None:
        return 0
    with engine.connect() as conn:
        hours = sorted(
            {math.floor(float(t) / HOUR) * HOUR for table in (ve_samples, node_samples)
             for t in conn.execute(sa.select(table.c.ts).where(table.c.ts < raw_from))
             .scalars()}
        )  # fmt: skip
    merged = 0
    for hour in hours:
        stop = min(hour + HOUR, raw_from)
        with engine.connect() as conn, conn.execution_options(sqlite_begin="IMMEDIATE").begin():
            merged += _merge_hour(conn, hour, stop)
    if hours:
        with engine.begin() as conn:
            record_event(conn, "info", "retention", None,
                         f"merged {merged} late sample(s) older than the raw samples kept "
                         f"into {len(hours)} hourly rollup(s)", now)  # fmt: skip
    return merged


def _merge_hour(conn: Connection, hour: float, stop: float) -> int:
    samples = 0
    for table, rolled, cols, key in (
        (ve_samples, ve_rollups, rollup.VE_RAW, "ve"),
        (node_samples, node_rollups, rollup.NODE_RAW, "node"),
    ):
        raw = _read(conn, table, cols, hour, stop, (key, "node"))
        if raw.empty:
            continue
        late = rollup.ve_hours(raw) if key == "ve" else rollup.node_hours(raw)
        names = list(rolled.columns.keys())
        series = late[key].unique().tolist()
        found: list[Any] = []
        for first in range(0, len(series), KEYS_PER_QUERY):  # only the rows merged into
            where = rolled.c.hour == hour, rolled.c[key].in_(series[first : first + KEYS_PER_QUERY])
            found += conn.execute(sa.select(rolled).where(*where)).all()
            conn.execute(sa.delete(rolled).where(*where))
        stored = pd.DataFrame(found, columns=names)
        frame = rollup.merge(stored.astype({c: "float64" for c in names if c not in (key, "node")}),
                             late.astype({"hour": "float64"}), key)  # fmt: skip
        for col in ("samples", "cpu_n"):
            if col in frame:
                frame[col] = frame[col].astype(np.int64)
        bulk.insert_frame(conn, rolled, frame)
        conn.execute(sa.delete(table).where(table.c.ts >= hour, table.c.ts < stop))
        samples += len(raw)
    conn.execute(
        sa.update(spool_files)
        .where(spool_files.c.sample_time >= hour, spool_files.c.sample_time < stop,
               spool_files.c.status == "ingested")
        .values(reason=MERGED)
    )  # fmt: skip
    return samples


def _delete(
    engine: Engine, now: float, raw_days: float, rollup_days: float
) -> tuple[int, int, int, int]:
    """Raw samples before the raw cutoff (never past the watermark), rollups and run rows
    before the rollup cutoff, and ledger rows of files whose samples are gone."""
    with engine.connect() as conn, conn.execution_options(sqlite_begin="IMMEDIATE").begin():
        watermark = marks(conn).get(WATERMARK, -math.inf)
        raw_cut = min(math.floor((now - raw_days * DAY) / HOUR) * HOUR, watermark)
        roll_cut = math.floor((now - rollup_days * DAY) / HOUR) * HOUR
        raw = conn.execute(sa.delete(ve_samples).where(ve_samples.c.ts < raw_cut)).rowcount
        node_raw = conn.execute(sa.delete(node_samples).where(node_samples.c.ts < raw_cut))
        merged = sa.and_(spool_files.c.reason.is_not(None), spool_files.c.reason == MERGED)
        ledger = conn.execute(
            sa.delete(spool_files).where(
                sa.or_(
                    sa.and_(spool_files.c.sample_time < raw_cut, sa.not_(merged)),
                    spool_files.c.sample_time < roll_cut,
                    sa.and_(spool_files.c.sample_time.is_(None),
                            spool_files.c.ingested_at < raw_cut),
                )
            )
        ).rowcount  # fmt: skip
        rolled = sum(
            conn.execute(sa.delete(t).where(t.c.hour < roll_cut)).rowcount
            for t in (ve_rollups, node_rollups)
        )
        conn.execute(sa.delete(ingest_runs).where(ingest_runs.c.started_at < roll_cut))
        if math.isfinite(raw_cut):
            _set_mark(conn, RAW_FROM, raw_cut)
    return raw, node_raw.rowcount, rolled, ledger


def _one_line(error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
