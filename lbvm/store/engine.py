"""Open the store: one SQLAlchemy engine, tables created on first use.

SQLite gets WAL (readers never block the ingest), a busy timeout (the CLI and the monitor
may write at the same time), synchronous=NORMAL (safe with WAL) and foreign keys.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine, make_url

from lbvm.errors import StoreError
from lbvm.store.schema import metadata

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_S = 10
CACHE_KIB = 64 * 1024


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparsable database URL>"


def _one_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself: see _sqlite_begin
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA cache_size=-{CACHE_KIB}")  # the (ve, ts) index outgrows 2 MB fast
    finally:
        cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    """Start real transactions; writers pass execution_options(sqlite_begin="IMMEDIATE") to
    take the write lock up front (a deferred reader turning writer can fail at once)."""
    mode = conn.get_execution_options().get("sqlite_begin", "")
    if mode not in ("", "DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise StoreError(f"sqlite_begin={mode!r}: use DEFERRED, IMMEDIATE or EXCLUSIVE")
    conn.exec_driver_sql(f"BEGIN {mode}".strip())


def connect(url: str, *, create: bool = True) -> Engine:
    """Return an engine for ``url`` with the tables created (idempotent).

    Raises StoreError with one line (password masked) when the URL is bad or the
    database cannot be reached.
    """
    shown = safe_url(url)
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise StoreError(f"{shown}: not a database URL such as sqlite:///lbvm.db") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
        raise StoreError(f"{shown}: {_one_line(error)}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    try:
        if create:
            metadata.create_all(engine)
        else:
            with engine.connect():
                pass
    except exc.SQLAlchemyError as error:
        engine.dispose()
        raise StoreError(f"cannot open the store {shown}: {_one_line(error)}") from None
    log.debug("store open: %s", shown)
    return engine
