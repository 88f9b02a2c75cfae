"""Store one batch of samples of a kind of series (VEs or nodes): drop duplicates, derive
CPU rates against each series' previous sample, insert.

An ingest run keeps the newest stored sample of every series it has met (``Latest``), so
the database is asked about a series once per run, not once per batch. A series whose
batch rows all come after its newest stored sample (the normal case: files arrive in time
order) needs nothing more: no stored duplicate is possible and the predecessor is known.
A series with a row at or before its newest stored sample (a late file, a re-delivered
sample) takes the general path: index seeks for stored duplicates and the predecessor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lbvm.store import bulk
from lbvm.store.rates import counter_rate


@dataclass(frozen=True)
class Kind:
    """What differs between VE and node series."""

    table: sa.Table
    key: str  # the series column: ve | node
    counter: str  # the cumulative CPU counter
    hz: str  # its unit per second (a frame column; not stored for nodes)
    monotone: str  # a value that only goes down on a restart (uptime, idle time)
    same: str | None  # a column whose change breaks the series (the counter's unit)
    cached: dict[str, str]  # stored columns kept per series -> pandas dtype


# Newest stored sample of each series in ``tmp``, by index seeks on (series, ts).
_LATEST = """
SELECT t.k, s.ts, {cols} FROM {tmp} t CROSS JOIN {table} s
WHERE s.{key} = t.k AND s.ts = (SELECT max(p.ts) FROM {table} p WHERE p.{key} = t.k)
"""
_LATEST_PG = """
SELECT t.k, s.* FROM {tmp} t CROSS JOIN LATERAL (
  SELECT p.ts, {pcols} FROM {table} p WHERE p.{key} = t.k ORDER BY p.ts DESC LIMIT 1) s
"""
# Stored predecessor of each series strictly before its first batch sample, and stored
# samples inside the batch's span (the general path; see the module docstring).
_PREVIOUS = """
SELECT t.k, s.ts, {cols} FROM {tmp} t CROSS JOIN {table} s
WHERE s.{key} = t.k AND s.ts = (
  SELECT p.ts FROM {table} p WHERE p.{key} = t.k AND p.ts < t.first_ts
  ORDER BY p.ts DESC LIMIT 1)
"""
_PREVIOUS_PG = """
SELECT t.k, s.* FROM {tmp} t CROSS JOIN LATERAL (
  SELECT p.ts, {pcols} FROM {table} p WHERE p.{key} = t.k AND p.ts < t.first_ts
  ORDER BY p.ts DESC LIMIT 1) s
"""
_STORED = """
SELECT t.k, s.ts FROM {tmp} t CROSS JOIN {table} s
WHERE s.{key} = t.k AND s.ts >= t.first_ts AND s.ts <= t.last_ts
"""
# OFFSET 0 keeps PostgreSQL from flattening the subquery into a hash join over the table.
_STORED_PG = """
SELECT t.k, s.ts FROM {tmp} t CROSS JOIN LATERAL (
  SELECT p.ts FROM {table} p
  WHERE p.{key} = t.k AND p.ts >= t.first_ts AND p.ts <= t.last_ts OFFSET 0) s
"""


class Latest:
    """Newest stored sample per series, met during one ingest run. ts NaN: none stored."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.frame = _typed(pd.DataFrame(columns=["ts", *kind.cached]), kind, index=True)

    def load(self, conn: Connection, keys: pd.Index) -> None:
        """Ask the store about ``keys`` not met yet."""
        unknown = keys.difference(self.frame.index)
        if not len(unknown):
            return
        found = _query(conn, self.kind, _LATEST, _LATEST_PG, pd.DataFrame({"k": unknown}))
        found = found.set_index(self.kind.key).reindex(unknown)
        found.index.name = None
        self.frame = pd.concat([self.frame, found]) if len(self.frame) else found

    def update(self, newest: pd.DataFrame, forget: pd.Index) -> None:
        """After a commit: ``newest`` (indexed by key) replaces its series; ``forget`` is
        dropped (asked again when met again)."""
        frame = self.frame.drop(index=forget.intersection(self.frame.index))
        if len(newest):
            frame = frame.drop(index=newest.index.intersection(frame.index))
            frame = pd.concat([frame, newest[frame.columns]]) if len(frame) else newest
        self.frame = frame


def _typed(frame: pd.DataFrame, kind: Kind, *, index: bool = False) -> pd.DataFrame:
    frame = frame.astype({"ts": "float64", **kind.cached})
    if index:
        frame.index = pd.Index([], dtype=object)
    return frame


