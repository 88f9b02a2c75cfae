"""Load spool files into the store exactly once, a batch of files per transaction.

For each batch: skip files the ledger (spool_files) already has, read and check the rest,
build one DataFrame of VE rows and one of node rows, drop duplicate samples, derive CPU rates
against the latest stored sample of each VE and node, then in one transaction bulk-insert
samples, ledger rows and events and upsert the nodes and ves tables. Only after the commit
are files moved to ``done/<node>/`` (or ``quarantine/<node>/``): a crash in between leaves
them in incoming/, and the next run finds them in the ledger and only moves them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from lblog.errors import LbvmError
from lbvm.errors import StoreError
from lbvm.store import bulk, spoolread
from lbvm.store.events import Event, record_events
from lbvm.store.rates import counter_rate
from lbvm.store.schema import node_samples, spool_files, ve_samples
from lbvm.store.spoolread import SpoolFile

log = logging.getLogger(__name__)

VE_INSERT = (
    "ve", "node", "ts", "cpu_raw", "cpu_hz", "cpu_used", "uptime", "mem_bytes",
    "mem_limit_bytes", "swap_bytes", "disk_bytes", "disk_limit_bytes", "failcnt",
)  # fmt: skip
NODE_INSERT = (
    "node", "ts", "cpus", "cpu_busy_raw", "cpu_idle_raw", "cpu_used", "mem_total_bytes",
    "mem_available_bytes", "load1", "load5", "load15", "disk_total_bytes", "disk_free_bytes",
)  # fmt: skip

_UPSERT_VES = """
INSERT INTO ves (ve, node, balanced, pinned, first_seen, last_seen)
SELECT ve, node, true, false, first_seen, last_seen FROM {tmp} WHERE true
ON CONFLICT (ve) DO UPDATE SET
  node = CASE WHEN ves.last_seen IS NULL OR excluded.last_seen >= ves.last_seen
         THEN excluded.node ELSE ves.node END,
  last_seen = CASE WHEN ves.last_seen IS NULL OR excluded.last_seen > ves.last_seen
         THEN excluded.last_seen ELSE ves.last_seen END,
  first_seen = CASE WHEN ves.first_seen IS NULL OR excluded.first_seen < ves.first_seen
         THEN excluded.first_seen ELSE ves.first_seen END
"""
_UPSERT_NODES = """
INSERT INTO nodes (name, cpus, mem_bytes, disk_bytes, maintenance, last_seen)
SELECT name, cpus, mem_bytes, disk_bytes, false, last_seen FROM {tmp} WHERE true
ON CONFLICT (name) DO UPDATE SET
  cpus = COALESCE(nodes.cpus, excluded.cpus),
  mem_bytes = COALESCE(nodes.mem_bytes, excluded.mem_bytes),
  disk_bytes = COALESCE(nodes.disk_bytes, excluded.disk_bytes),
  last_seen = CASE WHEN nodes.last_seen IS NULL OR excluded.last_seen > nodes.last_seen
         THEN excluded.last_seen ELSE nodes.last_seen END
"""
# Latest stored sample of each series strictly before its first sample in the batch, and
# stored samples inside the batch's time span (possible duplicates). Both are index seeks
# on (series, ts) per series of the batch; CROSS JOIN makes SQLite loop over the small temp
# table (left to itself it may scan the samples table), PostgreSQL plans it as a join.
_PREVIOUS = """
SELECT s.{key}, s.ts, {cols} FROM {tmp} t CROSS JOIN {table} s
WHERE s.{key} = t.{tkey} AND s.ts = (
  SELECT p.ts FROM {table} p WHERE p.{key} = t.{tkey} AND p.ts < t.first_seen
  ORDER BY p.ts DESC LIMIT 1)
"""
_STORED = """
SELECT s.{key}, s.ts FROM {tmp} t CROSS JOIN {table} s
WHERE s.{key} = t.{tkey} AND s.ts >= t.first_seen AND s.ts <= t.last_seen
"""
# PostgreSQL turns those joins into hash joins over the whole samples table, so it gets
# LATERAL subqueries, which run once per temp row on the index (OFFSET 0 keeps the planner
# from flattening the second one back into a join).
_PREVIOUS_PG = """
SELECT s.* FROM {tmp} t CROSS JOIN LATERAL (
  SELECT p.{key}, p.ts, {pcols} FROM {table} p WHERE p.{key} = t.{tkey} AND p.ts < t.first_seen
  ORDER BY p.ts DESC LIMIT 1) s
