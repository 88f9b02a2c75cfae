"""Faults, with real processes: migration tools that fail, hang or lie, a database that goes
away, and monitors started together. After each: no move missing from the journal, no VE
moved twice, and the store's location of every VE is the cluster's truth.

The fake tool is tests/bin/fake-crm_resource-faulty, put on PATH as ``crm_resource``; the
cluster's truth is one file per VE in the site's ``cluster`` folder.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import Engine, select
from sqlalchemy.engine import make_url
from test_monitor import _wait_for as wait_for
from test_monitor import fake_crm_resource, make_site

from lbm.cli import main
from lbvm import journal
from lbvm.monitor import Monitor, MonitorSettings
from lbvm.store.engine import connect
from lbvm.store.schema import runs, ves

BIN = Path(__file__).resolve().parent / "bin"
PG_ENV = "LBVM_TEST_DATABASE_URL"
AUTOMATIC = MonitorSettings(automation="automatic", threshold=5)


@pytest.fixture
def faulty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A site on the crm_resource preset with the faulty fake first on PATH; its config."""
    fake_crm_resource(tmp_path, monkeypatch, "fake-crm_resource-faulty")
    cfg = make_site(tmp_path, backend="crm_resource")
    cfg.write_text(cfg.read_text().replace('timeout = "30s"', 'timeout = "1s"'))
    return cfg


def truth(site: Path) -> dict[str, str]:
    return {p.name: p.read_text().strip() for p in (site / "cluster").iterdir()
            if p.name.isdigit()}


def stored(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {str(r[0]): str(r[1]) for r in conn.execute(select(ves.c.ve, ves.c.node))}


def calls(site: Path) -> list[str]:
    log = site / "cluster" / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def check_invariants(site: Path, engine: Engine) -> None:
    """Every move settled, none started twice, the store agrees with the cluster."""
    frame = journal.moves_frame(engine)
    assert not frame["state"].isin(["planned", "running"]).any(), frame
    started = frame[frame["started_at"].notna()]
    assert len(calls(site)) == len(started)  # every tool call is a journalled move
    assert not started.duplicated(["ve", "src", "dst"]).any()
    assert stored(engine) == truth(site)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "says"),
    [("fail", "cannot run on"), ("hang", "timed out after 1 s"),
     ("lie", "reported success but VE")],
)
def test_a_bad_move_is_failed_cooled_down_and_not_retried(
    faulty: Path, monkeypatch: pytest.MonkeyPatch, fault: str, says: str
) -> None:
    monkeypatch.setenv("FAKE_FAULT", fault)
    mon = Monitor(faulty, settings=AUTOMATIC)
    result = mon.run_once(nightly=True)
    assert result.status == "failed" and result.moved == 0 and result.planned > 1
    frame = journal.moves_frame(mon.engine)
    assert frame["state"].tolist() == ["failed"] + ["skipped"] * (len(frame) - 1)
    first = frame.iloc[0]
    assert says in first["output"]
    check_invariants(faulty.parent, mon.engine)
    with mon.engine.connect() as conn:
        until = conn.execute(select(ves.c.cooldown_until).where(ves.c.ve == first["ve"])).scalar()
    assert until is not None and until > time.time() + 5 * 3600  # failed_cooldown: 6 h

    log = CliRunner().invoke(main, ["--config", str(faulty), "log", "--format", "csv"])
    assert log.exit_code == 0, log.output
    assert f"move {first['id']} failed" in log.output

    monkeypatch.delenv("FAKE_FAULT")  # the tool works again: the failed VE still waits
    again = mon.run_once(nightly=True)
    later = journal.moves_frame(mon.engine, run_id=again.run_id)
    assert again.moved > 0 and first["ve"] not in set(later["ve"])
    check_invariants(faulty.parent, mon.engine)


# -- the database goes away --------------------------------------------------------------


SERVE = """
import logging, sys
from lbvm.monitor import Monitor, MonitorSettings
logging.basicConfig(level=logging.INFO, format="%(message)s")
s = MonitorSettings(check_every=1, lease_ttl=1.5, db_retry_max=1)
m = Monitor(sys.argv[1], settings=s, wait_for_store=True)
m.install_signals()
m.serve()
"""


def serve(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("w") as err:
        return subprocess.Popen([sys.executable, "-c", SERVE, str(cfg)], stderr=err)


def stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    proc.terminate()
    code = proc.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    return text


def checks(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(runs.c.id).where(runs.c.kind == "check")).all())


@pytest.mark.slow
def test_sqlite_store_missing_at_start_then_there(tmp_path: Path) -> None:
    cfg = make_site(tmp_path)
    cfg.write_text(cfg.read_text().replace('"sqlite:///lbvm.db"', '"sqlite:///db/lbvm.db"'))
    log = tmp_path / "monitor.log"
    proc = serve(cfg, log)
    try:
        wait_for(lambda: log.read_text().count("event=store_unavailable") >= 3)
        assert proc.poll() is None  # waiting, not crashing
        (tmp_path / "db").mkdir()
        engine = connect(f"sqlite:///{tmp_path / 'db' / 'lbvm.db'}")
        wait_for(lambda: checks(engine) >= 1)
    finally:
        text = stop(proc, log)
    assert "event=store_back" in text and "event=active" in text
    lines = [ln for ln in text.splitlines() if "event=store_unavailable" in ln]
    assert "attempt=1 retry_in=1 " in lines[0] and "unable to open database file" in lines[0]


