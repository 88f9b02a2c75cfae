"""Time `window_demand` (p95 of cpu and memory per VE over a day) on PostgreSQL.

Loads V VEs x S samples straight into ve_samples of a scratch schema (COPY, not timed), then
times window_demand over the whole window a few times and prints the seconds. The schema is
dropped afterwards. Target: 50,000 VEs x 288 samples in <= 3 s.

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
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import drop_schema, scratch_url

from lbvm.store import bulk
from lbvm.store.engine import connect
from lbvm.store.queries import window_demand
from lbvm.store.schema import ve_samples

START = 1_700_000_000.0
STEP = 300.0


def load(engine: Engine, n_ves: int, n_samples: int, chunk: int = 2000) -> None:
    rng = np.random.default_rng(3)
    ts = START + STEP * np.arange(n_samples)
    for first in range(0, n_ves, chunk):
        ids = np.arange(first, min(first + chunk, n_ves))
        frame = pd.DataFrame(
            {
                "ve": np.repeat(ids.astype(str), n_samples),
                "node": np.repeat([f"node{i // 25:04d}" for i in ids], n_samples),
                "ts": np.tile(ts, len(ids)),
                "cpu_hz": 100,
                "cpu_used": rng.gamma(2.0, 0.3, size=len(ids) * n_samples),
                "mem_bytes": rng.integers(1 << 28, 1 << 33, size=len(ids) * n_samples),
            }
        )
        with engine.begin() as conn:
            bulk.insert_frame(conn, ve_samples, frame)
    with engine.begin() as conn:  # ingest keeps ves in step with the samples; so do we
        conn.exec_driver_sql(
            "INSERT INTO ves (ve, node, balanced, pinned) "
            "SELECT ve, min(node), true, false FROM ve_samples GROUP BY ve"
        )
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("ANALYZE ve_samples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ves", type=int, default=50_000)
    ap.add_argument("--samples", type=int, default=288)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--statistic", default="p95")
    ap.add_argument("--url", default=os.environ.get("LBVM_TEST_DATABASE_URL"))
    args = ap.parse_args()
    if not args.url:
        ap.error("give --url (or set LBVM_TEST_DATABASE_URL)")
    scoped, schema = scratch_url(args.url)
    try:
        engine = connect(scoped)
        began = time.perf_counter()
        load(engine, args.ves, args.samples)
        print(
            f"loaded {args.ves:,d} VEs x {args.samples} samples "
            f"({args.ves * args.samples:,d} rows) in {time.perf_counter() - began:.1f} s"
        )
        end = START + STEP * (args.samples - 1)
        start = end - STEP * args.samples
        times = []
        for _ in range(args.runs):
            began = time.perf_counter()
            demand = window_demand(engine, start=start, end=end, statistic=args.statistic)
            times.append(time.perf_counter() - began)
        assert len(demand) == args.ves
        print(
            f"window_demand {args.statistic} on {engine.dialect.name}: "
            f"median {statistics.median(times):.2f} s, best {min(times):.2f} s "
            f"over {args.runs} runs"
        )
        engine.dispose()
    finally:
        if schema:
            drop_schema(args.url, schema)


if __name__ == "__main__":
    main()
