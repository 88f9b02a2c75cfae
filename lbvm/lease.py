"""A named lease in the store: only one actor moves VEs at a time.

A lease row says who holds it and until when. Taking it is one conditional UPDATE (free when
expired or already ours) or, when no row exists yet, one INSERT that fails on the primary key
if another actor inserted first; either way the database decides, so two processes on SQLite
or PostgreSQL can never both win. Times come from the caller's clock (epoch seconds): the
machines that run monitors need synchronised clocks (NTP), and ``ttl`` should dwarf their skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable

from sqlalchemy import Engine, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from lbvm.errors import StoreError
from lbvm.store.schema import leases

log = logging.getLogger(__name__)

MOVER = "mover"  # the lease every actor that moves VEs takes


def default_holder() -> str:
    """host:pid — unique per process, and tells an operator where the holder runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _check(name: str, holder: str, ttl: float | None = None) -> None:
    if not name or len(name) > 64:
        raise StoreError(f"lease name {name!r} must be 1 to 64 characters")
    if not holder or len(holder) > 255:
        raise StoreError(f"lease holder {holder!r} must be 1 to 255 characters")
    if ttl is not None and not ttl > 0:
        raise StoreError(f"lease {name}: ttl must be positive, not {ttl!r}")


def acquire(
    engine: Engine, name: str, holder: str, ttl: float, *, now: float | None = None
) -> bool:
    """Take (or extend) the lease for ``ttl`` seconds; True when ``holder`` has it now."""
    _check(name, holder, ttl)
    ts = time.time() if now is None else float(now)
    try:
        with engine.begin() as conn:
            taken = conn.execute(
                update(leases)
                .where(
                    leases.c.name == name,
                    or_(leases.c.expires_at < ts, leases.c.holder == holder),
                )
                .values(holder=holder, acquired_at=ts, expires_at=ts + ttl)
            ).rowcount
        if taken == 1:
            return True
        with engine.begin() as conn:
            conn.execute(
                insert(leases).values(name=name, holder=holder, acquired_at=ts, expires_at=ts + ttl)
            )
        return True
    except IntegrityError:
        return False  # the row exists: someone else holds it (or inserted it just now)
    except OperationalError as exc:
        if "locked" in str(exc).lower():  # SQLite busy past its timeout: another writer won
            return False
        raise StoreError(f"lease {name}: {exc.orig}") from exc


def renew(engine: Engine, name: str, holder: str, ttl: float, *, now: float | None = None) -> bool:
    """Push the expiry out by ``ttl``; False when the lease is no longer ours.

    Renewal succeeds even just after expiry as long as nobody else took the lease: taking it
    changes the holder, so ``holder == me`` is proof nobody else acted in between.
    """
    _check(name, holder, ttl)
    ts = time.time() if now is None else float(now)
    with engine.begin() as conn:
        changed = conn.execute(
            update(leases)
            .where(leases.c.name == name, leases.c.holder == holder)
            .values(expires_at=ts + ttl)
        ).rowcount
    return changed == 1


def release(engine: Engine, name: str, holder: str) -> bool:
    """Give the lease up; False when it was not ours (expired and taken, or never held)."""
    _check(name, holder)
    with engine.begin() as conn:
        gone = conn.execute(
            delete(leases).where(leases.c.name == name, leases.c.holder == holder)
        ).rowcount
    return gone == 1


def break_dead(engine: Engine, name: str) -> bool:
    """Free the lease if its holder ran on this host and that process is gone.

    A monitor restarted after a crash need not wait for its predecessor's lease to expire.
    Holders are ``host:pid`` (see ``default_holder``); anything else is left alone, and so is
    a live pid (even one reused by another program: waiting for expiry is the safe side).
    """
    current = holder(engine, name)
    host, _, pid = (current or "").rpartition(":")
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
        return False  # alive (or alive as someone else's process)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    with engine.begin() as conn:
        gone = conn.execute(
            delete(leases).where(leases.c.name == name, leases.c.holder == current)
        ).rowcount
    if gone:
        log.warning("event=lease_broken lease=%s dead_holder=%s", name, current)
    return gone == 1


def holder(engine: Engine, name: str, *, now: float | None = None) -> str | None:
    """Who holds the lease now, or None when it is free (no row, or expired)."""
    ts = time.time() if now is None else float(now)
    with engine.connect() as conn:
        row = conn.execute(
            select(leases.c.holder).where(and_(leases.c.name == name, leases.c.expires_at >= ts))
        ).first()
    return None if row is None else str(row[0])


class Keeper:
    """Renews a held lease from a background thread until stopped.

    ``lost`` turns true when a renewal fails (the lease expired and someone else took it, or
    the store is unreachable): the holder must then stop starting new moves.
    """

    def __init__(
        self,
        engine: Engine,
        name: str,
        holder: str,
        ttl: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine, self.name, self.holder, self.ttl = engine, name, holder, ttl
        self.clock = clock
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{name}", daemon=True)

    def __enter__(self) -> Keeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        last_ok = self.clock()
        while not self._stop.wait(self.ttl / 3):
            try:
                ok = renew(self.engine, self.name, self.holder, self.ttl, now=self.clock())
            except Exception as exc:  # the store may be briefly unreachable: retry until expiry
                log.warning("event=lease_renew_error lease=%s error=%r", self.name, exc)
                if self.clock() - last_ok < self.ttl:
                    continue
                ok = False
            if not ok:
                log.error("event=lease_lost lease=%s holder=%s", self.name, self.holder)
                self.lost.set()
                return
            last_ok = self.clock()
