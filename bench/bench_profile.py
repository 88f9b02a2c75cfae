"""Time the Problem's hourly profile (lbvm.store.profile.hourly) for V VEs over 24 hours.

Loads a store as the monitor leaves it (not timed): hourly rollups of V VEs for the hours
before the rollup watermark, and raw 5-minute samples for the --raw-hours after it (the last
one only half over). Then builds the [V, 24, 2] profile a few times and prints the seconds:
wall and this process's CPU (on PostgreSQL the raw hours' p95s are computed by the server).
A PostgreSQL scratch schema is dropped afterwards; a SQLite store is a temporary file.

    .venv/bin/python bench/bench_profile.py --url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench_profile.py --ves 50000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import drop_schema, scratch_url

from lbvm.store import bulk, profile
from lbvm.store.engine import connect
from lbvm.store.retention import WATERMARK
from lbvm.store.schema import store_marks, ve_rollups, ve_samples

HOUR = 3600.0
STEP = 300.0
NOW = 1_700_000_000.0 // HOUR * HOUR + 1800.0  # half an hour into the current hour
STEPS = 24


def load(engine: Engine, n_ves: int, raw_hours: int) -> None:
    rng = np.random.default_rng(5)
    names = np.array([f"{i:06d}" for i in range(n_ves)])
    nodes = np.array([f"node{i // 25:04d}" for i in range(n_ves)])
    first = NOW // HOUR * HOUR - (STEPS - 1) * HOUR
    watermark = first + (STEPS - raw_hours) * HOUR
    for hour in np.arange(first, watermark, HOUR):
        p95 = rng.gamma(2.0, 0.3, size=n_ves)
        mem = rng.integers(1 << 28, 1 << 33, size=n_ves).astype(np.float64)
        frame = pd.DataFrame({
            "ve": names, "hour": hour, "node": nodes, "samples": 12, "cpu_mean": p95 / 2,
            "cpu_p95": p95, "cpu_max": p95 * 1.2, "cpu_n": 12, "mem_mean": mem,
            "mem_p95": mem, "mem_max": mem, "mem_last": mem, "disk_last": mem,
            "failcnt_growth": 0.0, "failcnt_last": 0.0})
        with engine.begin() as conn:
            bulk.insert_frame(conn, ve_rollups, frame)
    for ts in np.arange(watermark, NOW + 1, STEP):
        frame = pd.DataFrame({
            "ve": names, "node": nodes, "ts": ts, "cpu_hz": 100,
            "cpu_used": rng.gamma(2.0, 0.3, size=n_ves),
            "mem_bytes": rng.integers(1 << 28, 1 << 33, size=n_ves)})
        with engine.begin() as conn:
            bulk.insert_frame(conn, ve_samples, frame)
    with engine.begin() as conn:
        conn.execute(store_marks.insert().values(name=WATERMARK, value=watermark))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                "VACUUM ANALYZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ves", type=int, default=50_000)
    ap.add_argument("--raw-hours", type=int, default=2, help="hours not rolled up yet")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--url", default=None, help="PostgreSQL URL (default: a SQLite file)")
    args = ap.parse_args()
    if not 1 <= args.raw_hours <= STEPS:
        ap.error(f"--raw-hours must be between 1 and {STEPS}")
    with tempfile.TemporaryDirectory() as tmp:
        url, schema = scratch_url(args.url or f"sqlite:///{tmp}/profile.db")
        engine = connect(url)
        try:
            t0 = time.perf_counter()
            load(engine, args.ves, args.raw_hours)
            print(f"loaded {args.ves} VEs ({STEPS - args.raw_hours} rolled-up hours, "
                  f"{args.raw_hours} raw) on {engine.dialect.name} in "
                  f"{time.perf_counter() - t0:.1f} s")
            names = tuple(f"{i:06d}" for i in range(args.ves))
            fill = np.ones((args.ves, 2))
            walls, cpus = [], []
            for _ in range(args.runs):
                w, c = time.perf_counter(), time.process_time()
                prof = profile.hourly(engine, names, fill, end=NOW, steps=STEPS)
                walls.append(time.perf_counter() - w)
                cpus.append(time.process_time() - c)
            filled = float(np.mean(prof == 1.0))
            print(f"profile {prof.shape} {prof.nbytes / 1e6:.1f} MB, {filled:.1%} filled; "
                  f"wall median {statistics.median(walls):.2f} s, process CPU median "
                  f"{statistics.median(cpus):.2f} s ({args.runs} runs); load average "
                  f"{os.getloadavg()[0]:.2f}")
        finally:
            engine.dispose()
            if schema is not None and args.url:
                drop_schema(args.url, schema)


if __name__ == "__main__":
    main()
