"""Time `window_demand` (p95 of cpu and memory per VE over a day) on PostgreSQL.

Loads V VEs x S samples straight into ve_samples of a scratch schema (COPY, not timed), in
time order as ingest writes them (one time step of every VE after the other), with
--before hours of older samples ahead of the window; on PostgreSQL a VACUUM ANALYZE follows,
as autovacuum would after so many inserted rows. Then times window_demand over the last S
samples a few times and prints the seconds: wall, this process's CPU and, when the database
runs on this machine, its backends' CPU. The schema is dropped afterwards. Target: 50,000
VEs x 288 samples in <= 3 s.

    .venv/bin/python bench/bench_demand.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench_demand.py --ves 5000 --url sqlite:////tmp/demand.db
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import drop_schema, scratch_url

from lbvm.store import bulk
from lbvm.store.engine import connect
from lbvm.store.queries import window_demand
from lbvm.store.schema import ve_samples, ves

START = 1_700_000_000.0
STEP = 300.0


def load(engine: Engine, n_ves: int, n_samples: int, chunk_rows: int = 600_000) -> None:
    """``n_samples`` time steps of ``n_ves`` VEs, in time order."""
    rng = np.random.default_rng(3)
    names = np.arange(n_ves).astype(str)
    nodes = np.array([f"node{i // 25:04d}" for i in range(n_ves)])
    steps = max(1, chunk_rows // n_ves)
    for first in range(0, n_samples, steps):
        ts = START + STEP * np.arange(first, min(first + steps, n_samples))
        size = len(ts) * n_ves
        frame = pd.DataFrame(
            {
                "ve": np.tile(names, len(ts)),
                "node": np.tile(nodes, len(ts)),
                "ts": np.repeat(ts, n_ves),
                "cpu_hz": 100,
                "cpu_used": rng.gamma(2.0, 0.3, size=size),
                "mem_bytes": rng.integers(1 << 28, 1 << 33, size=size),
            }
        )
        with engine.begin() as conn:
            bulk.insert_frame(conn, ve_samples, frame)
    with engine.begin() as conn:  # ingest keeps ves in step with the samples; so do we
        conn.execute(
            ves.insert(),
            [{"ve": v, "node": n, "balanced": True, "pinned": False}
             for v, n in zip(names.tolist(), nodes.tolist(), strict=True)],
        )  # fmt: skip
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE ve_samples"
            )


def server_seconds(engine: Engine, tag: str) -> float | None:
    """CPU seconds used so far by this engine's PostgreSQL backends (application_name
    ``tag``), read from /proc: None unless the database runs on this machine."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %(tag)s", {"tag": tag}
        ).scalars()
        total = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ves", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=288, help="5-minute samples in the window")
    ap.add_argument("--before", type=float, default=0.0, help="hours of samples before it")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--statistic", default="p95")
    ap.add_argument("--url", default=os.environ.get("LBVM_TEST_DATABASE_URL"))
    args = ap.parse_args()
    if not args.url:
        ap.error("give --url (or set LBVM_TEST_DATABASE_URL)")
    url = make_url(args.url)
    if url.get_backend_name() == "sqlite" and url.database and Path(url.database).exists():
        ap.error(f"{url.database} exists: the bench loads a new SQLite file, remove it first")
    scoped, schema = scratch_url(args.url)
    tag = schema or "bench_demand"
    if schema:  # name the backends so their CPU time can be read
        named = make_url(scoped).update_query_dict({"application_name": tag})
        scoped = named.render_as_string(hide_password=False)
    try:
        engine = connect(scoped)
        before = round(args.before * 3600 / STEP)
        total = before + args.samples
        began = time.perf_counter()
        load(engine, args.ves, total)
        print(
            f"loaded {args.ves:,d} VEs x {total} samples "
            f"({args.ves * total:,d} rows) in {time.perf_counter() - began:.1f} s"
        )
        end = START + STEP * (total - 1)
        start = end - STEP * args.samples
        window_demand(engine, start=start, end=start + 1)  # opens the pool's connections
        walls, cpus, server = [], [], []
        for _ in range(args.runs):
            s0 = server_seconds(engine, tag)
            c0, began = time.process_time(), time.perf_counter()
            demand = window_demand(engine, start=start, end=end, statistic=args.statistic)
            walls.append(time.perf_counter() - began)
            cpus.append(time.process_time() - c0)
            s1 = server_seconds(engine, tag)
            if s0 is not None and s1 is not None:
                server.append(s1 - s0)
        assert len(demand) == args.ves
        on_server = f", server CPU {statistics.median(server):.2f} s" if server else ""
        print(
            f"window_demand {args.statistic} on {engine.dialect.name}, {args.runs} runs: "
            f"wall median {statistics.median(walls):.2f} s (best {min(walls):.2f} s), "
            f"client CPU {statistics.median(cpus):.2f} s{on_server}, "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        engine.dispose()
    finally:
        if schema:
            drop_schema(args.url, schema)


if __name__ == "__main__":
    main()