def _query(conn: Connection, kind: Kind, sql: str, sql_pg: str, keys: pd.DataFrame,
           cols: bool = True) -> pd.DataFrame:  # fmt: skip
    """Run a per-series seek query with ``keys`` (column k, maybe first_ts/last_ts) in a
    temp table; returns key, ts and (``cols``) the cached columns, typed."""
    columns = [sa.Column("k", sa.String(255), primary_key=True)]
    columns += [sa.Column(c, sa.Float) for c in keys.columns if c != "k"]
    tmp = bulk.temp_table(conn, "lbvm_tmp_keys", *columns)
    bulk.insert_frame(conn, tmp, keys)
    bulk.analyze(conn, tmp)
    names = list(kind.cached) if cols else []
    template = sql_pg if conn.dialect.name == "postgresql" else sql
    text = template.format(
        key=kind.key,
        table=kind.table.name,
        tmp=tmp.name,
        cols=", ".join(f"s.{c}" for c in names) or "1",
        pcols=", ".join(f"p.{c}" for c in names) or "1",
    )
    rows = conn.exec_driver_sql(text).all()
    tmp.drop(conn)
    width = 2 + len(names)
    values = list(zip(*rows, strict=True)) if rows else [()] * width
    data: dict[str, object] = {kind.key: pd.Series(list(values[0]), dtype=object)}
    data["ts"] = np.array(values[1], dtype=np.float64)
    for name, column in zip(names, values[2:], strict=True):
        data[name] = pd.Series(list(column), dtype=kind.cached[name])
    return pd.DataFrame(data)


@dataclass(frozen=True)
class Stored:
    """What storing a batch did: rows inserted (with cpu_used), duplicates dropped, the
    newest inserted row per fast-path series, and the series that took the general path."""

    rows: pd.DataFrame
    duplicates: int
    newest: pd.DataFrame
    general: pd.Index


def _rates(kind: Kind, new: pd.DataFrame, prev: pd.DataFrame) -> np.ndarray:
    """cpu_used of ``new``'s rows, ``prev`` holding each series' stored predecessor."""
    both = pd.concat([new, prev], ignore_index=True) if len(prev) else new
    rate = counter_rate(
        both[kind.key].to_numpy(dtype=object),
        both["ts"].to_numpy(dtype=np.float64),
        both[kind.counter],
        both[kind.hz].to_numpy(dtype=np.float64, na_value=np.nan),
        monotone=(both[kind.monotone],),
        same=None if kind.same is None else both[kind.same],
    )
    return rate[: len(new)]


def prepare(conn: Connection, kind: Kind, frame: pd.DataFrame, latest: Latest) -> Stored:
    """Drop duplicates and add cpu_used to ``frame``'s rows (inserting is the caller's)."""
    key = kind.key
    repeated = frame.duplicated([key, "ts"], keep="first").to_numpy()
    frame = frame.loc[~repeated]
    dups = int(repeated.sum())
    if frame.empty:
        return Stored(frame.assign(cpu_used=np.float64(0)), dups, frame, pd.Index([]))
    keys = pd.Index(frame[key].unique(), dtype=object)
    latest.load(conn, keys)
    known = latest.frame.loc[keys]
    first = frame.groupby(key, sort=False)["ts"].min().reindex(keys)
    late_keys = keys[(first.to_numpy() <= known["ts"].to_numpy())]  # NaN: False
    is_late = frame[key].isin(late_keys).to_numpy()
    fast = frame.loc[~is_late]
    parts = []
    if len(fast):
        prev = known.loc[known["ts"].notna()].drop(index=late_keys, errors="ignore")
        prev = prev.rename_axis(key).reset_index()
        parts.append(fast.assign(cpu_used=_rates(kind, fast, prev)))
    if len(late_keys):
        general, more = _general(conn, kind, frame.loc[is_late])
        parts.append(general)
        dups += more
    rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    fast_rows = rows.loc[~rows[key].isin(late_keys)]
    newest = fast_rows.sort_values("ts", kind="stable").groupby(key, sort=False).last()
    newest = newest[["ts", *kind.cached]].astype({"ts": "float64", **kind.cached})
    newest.index = pd.Index(newest.index, dtype=object)
    return Stored(rows, dups, newest, late_keys)


def _general(conn: Connection, kind: Kind, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Late rows: drop those already stored, rate against the stored predecessor."""
    key = kind.key
    span = frame.groupby(key, sort=False)["ts"].agg(first_ts="min", last_ts="max")
    keys = span.rename_axis("k").reset_index()
    stored = _query(conn, kind, _STORED, _STORED_PG, keys, cols=False)
    if len(stored):
        index = pd.MultiIndex.from_frame(frame[[key, "ts"]].astype({key: object}))
        there = index.isin(pd.MultiIndex.from_frame(stored[[key, "ts"]]))
        frame = frame.loc[~there]
    else:
        there = np.zeros(0, dtype=bool)
    prev = _query(conn, kind, _PREVIOUS, _PREVIOUS_PG, keys)
    return frame.assign(cpu_used=_rates(kind, frame, prev)), int(there.sum())
