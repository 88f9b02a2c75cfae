"""The mover lease: atomic on SQLite and PostgreSQL, proven with two real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from lbvm import lease
from lbvm.errors import StoreError
from lbvm.store.schema import leases

PG_URL = os.environ.get("LBVM_TEST_DATABASE_URL")


def _sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lease.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("LBVM_TEST_DATABASE_URL is not set: no PostgreSQL to test against")
        return PG_URL
    return _sqlite_url(tmp_path)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = create_engine(url)
    leases.create(eng, checkfirst=True)
    yield eng
    eng.dispose()


@pytest.fixture
def name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"  # isolates tests sharing one PostgreSQL database


def test_first_taker_wins_until_expiry(engine: Engine, name: str) -> None:
    assert lease.acquire(engine, name, "a", 10, now=1000)
    assert not lease.acquire(engine, name, "b", 10, now=1005)
    assert lease.holder(engine, name, now=1005) == "a"
    assert lease.acquire(engine, name, "b", 10, now=1010.5)  # a's lease ran out at 1010
    assert lease.holder(engine, name, now=1011) == "b"
    assert not lease.renew(engine, name, "a", 10, now=1011)


def test_holder_reacquires_and_renews(engine: Engine, name: str) -> None:
    assert lease.acquire(engine, name, "a", 10, now=1000)
    assert lease.acquire(engine, name, "a", 10, now=1008)  # extending one's own lease
    assert lease.renew(engine, name, "a", 10, now=1015)
    assert not lease.acquire(engine, name, "b", 10, now=1024)  # renewed until 1025
    assert lease.holder(engine, name, now=1026) is None


def test_release_frees_only_for_the_holder(engine: Engine, name: str) -> None:
    assert lease.acquire(engine, name, "a", 60, now=1000)
    assert not lease.release(engine, name, "b")
    assert lease.holder(engine, name, now=1001) == "a"
    assert lease.release(engine, name, "a")
    assert lease.holder(engine, name, now=1001) is None
    assert lease.acquire(engine, name, "b", 60, now=1002)


def test_bad_arguments_raise(engine: Engine) -> None:
    with pytest.raises(StoreError, match="ttl"):
        lease.acquire(engine, "x", "a", 0)
    with pytest.raises(StoreError, match="lease name"):
        lease.acquire(engine, "", "a", 1)
    with pytest.raises(StoreError, match="lease name"):
        lease.acquire(engine, "n" * 65, "a", 1)


def test_keeper_renews_and_notices_loss(engine: Engine, name: str) -> None:
    clock = [1000.0]
    assert lease.acquire(engine, name, "a", 0.3, now=clock[0])
    with lease.Keeper(engine, name, "a", 0.3, clock=lambda: clock[0]) as keeper:
        keeper._stop.wait(0.25)  # two renewals at ttl/3
        assert lease.holder(engine, name, now=1000.25) == "a"
        clock[0] = 2000.0
        lease.release(engine, name, "a")
        assert lease.acquire(engine, name, "b", 60, now=2000)
        assert keeper.lost.wait(2)


# -- two real processes ---------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys
    from sqlalchemy import create_engine
    from lbvm import lease
    engine = create_engine(sys.argv[1])
    me = sys.argv[2]
    for line in sys.stdin:
        cmd, name, *rest = line.split()
        if cmd == "acquire":
            now = float(rest[1]) if len(rest) > 1 else None
            out = lease.acquire(engine, name, me, float(rest[0]), now=now)
        elif cmd == "release":
            out = lease.release(engine, name, me)
        else:
            out = lease.holder(engine, name)
        print(out, flush=True)
    """
)


class Worker:
    def __init__(self, url: str, me: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, url, me],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        assert code == 0


@pytest.mark.slow
def test_two_processes_contend(url: str, engine: Engine, name: str) -> None:
    a, b = Worker(url, "proc-a"), Worker(url, "proc-b")
    try:
        for rnd in range(20):
            lease_name = f"{name}-{rnd}"
            a.send(f"acquire {lease_name} 600")  # both fire before either answer is read
            b.send(f"acquire {lease_name} 600")
            wins = [a.answer(), b.answer()]
            assert sorted(wins) == ["False", "True"], wins
            winner, loser = (a, b) if wins[0] == "True" else (b, a)
            loser.send(f"acquire {lease_name} 600")
            assert loser.answer() == "False"
            winner.send(f"release {lease_name}")
            assert winner.answer() == "True"
            loser.send(f"acquire {lease_name} 600")
            assert loser.answer() == "True"
        # expiry: the loser gets it only once the winner's lease has run out
        a.send(f"acquire {name}-exp 10 1000")
        assert a.answer() == "True"
        b.send(f"acquire {name}-exp 10 1009")
        assert b.answer() == "False"
        b.send(f"acquire {name}-exp 10 1011")
        assert b.answer() == "True"
        a.send(f"holder {name}-exp")
        assert a.answer() in ("None", "proc-b")  # wall clock is long past 1021: expired
    finally:
        a.close()
        b.close()


def test_break_dead_frees_a_dead_local_holder(engine: Engine, name: str) -> None:
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=30)
    ghost = f"{socket.gethostname()}:{dead.stdout.strip()}"
    assert lease.acquire(engine, name, ghost, 600)
    assert not lease.acquire(engine, name, lease.default_holder(), 600)
    assert lease.break_dead(engine, name)
    assert lease.acquire(engine, name, lease.default_holder(), 600)


def test_break_dead_leaves_live_and_foreign_holders(engine: Engine, name: str) -> None:
    import socket

    live = f"{socket.gethostname()}:1"  # init is always alive
    assert lease.acquire(engine, name, live, 600)
    assert not lease.break_dead(engine, name)
    lease.release(engine, name, live)
    assert lease.acquire(engine, name, "other-host.example.org:12345", 600)
    assert not lease.break_dead(engine, name)
    assert lease.holder(engine, name) == "other-host.example.org:12345"
