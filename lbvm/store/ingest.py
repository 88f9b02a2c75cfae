"""Load spool files into the store exactly once, a batch of files per transaction.

Worker processes (``jobs``) read and check files and turn chunks of PARSE_FILES files
into numpy columns (lbvm.store.parse); the parent concatenates a batch's chunks, derives
CPU rates on integer VE codes (lbvm.store.vecache; late files: lbvm.store.series) and
writes. Per batch, the ledger (spool_files) is read and files it already has are set
aside; then, in one transaction, the samples, ledger rows, quarantine events and HA
reports are written and VEs and nodes that are new or changed node are upserted. A writer
thread runs that transaction while the next batch is prepared (the drivers release the
GIL while the database works); a batch that needs the store's history (late files,
series not met yet in this run) waits for those writes first. Only after the commit
are files moved to ``done/<node>/`` (or ``quarantine/<node>/``): a crash in between leaves
them in incoming/, and the next run finds them in the ledger and only moves them.

``last_seen`` of VEs and nodes is written once per run, at its end, with the nodes' clock
skew. A run killed before that leaves its ingest_runs row 'running'; the next run then
rebuilds last_seen (and node) from the stored samples before loading anything.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from lbvm.errors import StoreError
from lbvm.store import bulk, skew, spoolread
from lbvm.store.events import Event, record_events
from lbvm.store.ha import ingest_ha
from lbvm.store.names import Names
from lbvm.store.parse import INT_COLUMNS, NODE_FLOAT, Parsed, merge, parse_files
from lbvm.store.schema import ingest_runs, node_samples, spool_files, ve_samples
from lbvm.store.series import Kind, Latest, Stored, prepare
from lbvm.store.spoolread import SpoolFile
from lbvm.store.vecache import Ready, Rows, VeCache

log = logging.getLogger(__name__)

BATCH_FILES = 12000  # files per transaction: six five-minute rounds of 2,000 nodes
PARSE_FILES = 2000  # files per chunk a worker parses
INSERT_ROWS = 50_000  # rows per executemany (not PostgreSQL)
POOL_MIN_FILES = 4000  # below this, starting worker processes costs more than it saves
NODE_INSERT = (
    "node", "ts", "cpus", "cpu_busy_raw", "cpu_idle_raw", "cpu_used", "mem_total_bytes",
    "mem_available_bytes", "load1", "load5", "load15", "disk_total_bytes", "disk_free_bytes",
)  # fmt: skip
VE_KIND = Kind(ve_samples, "ve", "cpu_raw", "cpu_hz", "uptime", "cpu_hz",
               {"node": "object", "cpu_raw": "Int64", "cpu_hz": "Int64", "uptime": "Float64"})
NODE_KIND = Kind(node_samples, "node", "cpu_busy_raw", "jiffies_hz", "cpu_idle_raw", None,
                 {"cpu_busy_raw": "Int64", "cpu_idle_raw": "Int64"})  # fmt: skip

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
# After a killed run: last_seen and node from the newest stored sample (index seeks).
_REPAIR_VES = """
UPDATE ves SET
  last_seen = (SELECT max(s.ts) FROM ve_samples s WHERE s.ve = ves.ve),
  node = (SELECT s.node FROM ve_samples s WHERE s.ve = ves.ve ORDER BY s.ts DESC LIMIT 1)
WHERE EXISTS (SELECT 1 FROM ve_samples s WHERE s.ve = ves.ve
              AND (ves.last_seen IS NULL OR s.ts > ves.last_seen))
"""
_REPAIR_NODES = """
UPDATE nodes SET last_seen = (SELECT max(s.ts) FROM node_samples s WHERE s.node = nodes.name)
WHERE EXISTS (SELECT 1 FROM node_samples s WHERE s.node = nodes.name
              AND (nodes.last_seen IS NULL OR s.ts > nodes.last_seen))
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