class Proxy:
    """A TCP forwarder to PostgreSQL that can be cut (connections reset, port closed) and
    restored on the same port: the database 'goes away' as for a network or server fault."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.conns: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.port))
        self.port = lsock.getsockname()[1]
        lsock.listen(16)
        self.listener = lsock
        threading.Thread(target=self._accept, args=(lsock,), daemon=True).start()

    def _accept(self, lsock: socket.socket) -> None:
        while True:
            try:
                client, _ = lsock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self.lock:
                self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                s.close()

    def cut(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.conns = []


@pytest.fixture
def pg_site(tmp_path: Path) -> Iterator[tuple[Path, Proxy, str]]:
    """A site whose store is a fresh PostgreSQL schema reached through a Proxy."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} not set")
    url = make_url(base)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    via = url.set(host="127.0.0.1", port=proxy.port).update_query_dict(
        {"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)
    direct = url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False)
    cfg = make_site(tmp_path)
    cfg.write_text(cfg.read_text().replace('"sqlite:///lbvm.db"', f'"{via}"'))
    try:
        yield cfg, proxy, direct
    finally:
        proxy.cut()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.mark.slow
@pytest.mark.postgresql
def test_postgresql_away_for_a_while(pg_site: tuple[Path, Proxy, str], tmp_path: Path) -> None:
    cfg, proxy, direct = pg_site
    engine = connect(direct)
    log = tmp_path / "monitor.log"
    proc = serve(cfg, log)
    try:
        wait_for(lambda: checks(engine) >= 2)
        proxy.cut()
        wait_for(lambda: log.read_text().count("event=store_unavailable") >= 3)
        assert proc.poll() is None
        before = checks(engine)
        proxy.start()  # same port
        wait_for(lambda: "event=store_back" in log.read_text())
        wait_for(lambda: checks(engine) > before)
    finally:
        text = stop(proc, log)
        engine.dispose()
    assert text.count("event=active ") >= 2, text  # lost the lease, took it back
    assert "Traceback" not in text.split("event=store_back")[-1]


RUN_ONCE = """
import json, sys
from lbvm.monitor import Monitor, MonitorSettings
s = MonitorSettings(automation="automatic", threshold=5, lease_ttl=30)
r = Monitor(sys.argv[1], settings=s).run_once(nightly=True)
print(json.dumps({"active": r.active, "status": r.status, "moved": r.moved}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgresql)])
def test_monitors_started_together_move_each_ve_once(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "crm_resource").symlink_to(BIN / "fake-crm_resource-faulty")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    if backend == "postgresql":
        cfg, _, direct = request.getfixturevalue("pg_site")
        monkeypatch.setenv("FAKE_CLUSTER", str(cfg.parent / "cluster"))
    else:
        cfg = make_site(tmp_path)
        direct = f"sqlite:///{tmp_path / 'lbvm.db'}"
        monkeypatch.setenv("FAKE_CLUSTER", str(tmp_path / "cluster"))
    cfg.write_text(cfg.read_text().replace('backend = "simulate"', 'backend = "crm_resource"'))
    procs = [subprocess.Popen([sys.executable, "-c", RUN_ONCE, str(cfg)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    engine = connect(direct)
    try:
        frame = journal.moves_frame(engine)
        assert len(frame) > 0 and set(frame["state"]) == {"done"}
        assert frame["run_id"].nunique() == 1  # one monitor acted
        check_invariants(cfg.parent, engine)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.postgresql
def test_postgresql_lost_mid_move_then_reconciled(
    pg_site: tuple[Path, Proxy, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg, proxy, direct = pg_site
    site = cfg.parent
    bindir = site / "bin"
    bindir.mkdir()
    (bindir / "crm_resource").symlink_to(BIN / "fake-crm_resource")  # moves, then lingers
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CLUSTER", str(site / "cluster"))
    monkeypatch.setenv("FAKE_MOVE_SLEEP", "2")
    cfg.write_text(cfg.read_text().replace('backend = "simulate"', 'backend = "crm_resource"'))
    engine = connect(direct)
    proc = subprocess.Popen([sys.executable, "-c", RUN_ONCE, str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (site / "cluster" / "moves.log").exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()  # the VE has moved, the tool lingers
        proxy.cut()  # ... and the store is gone before the move can be recorded
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "Traceback" in err
        (row,) = journal.running_moves(engine)
        proxy.start()
        monkeypatch.delenv("FAKE_MOVE_SLEEP")
        mon = Monitor(cfg)
        result = mon.run_once()
        mon.engine.dispose()
        assert [(r.move_id, r.state) for r in result.reconciled] == [(row.id, "done")]
        frame = journal.moves_frame(engine)
        assert set(frame["state"]) <= {"done", "skipped"}
        moved = (site / "cluster" / "moves.log").read_text().split("\n")
        assert moved[0].split() == [row.ve, row.dst] and moved[1:] == [""]  # moved once
        assert stored(engine) == truth(site)
    finally:
        if proc.poll() is None:
            proc.kill()
        engine.dispose()