"""
_STORED_PG = """
SELECT s.* FROM {tmp} t CROSS JOIN LATERAL (
  SELECT p.{key}, p.ts FROM {table} p
  WHERE p.{key} = t.{tkey} AND p.ts >= t.first_seen AND p.ts <= t.last_seen OFFSET 0) s
"""


@dataclass(frozen=True)
class IngestResult:
    files: int = 0  # files loaded by this run
    ve_rows: int = 0  # VE samples inserted
    node_rows: int = 0  # node samples inserted
    quarantined: int = 0  # files moved to quarantine/ by this run
    already: int = 0  # files the ledger already had: moved, not loaded again
    duplicates: int = 0  # samples dropped: same (ve, ts) or (node, ts) seen before
    skipped: int = 0  # symlinks and odd folder names ignored (each one is an event)

    def __add__(self, other: IngestResult) -> IngestResult:
        return IngestResult(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class _Batch:
    loaded: list[SpoolFile]
    bad: list[tuple[SpoolFile, str]]
    docs: list[dict[str, Any]]


def ingest(
    engine: Engine,
    spool: Path,
    *,
    now: float | None = None,
    batch_files: int = 500,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Load every file under ``<spool>/incoming/<node>/``; see the module docstring.

    ``now`` stamps the ledger rows and events (default: the clock). ``progress`` is called
    with the number of files handled after each batch. Raises StoreError when a batch cannot
    be written (that batch is rolled back and its files stay in incoming/).
    """
    if batch_files < 1:
        raise StoreError(f"batch_files must be at least 1, not {batch_files}")
    spool = Path(spool)
    found = spoolread.scan(spool)
    result = IngestResult(skipped=len(found.skipped))
    made: set[Path] = set()  # done/ and quarantine/ folders known to exist
    if found.skipped:
        for why in found.skipped:
            log.warning("%s", why)
        stamp = time.time() if now is None else now
        with engine.begin() as conn:
            record_events(conn, [Event("warning", "spool", None, w, stamp) for w in found.skipped])
    for start in range(0, len(found.files), batch_files):
        chunk = found.files[start : start + batch_files]
        result = result + _ingest_batch(engine, spool, chunk, now, made)
        if progress is not None:
            progress(len(chunk))
    log.info(
        "ingested %d files (%d VE rows), %d quarantined, %d already loaded",
        result.files, result.ve_rows, result.quarantined, result.already,
    )  # fmt: skip
    return result


def _ledger(engine: Engine, chunk: Sequence[SpoolFile]) -> dict[tuple[str, str], str]:
    """(node, name) -> status of the chunk's files already in the ledger."""
    cols = (spool_files.c.node, spool_files.c.name, spool_files.c.status)
    wanted = {(f.node, f.name) for f in chunk}
    out: dict[tuple[str, str], str] = {}
    with engine.connect() as conn:
        for first in range(0, len(chunk), 1000):  # stay far below bind-parameter limits
            part = chunk[first : first + 1000]
            # Two IN lists let both databases seek the (node, name) unique index.
            query = sa.select(*cols).where(
                spool_files.c.node.in_({f.node for f in part}),
                spool_files.c.name.in_([f.name for f in part]),
            )
            for r in conn.execute(query):
                if (r.node, r.name) in wanted:
                    out[(r.node, r.name)] = r.status
    return out


def _read(todo: Sequence[SpoolFile]) -> _Batch:
    loaded: list[SpoolFile] = []
    bad: list[tuple[SpoolFile, str]] = []
    docs: list[dict[str, Any]] = []
    for f in todo:
        try:
            docs.append(spoolread.read(f))
            loaded.append(f)
        except FileNotFoundError:
            log.info("%s vanished before it was read (another ingest?)", f.path)
        except LbvmError as error:
            bad.append((f, str(error)))
        except OSError as error:
            bad.append((f, f"{f.path}: cannot read ({error.strerror or error})"))
    return _Batch(loaded, bad, docs)


