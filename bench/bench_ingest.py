"""Time `ingest` of a generated spool: N nodes x V VEs x S samples (one file per node per
sample), into SQLite (a temp file) and/or PostgreSQL (--url, in a scratch schema dropped
afterwards). Prints files/s, VE rows/s and total seconds per backend, the CPU seconds of
the ingesting process and of its parsing processes, and the load average.

The spool is copied for each backend as hard links (ingest moves files, it never writes
them), so ``--spool DIR`` can keep a generated spool and reuse it on later runs.

    .venv/bin/python bench/bench_ingest.py                       # small: 20 x 25 x 12
    .venv/bin/python bench/bench_ingest.py --nodes 200 --ves 25 --samples 288 \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/bench_ingest.py --nodes 2000 --ves 25 --samples 288   # full

Targets: 14.4 M VE samples (the full size) in <= 120 s into PostgreSQL, <= 240 s into SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from lblog import spool
from lblog.sample import NodeTotals, Sample, VeRow
from lbvm.store.engine import connect
from lbvm.store.ingest import BATCH_FILES, ingest

START = 1_700_000_000.0
STEP = 300.0


def generate(root: Path, nodes: int, ves: int, samples: int, seed: int = 1) -> int:
    """Write the spool files (plain writes: the agent's fsync is not what we measure)."""
    rng = np.random.default_rng(seed)
    use = rng.gamma(2.0, 0.3, size=(nodes, ves)) * 100  # jiffies per second per VE
    count = 0
    for n in range(nodes):
        name = f"node{n:04d}"
        folder = root / "incoming" / name
        folder.mkdir(parents=True)
        for s in range(samples):
            t = START + s * STEP
            rows = tuple(
                VeRow(
                    f"{n * ves + v}",
                    cpu_raw=int(use[n, v] * STEP * s),
                    uptime=1000.0 + STEP * s,
                    mem_bytes=int(1e9 + 1e7 * v),
                    mem_limit_bytes=4 << 30,
                    disk_bytes=int(1e10),
                    failcnt=0,
                )
                for v in range(ves)
            )
            totals = NodeTotals(16, int(s * 3e5), int(s * 1e6), 64 << 30, 32 << 30, 1, 1, 1)
            sample = Sample(name, t, "openvz", 100, 100, totals, rows)
            (folder / spool.file_name(sample)).write_bytes(spool.encode(sample, time.time()))
            count += 1
    return count


def scratch_url(url: str) -> tuple[str, str | None]:
    """PostgreSQL: a fresh schema so the bench never touches real tables."""
    if make_url(url).get_backend_name() != "postgresql":
        return url, None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), schema


def drop_schema(url: str, schema: str) -> None:
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.dispose()


def template(root: Path | None, work: Path, nodes: int, ves: int, samples: int) -> Path:
    """The generated spool: in ``root`` if given (reused when it holds the same size)."""
    where = root if root is not None else work / "template"
    size = {"nodes": nodes, "ves": ves, "samples": samples}
    stamp = where / "generated.json"
    if stamp.exists() and json.loads(stamp.read_text()) == size:
        print(f"reusing the spool in {where}")
        return where
    if where.exists():
        shutil.rmtree(where)
    began = time.perf_counter()
    files = generate(where, nodes, ves, samples)
    stamp.write_text(json.dumps(size))
    print(f"generated {files:,d} files ({files * ves:,d} VE rows) "
          f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
    return where


def _cpu() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run(url: str, template: Path, work: Path, batch_files: int, jobs: int | None) -> None:
    spool_dir = work / "spool"
    if spool_dir.exists():
        shutil.rmtree(spool_dir)
    shutil.copytree(template / "incoming", spool_dir / "incoming", copy_function=os.link)
    scoped, schema = scratch_url(url)
    try:
        engine = connect(scoped)
        load = os.getloadavg()[0]
        cpu = _cpu()
        began = time.perf_counter()
        result = ingest(engine, spool_dir, batch_files=batch_files, jobs=jobs)
        took = time.perf_counter() - began
        own, kids = (after - before for after, before in zip(_cpu(), cpu, strict=True))
        engine.dispose()
    finally:
        if schema:
            drop_schema(url, schema)
    backend = make_url(url).get_backend_name()
    print(
        f"{backend:10s} files {result.files:>8,d}  VE rows {result.ve_rows:>11,d}  "
        f"{took:8.1f} s  {result.files / took:>8,.0f} files/s  "
        f"{result.ve_rows / took:>9,.0f} rows/s"
    )
    print(
        f"{'':10s} CPU: ingest {own:.1f} s, parsing processes {kids:.1f} s; load average "
        f"{load:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    full = 14_400_000
    print(f"{'':10s} at this rate 14.4 M VE rows take {full / (result.ve_rows / took):,.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=20)
    ap.add_argument("--ves", type=int, default=25)
    ap.add_argument("--samples", type=int, default=12)
    ap.add_argument("--batch-files", type=int, default=BATCH_FILES)
    ap.add_argument("--jobs", type=int, default=None, help="parsing processes (default: ingest's)")
    ap.add_argument("--url", action="append", help="database URL (repeat for several)")
    ap.add_argument("--no-sqlite", action="store_true", help="only the --url databases")
    ap.add_argument("--spool", type=Path, help="keep the generated spool here and reuse it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lbvm-bench-") as tmp:
        work = Path(tmp)
        spool_dir = template(args.spool, work, args.nodes, args.ves, args.samples)
        urls = [] if args.no_sqlite else [f"sqlite:///{work / 'bench.db'}"]
        for url in urls + (args.url or []):
            run(url, spool_dir, work, args.batch_files, args.jobs)


if __name__ == "__main__":
    main()
