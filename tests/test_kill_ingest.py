"""Exactly once when the ingesting process is killed with SIGKILL, at random points and
right between a batch's commit and the move of its files: every (ve, ts) of every file is
stored once, the ledger has every file once, incoming/ ends empty, last_seen is right."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import make_sample

from lblog import spool
from lblog.sample import VeRow
from lbvm.store.engine import connect

pytestmark = pytest.mark.slow

NODES, SAMPLES, VES = 6, 50, 4  # 300 files, 1,200 VE samples
# The child: ingest in small batches; KILL_AT_MOVE=n makes it SIGKILL itself when the
# n-th batch has committed and is about to move its files.
DRIVER = """
import os, signal, sys
from lbvm.store import ingest as mod
from lbvm.store.engine import connect
url, spool, jobs, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
calls = []
real = mod._move
def move(files, where, made):
    calls.append(1)
    if kill_at and len(calls) >= 2 * kill_at - 1:
        os.kill(os.getpid(), signal.SIGKILL)
    real(files, where, made)
mod._move = move
if __name__ == "__main__":
    print("ready", flush=True)
    mod.ingest(connect(url), spool, batch_files=7, jobs=jobs)
"""


def make_spool(root: Path) -> set[tuple[str, float]]:
    """Write the spool; return every (ve, ts) it holds."""
    expected = set()
    for n in range(NODES):
        node = f"n{n}"
        folder = spool.node_dir(root, node)
        folder.mkdir(parents=True)
        for s in range(SAMPLES):
            t = 1_700_000_000.0 + 300 * s
            ves = [VeRow(f"{node}v{v}", cpu_raw=1000 * s * (v + 1), uptime=300.0 * s + 1)
                   for v in range(VES)]  # fmt: skip
            sample = make_sample(node, t, ves, busy=500 * s, idle=900 * s)
            (folder / spool.file_name(sample)).write_bytes(spool.encode(sample, time.time()))
            expected |= {(ve.ve, t) for ve in ves}
    return expected


def run_child(url: str, root: Path, jobs: int, kill_at: int, delay: float | None) -> int:
    """Run the driver; SIGKILL it ``delay`` seconds after it is ready (None: let it run)."""
    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    args = [sys.executable, "-c", DRIVER, url, str(root), str(jobs), str(kill_at)]
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE, cwd=repo) as child:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        if delay is not None:
            time.sleep(delay)
            child.send_signal(signal.SIGKILL)
        return child.wait(timeout=120)


def check_store(url: str, root: Path, expected: set[tuple[str, float]]) -> None:
    engine = connect(url)
    with engine.connect() as conn:
        samples = pd.DataFrame(conn.execute(sa.text("SELECT ve, ts FROM ve_samples")).all())
        ledger = pd.DataFrame(conn.execute(sa.text("SELECT name, status FROM spool_files")).all())
        ves = pd.DataFrame(conn.execute(sa.text("SELECT ve, node, last_seen FROM ves")).all())
        nodes = pd.DataFrame(conn.execute(sa.text("SELECT name, last_seen FROM nodes")).all())
        node_rows = conn.execute(sa.text("SELECT count(*) FROM node_samples")).scalar()
        open_runs = conn.execute(
            sa.text("SELECT count(*) FROM ingest_runs WHERE status = 'running'")
        ).scalar()
    engine.dispose()
    pairs = list(zip(samples["ve"], samples["ts"], strict=True))
    assert len(pairs) == len(set(pairs)) == len(expected)
    assert set(pairs) == expected
    assert len(ledger) == ledger["name"].nunique() == NODES * SAMPLES
    assert set(ledger["status"]) == {"ingested"}
    assert node_rows == NODES * SAMPLES and open_runs == 0
    last = 1_700_000_000.0 + 300 * (SAMPLES - 1)
    assert set(ves["last_seen"]) == {last} and set(nodes["last_seen"]) == {last}
    assert all(v.startswith(n) for v, n in zip(ves["ve"], ves["node"], strict=True))
    assert list((root / "incoming").rglob("*.json")) == []
    assert len(list((root / "done").rglob("*.json"))) == NODES * SAMPLES


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_at_random_points_loses_and_repeats_nothing(
    seed: int, db_url: str, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    template = tmp_path / "template"
    expected = make_spool(template)
    root = tmp_path / "spool"
    shutil.copytree(template, root)
    connect(db_url).dispose()  # tables exist before the first child starts
    jobs = 2 if seed == 2 else 0  # one seed parses in worker processes
    # Between commit and move: the ledger has the batch, its files are still in incoming/.
    assert run_child(db_url, root, jobs, rng.randint(1, 3), None) == -signal.SIGKILL
    assert list((root / "incoming").rglob("*.json"))
    for _ in range(2):  # anywhere: reading, writing, committing, moving, closing the run
        run_child(db_url, root, jobs, 0, rng.uniform(0.0, 0.6))
    assert run_child(db_url, root, jobs, 0, None) == 0
    check_store(db_url, root, expected)


def test_spool_fixture_is_what_the_agent_writes(tmp_path: Path) -> None:
    make_spool(tmp_path)
    doc = json.loads(next((tmp_path / "incoming").rglob("*.json")).read_bytes())
    assert doc["format"] == "lbvm-spool" and doc["written"] > 0