def _ingest_batch(
    engine: Engine, spool: Path, chunk: Sequence[SpoolFile], now: float | None, made: set[Path]
) -> IngestResult:
    try:
        ledger = _ledger(engine, chunk)
    except exc.SQLAlchemyError as error:
        raise StoreError(f"cannot read the spool ledger: {_one_line(error)}") from None
    already = [f for f in chunk if (f.node, f.name) in ledger]
    batch = _read([f for f in chunk if (f.node, f.name) not in ledger])
    ves, rejected = spoolread.ve_frame(batch.docs, list(range(len(batch.docs))))
    keep = [i for i in range(len(batch.docs)) if i not in rejected]
    loaded = [batch.loaded[i] for i in keep]
    bad = batch.bad + [(batch.loaded[i], why) for i, why in rejected.items()]
    nodes = spoolread.node_frame([batch.docs[i] for i in keep])
    stamp = time.time() if now is None else now
    ledger_rows = pd.DataFrame(
        {
            "node": [f.node for f in loaded] + [f.node for f, _ in bad],
            "name": [f.name for f in loaded] + [f.name for f, _ in bad],
            "sample_time": [float(batch.docs[i]["time"]) for i in keep] + [None] * len(bad),
            "ingested_at": stamp,
            "rows": [len(batch.docs[i]["rows"]) for i in keep] + [0] * len(bad),
            "status": ["ingested"] * len(loaded) + ["quarantined"] * len(bad),
            "reason": [None] * len(loaded) + [why for _, why in bad],
        }
    )
    quarantine_events = [
        Event("error", "quarantine", f"{f.node}/{f.name}", why, stamp) for f, why in bad
    ]
    dbapi_error: Any = getattr(engine.dialect.dbapi, "Error", exc.SQLAlchemyError)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                ve_rows, ve_dups = _store_ves(conn, ves)
                node_rows, node_dups = _store_nodes(conn, nodes)
                bulk.insert_frame(conn, spool_files, ledger_rows)
                record_events(conn, quarantine_events)
    except (exc.SQLAlchemyError, dbapi_error) as error:
        raise StoreError(
            f"ingest of a batch of {len(chunk)} files (first {chunk[0].path}) failed, "
            f"nothing of that batch was written: {_one_line(error)}"
        ) from None
    for _, why in bad:
        log.error("quarantined %s", why)
    done = [*loaded, *(f for f in already if ledger[(f.node, f.name)] == "ingested")]
    _move(done, spool / "done", made)
    bad_files = [f for f, _ in bad] + [f for f in already if ledger[(f.node, f.name)] != "ingested"]
    _move(bad_files, spool / "quarantine", made)
    return IngestResult(
        files=len(loaded),
        ve_rows=ve_rows,
        node_rows=node_rows,
        quarantined=len(bad),
        already=len(already),
        duplicates=ve_dups + node_dups,
    )


def _one_line(error: BaseException) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _move(files: Sequence[SpoolFile], where: Path, made: set[Path]) -> None:
    """Move files to ``where/<node>/`` (after the commit: the ledger already has them)."""
    for f in files:
        target = where / f.node
        if target not in made:
            target.mkdir(parents=True, exist_ok=True)
            made.add(target)
        try:
            os.replace(f.path, target / f.name)
        except FileNotFoundError:
            log.info("%s already moved", f.path)
        except OSError as error:  # the ledger has it: the next run moves it again
            log.warning("cannot move %s to %s: %s", f.path, target, error)


def _drop_known(
    conn: Connection, frame: pd.DataFrame, key: str, table: sa.Table, tmp: sa.Table, tkey: str
) -> tuple[pd.DataFrame, int]:
    """Drop rows repeating a (key, ts) earlier in the frame or already stored."""
    repeated = frame.duplicated([key, "ts"], keep="first").to_numpy(copy=True)
    template = _STORED_PG if conn.dialect.name == "postgresql" else _STORED
    sql = template.format(key=key, tkey=tkey, table=table.name, tmp=tmp.name)
    stored = pd.DataFrame(conn.exec_driver_sql(sql).all(), columns=[key, "ts"])
    if len(stored):
        index = pd.MultiIndex.from_frame(frame[[key, "ts"]].astype({key: object}))
        known = pd.MultiIndex.from_frame(stored.astype({key: object}))
        repeated = repeated | index.isin(known)
    return frame.loc[~repeated].reset_index(drop=True), int(repeated.sum())


