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
    # PostgreSQL: autovacuum marks freshly ingested pages all-visible every 100,000 rows
    # (not after 20 % of the table), so window_demand's index-only scans skip the heap.
    postgresql_with={
        "autovacuum_vacuum_insert_threshold": 100_000,
        "autovacuum_vacuum_insert_scale_factor": 0,
    },
)
# One row per VE and time. On PostgreSQL the index also carries what window_demand reads,
# so its per-VE percentiles come from the index alone (an index-only scan).
Index(
    "uq_ve_samples_ve_ts",
    ve_samples.c.ve,
    ve_samples.c.ts,
    unique=True,
    postgresql_include=["cpu_used", "mem_bytes"],
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

# -- HA-pair state: the latest report of each node (lbvm.store.ha). A newer report of a
# node replaces all of its rows; `reporter` is the node that collected them.
ha_reports = Table(
    "ha_reports",
    metadata,
    Column("reporter", String(253), primary_key=True),
    Column("ts", Float, nullable=False),  # the spool file's sample time
    Column("drbd_status", String(8), nullable=False),  # ok | absent | failed | none
    Column("drbd_detail", Text),
    Column("drbd_source", String(16)),
    Column("cluster_status", String(8), nullable=False),
    Column("cluster_detail", Text),
    Column("manager", String(16)),  # pacemaker | heartbeat | rgmanager
    Column("quorum", Boolean),  # NULL: the manager does not say
    Column("maintenance_mode", Boolean),
)

# Cluster members as the reporter's cluster manager sees them.
ha_members = Table(
    "ha_members",
    metadata,
    Column("reporter", String(253), nullable=False),
    Column("name", String(253), nullable=False),
    Column("online", Boolean, nullable=False),
    Column("standby", Boolean, nullable=False),
    Column("unclean", Boolean, nullable=False),
    Column("maintenance", Boolean, nullable=False),
    Column("shutdown", Boolean, nullable=False),
    Column("pending", Boolean, nullable=False),
    Column("flags", String(255)),  # comma-separated
    UniqueConstraint("reporter", "name", name="uq_ha_members"),
)

# One DRBD volume towards one peer, as the reporter sees it.
ha_drbd = Table(
    "ha_drbd",
    metadata,
    Column("reporter", String(253), nullable=False),
    Column("resource", String(255), nullable=False),
    Column("volume", Integer),
    Column("minor", Integer),
    Column("peer", String(253)),
    Column("connection", String(32), nullable=False),
    Column("replication", String(32), nullable=False),
    Column("role", String(32), nullable=False),
    Column("peer_role", String(32), nullable=False),
    Column("disk", String(32), nullable=False),
    Column("peer_disk", String(32), nullable=False),
    Column("out_of_sync_kib", BigInteger),
    Column("progress_pct", Float),
    Column("finish_s", Integer),
    Column("stalled", Boolean, nullable=False),
)
Index("ix_ha_drbd_reporter", ha_drbd.c.reporter, ha_drbd.c.resource)

# Cluster resources (one row per instance) and failed actions, per reporter.
ha_resources = Table(
    "ha_resources",
    metadata,
    Column("reporter", String(253), nullable=False),
    Column("id", String(255), nullable=False),
    Column("kind", String(255)),
    Column("role", String(32)),
    Column("nodes", Text),  # comma-separated
    Column("failed", Boolean, nullable=False),
    Column("managed", Boolean, nullable=False),
    Column("grp", String(255)),
)
Index("ix_ha_resources_reporter", ha_resources.c.reporter)

ha_failures = Table(
    "ha_failures",
    metadata,
    Column("reporter", String(253), nullable=False),
    Column("node", String(253)),
    Column("resource", String(255)),
    Column("operation", String(64)),
    Column("message", Text, nullable=False),
)
Index("ix_ha_failures_reporter", ha_failures.c.reporter)

# Which DRBD resource and cluster resource hold each VE, per reporter.
ha_ves = Table(
    "ha_ves",
    metadata,
    Column("reporter", String(253), nullable=False),
    Column("ve", String(255), nullable=False),
    Column("drbd", String(255)),
    Column("cluster", String(255)),
    Column("source", String(16), nullable=False),
    UniqueConstraint("reporter", "ve", name="uq_ha_ves"),
)

# The step log of a multi-step move (the live switchover): one row per command run.
move_steps = Table(
    "move_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("move_id", Integer, nullable=False),
    Column("step", String(32), nullable=False),  # suspend, dump, cluster_move, ... rollback_*
    Column("node", String(253)),
    Column("argv", Text, nullable=False),  # JSON list
    Column("exit_code", Integer),  # NULL: timed out, or still running
    Column("output", Text),  # tail of stdout+stderr
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
)
Index("ix_move_steps_move", move_steps.c.move_id)

# Rolling upgrades: one row per node of a rolling run, in order; resumable.
rolling = Table(
    "rolling",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, nullable=False),  # the runs row of the whole rolling upgrade
    Column("position", Integer, nullable=False),
    Column("node", String(253), nullable=False),
    Column("command", Text, nullable=False),  # JSON argv
    Column("state", String(16), nullable=False),
    # pending -> drained -> upgraded -> back -> done; failed stops the run
    Column("command_started_at", Float),
    Column("command_finished_at", Float),
    Column("updated_at", Float, nullable=False),
    Column("message", Text),
    UniqueConstraint("run_id", "node", name="uq_rolling_run_node"),
)

