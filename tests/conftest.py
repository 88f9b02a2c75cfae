"""Shared fixtures: a store URL for every backend, an engine on it, spool file writing.

PostgreSQL runs when LBVM_TEST_DATABASE_URL is set; each test gets its own schema (through
the connection's search_path), dropped afterwards, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings
from sqlalchemy.engine import Engine, make_url

from lblog import spool
from lblog.sample import NodeTotals, Sample, VeRow
from lbvm.store.engine import connect

# CI replays the same examples every run (a red build is then always reproducible); local
# runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

PG_ENV = "LBVM_TEST_DATABASE_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lbvm.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` with the tables created."""
    engine = connect(db_url)
    yield engine
    engine.dispose()


def make_sample(
    node: str,
    t: float,
    ves: Sequence[VeRow] = (),
    *,
    busy: int = 0,
    idle: int = 0,
    cpus: int = 8,
    mem: int = 32 << 30,
    cpu_hz: int = 100,
    jiffies_hz: int = 100,
) -> Sample:
    """A node's sample with the given VE rows and node counters (other totals fixed)."""
    totals = NodeTotals(
        cpus=cpus,
        cpu_busy_raw=busy,
        cpu_idle_raw=idle,
        mem_total_bytes=mem,
        mem_available_bytes=mem // 2,
        load1=1.0,
        load5=1.0,
        load15=1.0,
        disk_total_bytes=1 << 40,
        disk_free_bytes=1 << 39,
    )
    return Sample(node, float(t), "openvz", cpu_hz, jiffies_hz, totals, tuple(ves))


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def write_sample(spool_dir: Path) -> Callable[..., Path]:
    """write_sample(node, t, ves, **totals) -> path of the spool file written."""

    def write(node: str, t: float, ves: Sequence[VeRow] = (), **kw: int) -> Path:
        return spool.write(spool_dir, make_sample(node, t, ves, **kw))

    return write