def _previous(
    conn: Connection, key: str, table: sa.Table, tmp: sa.Table, tkey: str, cols: dict[str, str]
) -> pd.DataFrame:
    """The stored predecessor of each series in ``tmp``, columns typed as ``cols`` says."""
    template = _PREVIOUS_PG if conn.dialect.name == "postgresql" else _PREVIOUS
    sql = template.format(
        key=key,
        tkey=tkey,
        table=table.name,
        tmp=tmp.name,
        cols=", ".join(f"s.{c}" for c in cols),
        pcols=", ".join(f"p.{c}" for c in cols),
    )
    rows = conn.exec_driver_sql(sql).all()
    values = list(zip(*rows, strict=True)) if rows else [()] * (len(cols) + 2)
    data: dict[str, Any] = {key: list(values[0]), "ts": np.array(values[1], dtype=np.float64)}
    for (name, dtype), column in zip(cols.items(), values[2:], strict=True):
        data[name] = pd.Series(list(column), dtype=dtype)
    return pd.DataFrame(data)


def _rates(
    new: pd.DataFrame,
    prev: pd.DataFrame,
    key: str,
    counter: str,
    hz: str,
    monotone: str,
    same: str | None = None,
) -> np.ndarray:
    """cpu_used for the rows of ``new``, with ``prev`` as each series' stored predecessor."""
    both = pd.concat([new, prev], ignore_index=True) if len(prev) else new
    rate = counter_rate(
        both[key].to_numpy(dtype=object),
        both["ts"].to_numpy(dtype=np.float64),
        both[counter],
        both[hz].to_numpy(dtype=np.float64, na_value=np.nan),
        monotone=(both[monotone],),
        same=None if same is None else both[same],
    )
    return rate[: len(new)]


def _store_ves(conn: Connection, frame: pd.DataFrame) -> tuple[int, int]:
    if frame.empty:
        return 0, 0
    ordered = frame.sort_values("ts", kind="stable")
    summary = ordered.groupby("ve", sort=False).agg(
        node=("node", "last"), first_seen=("ts", "min"), last_seen=("ts", "max")
    )
    tmp = bulk.temp_table(
        conn,
        "lbvm_tmp_ves",
        sa.Column("ve", sa.String(255), primary_key=True),
        sa.Column("node", sa.String(253)),
        sa.Column("first_seen", sa.Float),
        sa.Column("last_seen", sa.Float),
    )
    bulk.insert_frame(conn, tmp, summary.reset_index())
    bulk.analyze(conn, tmp)
    frame, dups = _drop_known(conn, frame, "ve", ve_samples, tmp, "ve")
    types = {"cpu_raw": "Int64", "cpu_hz": "Int64", "uptime": "Float64"}
    prev = _previous(conn, "ve", ve_samples, tmp, "ve", types)
    rate = _rates(frame, prev, "ve", "cpu_raw", hz="cpu_hz", monotone="uptime", same="cpu_hz")
    new = frame.assign(cpu_used=rate)
    count = bulk.insert_frame(conn, ve_samples, new[list(VE_INSERT)])
    conn.exec_driver_sql(_UPSERT_VES.format(tmp=tmp.name))
    tmp.drop(conn)
    return count, dups


def _store_nodes(conn: Connection, frame: pd.DataFrame) -> tuple[int, int]:
    if frame.empty:
        return 0, 0
    ordered = frame.sort_values("ts", kind="stable")
    summary = ordered.groupby("node", sort=False).agg(
        first_seen=("ts", "min"),
        last_seen=("ts", "max"),
        cpus=("cpus", "last"),
        mem_bytes=("mem_total_bytes", "last"),
        disk_bytes=("disk_total_bytes", "last"),
    )
    tmp = bulk.temp_table(
        conn,
        "lbvm_tmp_nodes",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("first_seen", sa.Float),
        sa.Column("last_seen", sa.Float),
        sa.Column("cpus", sa.Float),
        sa.Column("mem_bytes", sa.BigInteger),
        sa.Column("disk_bytes", sa.BigInteger),
    )
    bulk.insert_frame(conn, tmp, summary.rename_axis("name").reset_index())
    frame, dups = _drop_known(conn, frame, "node", node_samples, tmp, "name")
    prev = _previous(
        conn, "node", node_samples, tmp, "name", {"cpu_busy_raw": "Int64", "cpu_idle_raw": "Int64"}
    )
    rate = _rates(frame, prev, "node", "cpu_busy_raw", hz="jiffies_hz", monotone="cpu_idle_raw")
    new = frame.assign(cpu_used=rate)
    count = bulk.insert_frame(conn, node_samples, new[list(NODE_INSERT)])
    conn.exec_driver_sql(_UPSERT_NODES.format(tmp=tmp.name))
    tmp.drop(conn)
    return count, dups
