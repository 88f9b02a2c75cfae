"""The store's tables (SQLAlchemy Core). One metadata, created on first use.

Times are UTC epoch seconds (float) so SQLite and PostgreSQL compare them the same way and
pandas reads them without time-zone surprises.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# Every spool file ever seen: the exactly-once ledger. Inserted in the same transaction
# as the file's samples, so a file is either fully in the store or not at all.
spool_files = Table(
    "spool_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node", String(253), nullable=False),
    Column("name", String(512), nullable=False),
    Column("sample_time", Float),
    Column("ingested_at", Float, nullable=False),
    Column("rows", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False),  # ingested | quarantined
    Column("reason", Text),
    UniqueConstraint("node", "name", name="uq_spool_files_node_name"),
)

nodes = Table(
    "nodes",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("pair", String(253)),  # from config; NULL when not in a pair
    Column("cpus", Float),  # capacity in cores
    Column("mem_bytes", BigInteger),
    Column("disk_bytes", BigInteger),
    Column("maintenance", Boolean, nullable=False, default=False),
    Column("last_seen", Float),
)

node_samples = Table(
    "node_samples",
    metadata,
    Column("node", String(253), nullable=False),
    Column("ts", Float, nullable=False),
    Column("cpus", Integer),
    Column("cpu_busy_raw", BigInteger),
    Column("cpu_idle_raw", BigInteger),
    Column("cpu_used", Float),  # derived: cores busy since the previous sample
    Column("mem_total_bytes", BigInteger),
    Column("mem_available_bytes", BigInteger),
    Column("load1", Float),
    Column("load5", Float),
    Column("load15", Float),
    Column("disk_total_bytes", BigInteger),
    Column("disk_free_bytes", BigInteger),
    UniqueConstraint("node", "ts", name="uq_node_samples_node_ts"),
)

ve_samples = Table(
    "ve_samples",
    metadata,
    Column("ve", String(255), nullable=False),
    Column("node", String(253), nullable=False),
    Column("ts", Float, nullable=False),
    Column("cpu_raw", BigInteger),
    Column("cpu_hz", Integer),
    Column("cpu_used", Float),  # derived: cores used since the previous sample of this VE
    Column("uptime", Float),
    Column("mem_bytes", BigInteger),
    Column("mem_limit_bytes", BigInteger),
    Column("swap_bytes", BigInteger),
    Column("disk_bytes", BigInteger),
    Column("disk_limit_bytes", BigInteger),
    Column("failcnt", BigInteger),
    UniqueConstraint("ve", "ts", name="uq_ve_samples_ve_ts"),
)
Index("ix_ve_samples_ts", ve_samples.c.ts)

# VEs under LBVM's care. `node` is where the store believes the VE is now.
ves = Table(
    "ves",
    metadata,
    Column("ve", String(255), primary_key=True),
    Column("node", String(253)),
    Column("balanced", Boolean, nullable=False, default=True),
    Column("pinned", Boolean, nullable=False, default=False),
    Column("automation", String(16)),  # NULL: the cluster's level
    Column("first_seen", Float),
    Column("last_seen", Float),
    Column("cooldown_until", Float),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),  # plan | rebalance | migrate | ingest | demo
    Column("algorithm", String(64)),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),  # running | done | failed | refused
    Column("score_before", Float),
    Column("score_after", Float),
    Column("message", Text),
)

# The migration journal: planned -> running -> done | failed | skipped | unknown.
moves = Table(
    "moves",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer),
    Column("ve", String(255), nullable=False),
    Column("src", String(253), nullable=False),
    Column("dst", String(253), nullable=False),
    Column("kind", String(16), nullable=False),  # switchover | migrate
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("backend", String(32)),
    Column("argv", Text),  # JSON list
    Column("exit_code", Integer),
    Column("output", Text),  # tail of stdout+stderr
    Column("planned_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
)
Index("ix_moves_ve", moves.c.ve)

# Everything an operator may want in `lbm log`: runs, errors, quarantined files, refusals.
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("level", String(8), nullable=False),  # info | warning | error
    Column("kind", String(32), nullable=False),
    Column("subject", String(255)),
    Column("message", Text, nullable=False),
)
Index("ix_events_ts", events.c.ts)

# Only one actor moves VEs at a time: a named lease, renewed while held, expiring if not.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Plans stored at the `recommend` automation level, applied later with `lbm plan --apply ID`.
plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer),
    Column("created_at", Float, nullable=False),
    Column("algorithm", String(64), nullable=False),
    Column("score_before", Float),
    Column("score_after", Float),
    Column("moves", Text, nullable=False),  # JSON list of {ve, src, dst, kind, reason, bytes}
    Column("state", String(16), nullable=False),  # open | applied | superseded
)