class _Run:
    """What one ingest run carries from batch to batch."""

    def __init__(self, engine: Engine, now: float | None) -> None:
        self.engine = engine
        self.now = now
        self.ve_names, self.node_names = Names(), Names()
        self.ves = VeCache(VE_KIND, self.ve_names, self.node_names)
        self.nodes = Latest(NODE_KIND)
        self.touched_nodes: set[str] = set()
        self.clock = skew.Collector()
        self.made: set[Path] = set()  # done/ and quarantine/ folders known to exist

    def stamp(self) -> float:
        return time.time() if self.now is None else self.now


def ingest(
    engine: Engine,
    spool: Path,
    *,
    now: float | None = None,
    batch_files: int = BATCH_FILES,
    progress: Callable[[int], None] | None = None,
    jobs: int | None = None,
    skew_threshold: float = skew.THRESHOLD,
) -> IngestResult:
    """Load every file under ``<spool>/incoming/<node>/``; see the module docstring.

    ``now`` stamps the ledger rows and events (default: the clock). ``progress`` is called
    with the number of files handled after each batch. ``jobs``: worker processes that
    parse files (default: up to 2, and none for fewer than POOL_MIN_FILES files).
    ``skew_threshold``: seconds of clock skew beyond which a node gets a warning event.
    Raises StoreError when a batch cannot be written (that batch is rolled back, its files
    stay in incoming/, the batches before it stay loaded).
    """
    if batch_files < 1:
        raise StoreError(f"batch_files must be at least 1, not {batch_files}")
    if jobs is not None and jobs < 0:
        raise StoreError(f"jobs must be 0 or more, not {jobs}")
    spool = Path(spool)
    found = spoolread.scan(spool)
    result = IngestResult(skipped=len(found.skipped))
    run = _Run(engine, now)
    run_id = _open_run(engine, run.stamp(), found.skipped)
    chunks = [found.files[i : i + batch_files] for i in range(0, len(found.files), batch_files)]
    step = min(batch_files, PARSE_FILES)
    parts = [[c[i : i + step] for i in range(0, len(c), step)] for c in chunks]
    workers = _workers(jobs, len(found.files))
    with (
        _parser(workers, len(parts[0]) if parts else 1) as parse,
        _mover() as move,
        ThreadPoolExecutor(1, thread_name_prefix="lbvm-write") as writer,
    ):
        moves: list[Future[None]] = []
        writing: Future[_Staged] | None = None

        def written() -> None:
            """Wait for the batch being written; move its files, count it."""
            nonlocal writing, moves, result
            if writing is None:
                return
            staged, writing = writing.result(), None
            batch = staged.batch
            moves = [f for f in moves if not _settled(f)]
            moves.append(move(_move, batch.done(), spool / "done", run.made))
            moves.append(move(_move, batch.quarantine(), spool / "quarantine", run.made))
            result = result + staged.counts
            if progress is not None:
                progress(len(batch.chunk))

        parsed_parts = parse([part for p in parts for part in p])
        for chunk, subs in zip(chunks, parts, strict=True):
            got = [next(parsed_parts) for _ in subs]
            staged = _stage(run, chunk, merge(got, [len(c) for c in subs]), written)
            written()
            writing = writer.submit(_write, run, staged)
        written()
        for f in moves:
            f.result()
    _close_run(run, run_id, result, skew_threshold)
    log.info(
        "ingested %d files (%d VE rows), %d quarantined, %d already loaded",
        result.files, result.ve_rows, result.quarantined, result.already,
    )  # fmt: skip
    return result


def _workers(jobs: int | None, files: int) -> int:
    if jobs is not None:
        return jobs
    return min(2, os.cpu_count() or 1) if files >= POOL_MIN_FILES else 0


Parser = Callable[[list[tuple[SpoolFile, ...]]], Iterator[Parsed]]


