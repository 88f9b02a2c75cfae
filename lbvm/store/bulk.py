"""Bulk writes of a DataFrame in the caller's transaction.

PostgreSQL with psycopg: COPY (CSV written by pandas, no Python loop per row). SQLite: one
executemany on the driver cursor. Anything else: SQLAlchemy executemany.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine


def is_psycopg(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


_is_psycopg = is_psycopg


def _py_list(col: pd.Series) -> list[object]:
    """A column as Python values, None where missing (numpy's tolist: no per-value work
    in Python but for the missing ones)."""
    missing = col.isna().to_numpy()
    kind = col.dtype.kind
    if kind in "iu":  # numpy or nullable integers
        values = col.to_numpy(dtype=np.int64, na_value=0).tolist()
    elif kind == "f":
        values = col.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
    elif kind == "b" and not missing.any():
        values = col.to_numpy(dtype=bool).tolist()
    else:
        values = col.to_numpy(dtype=object).tolist()
    for i in np.flatnonzero(missing).tolist():
        values[i] = None
    return values


def _py_columns(frame: pd.DataFrame) -> list[list[object]]:
    """Each column as a list of Python values with None for missing ones."""
    return [_py_list(frame[name]) for name in frame.columns]


def copy_text(conn: Connection, table: sa.Table, columns: Sequence[str], text: str) -> None:
    """PostgreSQL COPY of CSV ``text`` (NULL: empty unquoted) into ``columns``."""
    quoted = ", ".join(f'"{c}"' for c in columns)
    raw = conn.connection.driver_connection
    sql = f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT csv)'
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        copy.write(text)


def insert_frame(conn: Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of ``frame`` (its columns name the table's columns); return count."""
    if frame.empty:
        return 0
    cols = [str(c) for c in frame.columns]
    if _is_psycopg(conn):
        buf = io.StringIO()
        frame.to_csv(buf, index=False, header=False, na_rep="")
        quoted = ", ".join(f'"{c}"' for c in cols)
        raw = conn.connection.driver_connection
        sql = f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT csv)'
        with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
            copy.write(buf.getvalue())
        return len(frame)
    insert_rows(conn, table, cols, list(zip(*_py_columns(frame), strict=True)), len(frame))
    return len(frame)


def py_values(values: np.ndarray, known: np.ndarray) -> list[object]:
    """``values`` as Python values, None where not ``known``."""
    out = values.tolist()
    for i in np.flatnonzero(~known).tolist():
        out[i] = None
    return out


def insert_rows(
    conn: Connection, table: sa.Table, names: Sequence[str], rows: list[tuple[object, ...]],
    step: int,
) -> None:
    """Insert ``rows`` (tuples in the order of ``names``; None: NULL), ``step`` rows per
    executemany: SQLite through its driver cursor, anything else through SQLAlchemy."""
    for at in range(0, len(rows), step):
        part = rows[at : at + step]
        if conn.dialect.name == "sqlite":
            marks = ", ".join("?" for _ in names)
            quoted = ", ".join(f'"{c}"' for c in names)
            conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', part)
        else:
            conn.execute(table.insert(), [dict(zip(names, r, strict=True)) for r in part])


def temp_table(conn: Connection, name: str, *columns: sa.Column) -> sa.Table:
    """A fresh temporary table visible to this connection only; drop it when done."""
    table = sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])
    schema = "pg_temp" if conn.dialect.name == "postgresql" else "temp"
    conn.exec_driver_sql(f'DROP TABLE IF EXISTS {schema}."{name}"')
    table.create(conn)
    return table


def analyze(conn: Connection, table: sa.Table) -> None:
    """Give PostgreSQL's planner row counts for a fresh temp table (it never auto-analyzes
    them, and guesses badly for joins against big tables)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f'ANALYZE "{table.name}"')


# -- PostgreSQL binary COPY, built with numpy -------------------------------------------
_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"  # a field count of -1
_BIG = {"int4": ">i4", "int8": ">i8", "float8": ">f8"}


@dataclass(frozen=True)
class Text:
    """A text column: row i is ``blob[start[i] : start[i] + size[i]]`` (UTF-8)."""

    blob: np.ndarray
    start: np.ndarray
    size: np.ndarray

    @staticmethod
    def of(values: Sequence[str]) -> Text:
        encoded = [v.encode() for v in values]
        size = np.fromiter(map(len, encoded), dtype=np.int64, count=len(values))
        blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return Text(blob, np.cumsum(size) - size, size)


@dataclass(frozen=True)
class Records:
    """Rows in PostgreSQL's binary COPY format (see binary_records), ready to send."""

    names: tuple[str, ...]
    parts: tuple[bytes, ...]
    rows: int


