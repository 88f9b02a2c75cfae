"""Bulk writes of a DataFrame in the caller's transaction.

PostgreSQL with psycopg: COPY (CSV written by pandas, no Python loop per row). SQLite: one
executemany on the driver cursor. Anything else: SQLAlchemy executemany.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

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
    rows = list(zip(*_py_columns(frame), strict=True))
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in cols)
        names = ", ".join(f'"{c}"' for c in cols)
        conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})', rows)
    else:
        conn.execute(table.insert(), [dict(zip(cols, r, strict=True)) for r in rows])
    return len(frame)


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
_WIDTH = {"int4": 4, "int8": 8, "float8": 8}
_BIG = {"int4": ">i4", "int8": ">i8", "float8": ">f8"}


def _text_bytes(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes of all ``values`` end to end, and each one's length in bytes."""
    joined = "".join(values)
    if joined.isascii():
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        return np.frombuffer(joined.encode("ascii"), dtype=np.uint8), lengths
    encoded = [v.encode() for v in values]
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(values))
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), lengths


def binary_copy(
    conn: Connection, table: sa.Table, columns: Sequence[tuple[str, str, object, np.ndarray]]
) -> int:
    """COPY rows into ``table`` in PostgreSQL's binary format: no text to format or parse.

    ``columns``: (name, type, values, known) with type text (values: a list of str),
    int4, int8 or float8 (values: a numpy array); ``known`` False writes NULL. The rows'
    bytes are laid out with numpy: per field a 4-byte length (-1 for NULL) and its data.
    """
    n = len(columns[0][3])
    if n == 0:
        return 0
    lengths = np.empty((n, len(columns)), dtype=np.int64)
    texts = {}
    for j, (name, kind, values, known) in enumerate(columns):
        if kind == "text":
            if not known.all():
                raise ValueError(f"binary_copy: text column {name!r} has NULLs")
            data, size = _text_bytes(values)  # type: ignore[arg-type]
            texts[name] = data, size
            lengths[:, j] = 4 + size
        else:
            lengths[:, j] = np.where(known, 4 + _WIDTH[kind], 4)
    row_len = 2 + lengths.sum(axis=1)
    row_start = np.concatenate(([len(_HEADER)], len(_HEADER) + np.cumsum(row_len)[:-1]))
    field_start = row_start[:, None] + 2 + np.cumsum(lengths, axis=1) - lengths
    buf = np.zeros(len(_HEADER) + int(row_len.sum()) + 2, dtype=np.uint8)
    buf[: len(_HEADER)] = np.frombuffer(_HEADER, dtype=np.uint8)
    _scatter(buf, row_start, np.full(n, len(columns), dtype=">i2"))
    for j, (name, kind, values, known) in enumerate(columns):
        at = field_start[:, j]
        if kind == "text":
            data, size = texts[name]
            _scatter(buf, at, size.astype(">i4"))
            starts = np.repeat(at + 4 - (np.cumsum(size) - size), size)
            buf[starts + np.arange(len(data))] = data
        else:
            _scatter(buf, at, np.where(known, _WIDTH[kind], -1).astype(">i4"))
            raw = np.asarray(values).astype(_BIG[kind])
            _scatter(buf, at[known] + 4, raw[known])
    buf[-2:] = 255  # the trailer: a field count of -1
    quoted = ", ".join(f'"{c[0]}"' for c in columns)
    raw_conn = conn.connection.driver_connection
    sql = f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT binary)'
    with raw_conn.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        copy.write(buf.tobytes())
    return n


def _scatter(buf: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    """Write each of ``values`` (big-endian, fixed width) at its byte offset in ``at``."""
    width = values.dtype.itemsize
    data = np.ascontiguousarray(values).view(np.uint8).reshape(-1, width)
    buf[at[:, None] + np.arange(width)] = data