@contextmanager
def _parser(workers: int, per_batch: int) -> Iterator[Parser]:
    """Parse chunks in order: in this process, or ``workers`` processes a batch and a
    few chunks ahead of the writer (spawned: the parent may hold threads and database
    sockets)."""

    def args(chunk: tuple[SpoolFile, ...]) -> list[tuple[str, str]]:
        return [(f.node, str(f.path)) for f in chunk]

    if workers < 2:
        yield lambda chunks: (parse_files(args(c)) for c in chunks)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:

        def ahead(chunks: list[tuple[SpoolFile, ...]]) -> Iterator[Parsed]:
            queue: list[Future[Parsed]] = []
            for chunk in chunks:
                queue.append(pool.submit(parse_files, args(chunk)))
                if len(queue) > workers + per_batch:
                    yield queue.pop(0).result()
            for f in queue:
                yield f.result()

        yield ahead


@contextmanager
def _mover() -> Iterator[Callable[..., Future[None]]]:
    """Moves run in one thread, beside the next batch (renames wait on I/O, not CPU)."""
    with ThreadPoolExecutor(1, thread_name_prefix="lbvm-move") as pool:
        yield pool.submit


def _settled(f: Future[None]) -> bool:
    if f.done():
        f.result()  # raise what a move raised
        return True
    return False


def _open_run(engine: Engine, stamp: float, skipped: Sequence[str]) -> int:
    """Open this run's row, repairing last_seen after a killed run; log skipped entries."""
    for why in skipped:
        log.warning("%s", why)
    try:
        with engine.connect() as conn, conn.execution_options(sqlite_begin="IMMEDIATE").begin():
            stale = conn.execute(
                sa.select(ingest_runs.c.id).where(ingest_runs.c.status == "running")
            ).scalars().all()
            if stale:
                conn.exec_driver_sql(_REPAIR_VES)
                conn.exec_driver_sql(_REPAIR_NODES)
                conn.execute(
                    sa.update(ingest_runs)
                    .where(ingest_runs.c.id.in_(stale))
                    .values(status="interrupted", finished_at=stamp,
                            message="the run stopped early; last_seen rebuilt from samples")
                )  # fmt: skip
                log.warning("%d ingest run(s) stopped early: last_seen rebuilt", len(stale))
            if skipped:
                record_events(conn, [Event("warning", "spool", None, w, stamp) for w in skipped])
            row = conn.execute(
                sa.insert(ingest_runs)
                .values(started_at=stamp, status="running")
                .returning(ingest_runs.c.id)
            )
            return int(row.scalar_one())
    except exc.SQLAlchemyError as error:
        raise StoreError(f"cannot start the ingest: {_one_line(error)}") from None


def _close_run(run: _Run, run_id: int, result: IngestResult, threshold: float) -> None:
    """last_seen of every VE and node met, clock skew and its warnings, the run's row."""
    stamp = run.stamp()
    try:
        with run.engine.connect() as c, c.execution_options(sqlite_begin="IMMEDIATE").begin():
            met = run.ves.met()
            _upsert_ves(c, _ve_frame(met.index, met["node"], met["ts"], met["ts"]))
            _write_nodes(c, _met(run.nodes, run.touched_nodes)[["ts"]])
            warnings = skew.store(c, run.clock, stamp, threshold)
            c.execute(
                sa.update(ingest_runs)
                .where(ingest_runs.c.id == run_id)
                .values(finished_at=stamp, status="done", files=result.files,
                        ve_rows=result.ve_rows)
            )  # fmt: skip
    except exc.SQLAlchemyError as error:
        raise StoreError(f"cannot finish the ingest: {_one_line(error)}") from None
    for node, seconds in warnings:
        log.warning("node %s: clock %+.0f s off the spool's", node, seconds)


@dataclass
class _Staged:
    """A batch made ready to write: everything the writer thread needs."""

    batch: _Batch
    ves: Ready
    nodes: Stored
    upserts: list[pd.DataFrame]  # rows for ves (new, moved, late) and nodes (new, late)
    ve_payload: Any  # binary COPY records (psycopg) or rows for executemany
    stamp: float
    counts: IngestResult