def binary_copy(
    conn: Connection, table: sa.Table, columns: Sequence[tuple[str, str, object, np.ndarray]]
) -> int:
    """COPY rows into ``table`` in PostgreSQL's binary format: no text to format or parse.
    See binary_records for ``columns``."""
    return copy_records(conn, table, binary_records(columns))


def copy_records(conn: Connection, table: sa.Table, records: Records) -> int:
    """COPY ``records`` into ``table`` (psycopg)."""
    if not records.rows:
        return 0
    quoted = ", ".join(f'"{name}"' for name in records.names)
    raw_conn = conn.connection.driver_connection
    sql = f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT binary)'
    with raw_conn.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        copy.write(_HEADER)
        for part in records.parts:
            copy.write(part)
        copy.write(_TRAILER)
    return records.rows


def binary_records(columns: Sequence[tuple[str, str, object, np.ndarray]]) -> Records:
    """Rows in PostgreSQL's binary COPY format, laid out with numpy.

    ``columns``: (name, type, values, known) with type text (values: a Text or a list of
    str), int4, int8 or float8 (values: a numpy array); ``known`` False writes NULL.
    Rows of one layout (the same text lengths and NULLs) are one numpy record array,
    whose bytes are the COPY's rows as they are; rows go grouped by layout, each group
    in the given order.
    """
    n = len(columns[0][3])
    names = tuple(c[0] for c in columns)
    if n == 0:
        return Records(names, (), 0)
    cols: list[tuple[str, Any, np.ndarray]] = []
    for name, kind, values, known in columns:
        if kind == "text":
            if not known.all():
                raise ValueError(f"binary_copy: text column {name!r} has NULLs")
            text = values if isinstance(values, Text) else Text.of(values)  # type: ignore[arg-type]
            cols.append((kind, text, text.size))
        else:
            cols.append((kind, np.asarray(values), np.asarray(known, dtype=bool)))
    layout = np.zeros(n, dtype=np.int64)
    for _, _, shape in cols:  # text: its length; else 0/1 for NULL/known
        span = int(shape.max()) + 1
        if (int(layout.max()) + 1) * span >= 2**62:  # renumber before it could overflow
            layout = np.unique(layout, return_inverse=True)[1].astype(np.int64)
        layout = layout * span + shape
    kinds, group = np.unique(layout, return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(len(kinds) + 1))
    parts = tuple(
        _records(cols, order[bounds[g] : bounds[g + 1]]).tobytes() for g in range(len(kinds))
    )
    return Records(names, parts, n)


def _records(cols: list[tuple[str, Any, np.ndarray]], rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` (all of one layout) as a packed record array in COPY's layout: a
    field count, then per field its length (-1: NULL) and its big-endian data."""
    first = rows[0]
    fields: list[Any] = [("n", ">i2")]
    for j, (kind, _, shape) in enumerate(cols):
        fields.append((f"l{j}", ">i4"))
        if kind == "text":
            fields.append((f"v{j}", "u1", (int(shape[first]),)))
        elif shape[first]:
            fields.append((f"v{j}", _BIG[kind]))
    rec = np.empty(len(rows), dtype=np.dtype(fields))
    rec["n"] = len(cols)
    for j, (kind, values, shape) in enumerate(cols):
        if kind == "text":
            size = int(shape[first])
            rec[f"l{j}"] = size
            rec[f"v{j}"] = values.blob[values.start[rows][:, None] + np.arange(size)]
        elif shape[first]:
            rec[f"l{j}"] = np.dtype(_BIG[kind]).itemsize
            rec[f"v{j}"] = values[rows]
        else:
            rec[f"l{j}"] = -1
    return rec