# -- Ingest runs: one row per `ingest` call. A row left 'running' means the process died;
# the next ingest then rebuilds ves/nodes last_seen from the samples (see lbvm.store.ingest).
ingest_runs = Table(
    "ingest_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("status", String(16), nullable=False),  # running | done | failed | interrupted
    Column("files", Integer),
    Column("ve_rows", BigInteger),
    Column("message", Text),
)

# Each node's clock against the shared storage's, from its latest ingest: skew is the
# median of (node clock when the file was written - the file's mtime), in seconds.
node_clock = Table(
    "node_clock",
    metadata,
    Column("node", String(253), primary_key=True),
    Column("skew", Float, nullable=False),
    Column("files", Integer, nullable=False),
    Column("measured_at", Float, nullable=False),
)

# Hourly rollups (lbvm.store.retention): kept for rollup_days after the raw samples go.
# `hour` is the start of the hour (UTC epoch seconds); the hour covers hour <= ts < hour+3600.
ve_rollups = Table(
    "ve_rollups",
    metadata,
    Column("ve", String(255), nullable=False),
    Column("hour", Float, nullable=False),
    Column("node", String(253)),  # where its newest sample of the hour was taken
    Column("samples", Integer, nullable=False),
    Column("cpu_mean", Float),
    Column("cpu_p95", Float),
    Column("cpu_max", Float),
    Column("cpu_n", Integer, nullable=False),  # samples with a CPU rate (weights the mean)
    Column("mem_mean", Float),
    Column("mem_p95", Float),
    Column("mem_max", Float),
    Column("mem_last", Float),
    Column("disk_last", Float),
    Column("failcnt_growth", Float),  # growth inside the hour (resets handled)
    Column("failcnt_last", Float),
    UniqueConstraint("ve", "hour", name="uq_ve_rollups_ve_hour"),
)
Index("ix_ve_rollups_hour", ve_rollups.c.hour)

node_rollups = Table(
    "node_rollups",
    metadata,
    Column("node", String(253), nullable=False),
    Column("hour", Float, nullable=False),
    Column("samples", Integer, nullable=False),
    Column("cpu_mean", Float),
    Column("cpu_p95", Float),
    Column("cpu_max", Float),
    Column("mem_used_mean", Float),
    Column("mem_used_p95", Float),
    Column("mem_used_max", Float),
    Column("load1_mean", Float),
    Column("load1_max", Float),
    UniqueConstraint("node", "hour", name="uq_node_rollups_node_hour"),
)
Index("ix_node_rollups_hour", node_rollups.c.hour)

# Small named values the store keeps about itself (retention's watermarks).
store_marks = Table(
    "store_marks",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Float, nullable=False),
)