def _batch_error(chunk: Sequence[SpoolFile], error: BaseException) -> StoreError:
    return StoreError(
        f"ingest of a batch of {len(chunk)} files (first {chunk[0].path}) failed, "
        f"nothing of that batch was written: {_one_line(error)}"
    )


def _stage(
    run: _Run, chunk: Sequence[SpoolFile], parsed: Parsed, written: Callable[[], None]
) -> _Staged:
    """Read the ledger, drop duplicates, derive rates, lay out the rows (no writes);
    ``written`` waits for the batch being written, called before reading history."""
    stamp = run.stamp()
    dbapi_error: Any = getattr(run.engine.dialect.dbapi, "Error", exc.SQLAlchemyError)
    try:
        with run.engine.connect() as conn, conn.begin():
            ledger = _ledger(conn, chunk)
        batch = _Batch(chunk, parsed, ledger)
        rows = batch.ve_rows(run.ve_names, run.node_names)
        node_frame = batch.node_frame()
        if run.ves.needs_store(rows) or _needs_store(run.nodes, node_frame):
            written()  # the store must hold the batch before this one
        with run.engine.connect() as conn, conn.begin():
            ves = run.ves.prepare(conn, rows)
            nodes = prepare(conn, NODE_KIND, node_frame, run.nodes)
            payload = _ve_payload(conn, ves.rows, run)
    except (exc.SQLAlchemyError, dbapi_error) as error:
        raise _batch_error(chunk, error) from None
    upserts = [_moved_or_new(ves, run), _late_newest(ves.late), _new_nodes(nodes, run),
               _newest(nodes, "node")[["ts"]]]  # fmt: skip
    # The next batch is prepared against this one: the run's caches take it now (a
    # batch that fails to write ends the run, caches and all).
    run.ves.commit(ves)
    run.nodes.update(nodes.newest, nodes.general)
    run.touched_nodes.update(nodes.newest.index)
    run.clock.add(batch.skews())
    counts = IngestResult(
        files=batch.loaded_count,
        ve_rows=len(ves.rows),
        node_rows=len(nodes.rows),
        quarantined=len(batch.bad),
        already=len(batch.already),
        duplicates=ves.duplicates + nodes.duplicates,
    )
    return _Staged(batch, ves, nodes, upserts, payload, stamp, counts)


def _write(run: _Run, staged: _Staged) -> _Staged:
    """Write one staged batch in one transaction (in the writer thread)."""
    batch, nodes, stamp = staged.batch, staged.nodes, staged.stamp
    dbapi_error: Any = getattr(run.engine.dialect.dbapi, "Error", exc.SQLAlchemyError)
    try:
        with run.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                _insert_ves(conn, staged.ve_payload)
                bulk.insert_frame(conn, node_samples, nodes.rows[list(NODE_INSERT)])
                moved, late, new_nodes, late_nodes = staged.upserts
                _upsert_ves(conn, moved)
                _upsert_ves(conn, late)
                _write_nodes(conn, new_nodes)
                _write_nodes(conn, late_nodes)
                bulk.insert_frame(conn, spool_files, batch.ledger_rows(stamp))
                record_events(conn, batch.events(stamp))
                ingest_ha(conn, batch.ha_docs())
    except (exc.SQLAlchemyError, dbapi_error) as error:
        raise _batch_error(batch.chunk, error) from None
    for why in batch.bad_reasons():
        log.error("quarantined %s", why)
    return staged


def _needs_store(latest: Latest, frame: pd.DataFrame) -> bool:
    """Whether preparing node rows ``frame`` asks the store (a node not met yet in this
    run, or a row at or before the newest one cached)."""
    if frame.empty:
        return False
    known = latest.frame["ts"].reindex(frame["node"]).to_numpy(dtype=np.float64)
    return bool(np.isnan(known).any() or (frame["ts"].to_numpy() <= known).any())


