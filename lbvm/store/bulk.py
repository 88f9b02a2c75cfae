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