class _Batch:
    """One chunk's parse result set against the ledger: what to load, what to set aside."""

    def __init__(self, chunk: Sequence[SpoolFile], p: Parsed, ledger: dict[int, str]) -> None:
        self.chunk, self.p, self.ledger = chunk, p, ledger
        self.already = sorted(ledger)
        self.keep = np.array([i not in ledger for i in p.ok.tolist()], dtype=bool)
        self.row_keep = np.repeat(self.keep, p.counts)
        self.loaded = [int(i) for i in p.ok[self.keep]]
        self.loaded_count = len(self.loaded)
        self.bad = [(i, why) for i, why in p.bad if i not in ledger]
        for i in p.vanished:
            log.info("%s vanished before it was read (another ingest?)", chunk[i].path)

    def ve_rows(self, ve_names: Names, node_names: Names) -> Rows:
        p, keep = self.p, self.row_keep
        every = bool(keep.all())
        ve = p.ve if every else np.array(p.ve, dtype=object)[keep].tolist()
        node = np.repeat(node_names.encode(p.node), p.counts)

        def rows(values: np.ndarray) -> np.ndarray:
            return values if every else values[keep]

        return Rows(
            ve=ve_names.encode(ve),
            node=rows(node),
            ts=rows(np.repeat(p.time, p.counts)),
            cpu_hz=rows(np.repeat(p.cpu_hz, p.counts)),
            uptime=rows(np.where(p.uptime.known, p.uptime.values, np.nan)),
            cpu_used=np.full(len(ve), np.nan),
            ints={k: (rows(p.ints[k].values), rows(p.ints[k].known)) for k in INT_COLUMNS},
        )

    def node_frame(self) -> pd.DataFrame:
        p, keep = self.p, self.keep
        data: dict[str, Any] = {
            "node": np.array(p.node, dtype=object)[keep],
            "ts": p.time[keep],
            "jiffies_hz": p.jiffies_hz[keep],
        }
        for k, col in p.totals.items():
            values, known = col.values[keep], col.known[keep]
            data[k] = values if k in NODE_FLOAT else pd.arrays.IntegerArray(values, ~known)
        return pd.DataFrame(data)

    def ledger_rows(self, stamp: float) -> pd.DataFrame:
        p, keep = self.p, self.keep
        names = [self.chunk[i] for i in self.loaded] + [self.chunk[i] for i, _ in self.bad]
        return pd.DataFrame(
            {
                "node": [f.node for f in names],
                "name": [f.name for f in names],
                "sample_time": [*p.time[keep].tolist(), *([None] * len(self.bad))],
                "ingested_at": stamp,
                "rows": [*p.counts[keep].tolist(), *([0] * len(self.bad))],
                "status": ["ingested"] * self.loaded_count + ["quarantined"] * len(self.bad),
                "reason": [None] * self.loaded_count + [why for _, why in self.bad],
            }
        )

    def events(self, stamp: float) -> list[Event]:
        return [
            Event("error", "quarantine", f"{self.chunk[i].node}/{self.chunk[i].name}", why, stamp)
            for i, why in self.bad
        ]

    def bad_reasons(self) -> list[str]:
        return [why for _, why in self.bad]

    def ha_docs(self) -> list[dict[str, Any]]:
        loaded = set(self.loaded)
        return [doc for i, doc in self.p.ha if i in loaded]

    def skews(self) -> tuple[list[str], np.ndarray]:
        p, keep = self.p, self.keep
        clock = np.where(np.isnan(p.written), p.time, p.written)
        return [n for n, k in zip(p.node, keep.tolist(), strict=True) if k], (clock - p.mtime)[keep]

    def done(self) -> list[SpoolFile]:
        ok = [i for i in self.already if self.ledger[i] == "ingested"]
        return [self.chunk[i] for i in (*self.loaded, *ok)]

    def quarantine(self) -> list[SpoolFile]:
        old = [i for i in self.already if self.ledger[i] != "ingested"]
        return [self.chunk[i] for i in (*(i for i, _ in self.bad), *old)]


def _ledger(conn: Connection, chunk: Sequence[SpoolFile]) -> dict[int, str]:
    """Position in ``chunk`` -> ledger status, for the chunk's files already loaded."""
    where = {(f.node, f.name): i for i, f in enumerate(chunk)}
    if conn.dialect.name == "postgresql":  # two arrays, one index probe per file
        found = conn.exec_driver_sql(
            "SELECT s.node, s.name, s.status FROM unnest(%(nodes)s::text[], %(names)s::text[])"
            " AS t(node, name) JOIN spool_files s ON s.node = t.node AND s.name = t.name",
            {"nodes": [f.node for f in chunk], "names": [f.name for f in chunk]},
        ).all()
        return {where[(r[0], r[1])]: r[2] for r in found}
    # SQLite would probe the cross product of two IN lists: join a temp table instead.
    tmp = bulk.temp_table(
        conn, "lbvm_tmp_files", sa.Column("node", sa.String(253)), sa.Column("name", sa.String(512))
    )
    names = pd.DataFrame({"node": [f.node for f in chunk], "name": [f.name for f in chunk]})
    bulk.insert_frame(conn, tmp, names)
    found = conn.exec_driver_sql(
        f"SELECT s.node, s.name, s.status FROM {tmp.name} t CROSS JOIN spool_files s"
        " WHERE s.node = t.node AND s.name = t.name"
    ).all()
    tmp.drop(conn)
    return {where[(r[0], r[1])]: r[2] for r in found}


def _ve_payload(conn: Connection, rows: Rows, run: _Run) -> Any:
    """The VE rows as the writer sends them: binary COPY records on PostgreSQL
    (psycopg), else rows for executemany. They come in (VE, time) order, so the (ve, ts)
    index is written front to back, not at random."""
    if not len(rows):
        return None
    names, nodes = run.ve_names, run.node_names
    everywhere = np.ones(len(rows), dtype=bool)
    used, uptime = rows.cpu_used, rows.uptime
    columns: list[tuple[str, str, Any, np.ndarray]] = [
        ("ve", "text", bulk.Text(names.blob, names.start[rows.ve], names.size[rows.ve]),
         everywhere),
        ("node", "text", bulk.Text(nodes.blob, nodes.start[rows.node], nodes.size[rows.node]),
         everywhere),
        ("ts", "float8", rows.ts, everywhere),
        ("cpu_hz", "int4", rows.cpu_hz, everywhere),
        ("cpu_used", "float8", used, ~np.isnan(used)),
        ("uptime", "float8", uptime, ~np.isnan(uptime)),
        *((k, "int8", v, m) for k, (v, m) in rows.ints.items()),
    ]  # fmt: skip
    if bulk.is_psycopg(conn):
        return bulk.binary_records(columns)
    values = [names.objects()[rows.ve].tolist(), nodes.objects()[rows.node].tolist()]
    values += [bulk.py_values(v, m) for _, _, v, m in columns[2:]]
    return [c[0] for c in columns], list(zip(*values, strict=True))


def _insert_ves(conn: Connection, payload: Any) -> None:
    if payload is None:
        return
    if isinstance(payload, bulk.Records):
        bulk.copy_records(conn, ve_samples, payload)
        return
    names, rows = payload
    bulk.insert_rows(conn, ve_samples, names, rows, INSERT_ROWS)


def _ve_frame(ve: Any, node: Any, first: Any, last: Any) -> pd.DataFrame:
    """Rows for the ves upsert."""
    return pd.DataFrame(
        {
            "ve": np.asarray(ve, dtype=object),
            "node": np.asarray(node, dtype=object),
            "first_seen": np.asarray(first, dtype=np.float64),
            "last_seen": np.asarray(last, dtype=np.float64),
        }
    )


def _moved_or_new(ready: Ready, run: _Run) -> pd.DataFrame:
    """The VEs that are new to the store or changed node in this batch (fast path)."""
    at = ready.newest[ready.changed]
    rows = ready.rows
    return _ve_frame(
        run.ve_names.objects()[rows.ve[at]],
        run.node_names.objects()[rows.node[at]],
        ready.first_ts[ready.changed],
        rows.ts[at],
    )


def _late_newest(late: Stored | None) -> pd.DataFrame:
    """Newest row of each VE that took the general path (they leave the run's cache, so
    their last_seen is written at once), with their oldest row of the batch."""
    rows = late.rows if late is not None else pd.DataFrame()
    if rows.empty:
        return _ve_frame([], [], [], [])
    ordered = rows.sort_values("ts", kind="stable").groupby("ve", sort=False)
    newest = ordered.last()
    first = ordered["ts"].min().reindex(newest.index)
    return _ve_frame(newest.index, newest["node"], first, newest["ts"])


def _upsert_ves(conn: Connection, frame: pd.DataFrame) -> None:
    """Upsert ``frame`` (ve, node, first_seen, last_seen) into ves."""
    if frame.empty:
        return
    tmp = bulk.temp_table(
        conn,
        "lbvm_tmp_ves",
        sa.Column("ve", sa.String(255), primary_key=True),
        sa.Column("node", sa.String(253)),
        sa.Column("first_seen", sa.Float),
        sa.Column("last_seen", sa.Float),
    )
    bulk.insert_frame(conn, tmp, frame)
    conn.exec_driver_sql(_UPSERT_VES.format(tmp=tmp.name))
    tmp.drop(conn)


def _node_summary(nodes: Stored) -> pd.DataFrame:
    ordered = nodes.rows.sort_values("ts", kind="stable")
    return ordered.groupby("node", sort=False).agg(
        last_seen=("ts", "max"),
        cpus=("cpus", "last"),
        mem_bytes=("mem_total_bytes", "last"),
        disk_bytes=("disk_total_bytes", "last"),
    )


def _new_nodes(nodes: Stored, run: _Run) -> pd.DataFrame:
    """Nodes the store has never had a sample of (capacity from their report), to insert."""
    if nodes.rows.empty:
        return pd.DataFrame()
    summary = _node_summary(nodes)
    before = run.nodes.frame.reindex(summary.index)
    return summary.loc[before["ts"].isna().to_numpy()]


def _met(latest: Latest, names: set[str]) -> pd.DataFrame:
    """The newest stored sample of the series in ``names`` still known to ``latest``."""
    return latest.frame.loc[sorted(names & set(latest.frame.index))]


def _newest(stored: Stored, key: str) -> pd.DataFrame:
    """Newest inserted row of each series that took the general path (late rows): they
    leave the run's cache, so their last_seen is written at once."""
    rows = stored.rows.loc[stored.rows[key].isin(stored.general)]
    if rows.empty:
        return pd.DataFrame(columns=["ts", "node"], index=pd.Index([], dtype=object))
    return rows.sort_values("ts", kind="stable").groupby(key, sort=False).last()


def _write_nodes(conn: Connection, summary: pd.DataFrame) -> None:
    """Upsert nodes (index: name) with last_seen (or ts) and, where given, capacity."""
    if summary.empty:
        return
    frame = summary.rename(columns={"ts": "last_seen"}).rename_axis("name").reset_index()
    frame = frame.reindex(columns=["name", "last_seen", "cpus", "mem_bytes", "disk_bytes"])
    frame["cpus"] = frame["cpus"].astype("float64")
    for col in ("mem_bytes", "disk_bytes"):
        frame[col] = pd.array(frame[col].tolist(), dtype="Int64")
    tmp = bulk.temp_table(
        conn,
        "lbvm_tmp_nodes",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("last_seen", sa.Float),
        sa.Column("cpus", sa.Float),
        sa.Column("mem_bytes", sa.BigInteger),
        sa.Column("disk_bytes", sa.BigInteger),
    )
    bulk.insert_frame(conn, tmp, frame)
    conn.exec_driver_sql(_UPSERT_NODES.format(tmp=tmp.name))
    tmp.drop(conn)


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
