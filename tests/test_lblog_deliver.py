"""Delivery of samples: spool, flock, and the local backlog while the spool is away."""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import threading
from pathlib import Path

import pytest

from lblog import atomic, backlog, lock, spool
from lblog.deliver import deliver
from lblog.errors import SpoolError
from lblog.lock import LockBusy, locked
from lblog.sample import NodeTotals, Sample, VeRow

T0 = 1_700_000_000.0


def sample(t: float = T0, node: str = "node1") -> Sample:
    totals = NodeTotals(2, 100, 900, 8 << 30, 4 << 30, 0.5, 0.25, 0.125)
    ves = (VeRow("101", 5, 60.0, 4096, None, None, None, None, 0, {"physpages": (1, 2, 0, 9, 0)}),)
    return Sample(node, t, "openvz", 1000, 100, totals, ves)


def spool_files(root: Path, node: str = "node1") -> list[str]:
    return sorted(p.name for p in (root / "incoming" / node).glob("*.json"))


@pytest.fixture
def dirs(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    return spool_dir, tmp_path / "backlog"


def test_writes_to_spool_under_lock(dirs):
    spool_dir, keep = dirs
    done = deliver(sample(), spool_dir, keep)
    assert not done.backlogged and done.reason is None
    assert Path(done.path).parent == spool_dir / "incoming/node1"  # paths are strings
    assert spool.read(done.path)["time"] == T0
    assert (spool_dir / "incoming/node1/.lock").exists()
    assert not keep.exists()  # no backlog made when nothing needed it


def test_missing_spool_goes_to_backlog_and_is_not_created(tmp_path):
    spool_dir, keep = tmp_path / "not-mounted", tmp_path / "backlog"
    done = deliver(sample(), spool_dir, keep)
    assert done.backlogged and "ENOENT" in (done.reason or "")
    assert not spool_dir.exists()
    assert backlog.pending(keep) == [done.path] == [str(keep / os.path.basename(done.path))]
    assert done.pending == 1


def test_spool_that_is_a_file_goes_to_backlog(tmp_path):
    spool_dir = tmp_path / "spool"
    spool_dir.write_text("not a directory")  # stands in for a read-only / broken mount
    done = deliver(sample(), spool_dir, tmp_path / "backlog")
    assert done.backlogged
    assert spool.read(done.path)["node"] == "node1"


class FailingOs:
    """``os`` for lblog.atomic, with fsync failing like a full or broken disk under ``under``
    (the spool), while the local backlog keeps working."""

    def __init__(self, err: int, under: Path) -> None:
        self.err, self.under = err, str(under.resolve())

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def fsync(self, fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(self.under):
            raise OSError(self.err, os.strerror(self.err))
        os.fsync(fd)


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EIO])
def test_write_failure_goes_to_backlog_leaving_no_partial_file(dirs, monkeypatch, err):
    spool_dir, keep = dirs
    monkeypatch.setattr(atomic, "os", FailingOs(err, spool_dir))
    done = deliver(sample(), spool_dir, keep)
    assert done.backlogged and errno.errorcode[err] in (done.reason or "")
    assert os.listdir(spool_dir / "incoming/node1") == [".lock"]  # temp file removed
    assert len(backlog.pending(keep)) == 1


def test_next_run_flushes_backlog_first_oldest_first(dirs, monkeypatch):
    spool_dir, keep = dirs
    with monkeypatch.context() as m:
        m.setattr(atomic, "os", FailingOs(errno.EIO, spool_dir))
        for i in (2, 0, 1):  # kept out of order; flushed by time
            assert deliver(sample(T0 + 300 * i), spool_dir, keep).backlogged
    kept = {(p := Path(name)).name: p.read_bytes() for name in backlog.pending(keep)}
    written: list[float] = []
    real_put = spool.put

    def recording_put(directory, s):
        written.append(s.time)
        return real_put(directory, s)

    monkeypatch.setattr(spool, "put", recording_put)
    done = deliver(sample(T0 + 900), spool_dir, keep)
    assert not done.backlogged and done.flushed == 3
    assert written == [T0, T0 + 300, T0 + 600, T0 + 900]
    assert backlog.pending(keep) == []
    for name, data in kept.items():  # the spool holds exactly what was kept...
        flushed = json.loads((spool_dir / "incoming/node1" / name).read_bytes())
        # ...but for 'written', the node's clock when the flush wrote it (for clock skew).
        assert flushed.pop("written") >= json.loads(data).pop("written", 0)
        assert flushed == {k: v for k, v in json.loads(data).items() if k != "written"}


def test_flush_interrupted_loses_nothing(dirs, monkeypatch):
    spool_dir, keep = dirs
    for i in range(3):
        backlog.save(keep, sample(T0 + i))
    real_put = spool.put
    calls = []

    def flaky(d, s):
        calls.append(s.time)
        if len(calls) == 2:
            raise OSError(errno.ESTALE, "Stale file handle")
        return real_put(d, s)

    monkeypatch.setattr(spool, "put", flaky)
    done = deliver(sample(T0 + 10), spool_dir, keep)
    assert done.backlogged and done.flushed == 1
    in_spool = {spool.read(p)["time"] for p in (spool_dir / "incoming/node1").glob("*.json")}
    in_backlog = {spool.read(p)["time"] for p in backlog.pending(keep)}
    assert in_spool == {T0}
    assert in_backlog == {T0 + 1, T0 + 2, T0 + 10}


def test_backlog_is_bounded_and_counts_drops(tmp_path):
    spool_dir, keep = tmp_path / "gone", tmp_path / "backlog"
    results = [deliver(sample(T0 + i), spool_dir, keep, backlog_max=3) for i in range(5)]
    assert [r.dropped for r in results] == [0, 0, 0, 1, 1]
    assert [spool.read(p)["time"] for p in backlog.pending(keep)] == [T0 + 2, T0 + 3, T0 + 4]
    assert backlog.dropped(keep) == 2
    assert (keep / "dropped").read_text() == "2\n"


def test_unreadable_backlog_file_is_set_aside_not_deleted(dirs, caplog):
    spool_dir, keep = dirs
    backlog.save(keep, sample(T0))
    bad = keep / "node1-20231114T220000.000000Z.json"
    bad.write_text('{"format": "lbvm-spool", "vers')
    with caplog.at_level(logging.ERROR, logger="lblog.backlog"):
        done = deliver(sample(T0 + 600), spool_dir, keep)
    assert done.flushed == 1 and not done.backlogged
    assert (keep / "bad" / bad.name).exists()
    assert "unreadable" in caplog.text
    assert len(spool_files(spool_dir)) == 2


def test_nowhere_to_write_is_an_error_and_writes_nothing(tmp_path):
    keep = tmp_path / "backlog"
    keep.write_text("a file, not a directory")
    with pytest.raises(SpoolError, match="cannot keep the sample"):
        deliver(sample(), tmp_path / "gone", keep)
    assert not (tmp_path / "gone").exists()


def test_broken_backlog_does_not_stop_a_working_spool(tmp_path):
    spool_dir, keep = tmp_path / "spool", tmp_path / "backlog"
    spool_dir.mkdir()
    keep.write_text("a file, not a directory")
    assert not deliver(sample(), spool_dir, keep).backlogged
    assert len(spool_files(spool_dir)) == 1


def test_second_run_waits_then_gives_up_clearly(dirs):
    spool_dir, keep = dirs
    node_dir = spool_dir / "incoming/node1"
    node_dir.mkdir(parents=True)
    with locked(node_dir / ".lock", 0), pytest.raises(LockBusy) as err:
        deliver(sample(), spool_dir, keep, lock_wait=0.2)
    assert "another lblog run still holds the lock" in str(err.value)
    assert spool_files(spool_dir) == []


def test_second_run_proceeds_once_the_first_is_done(dirs):
    spool_dir, keep = dirs
    node_dir = spool_dir / "incoming/node1"
    node_dir.mkdir(parents=True)
    holding, release = threading.Event(), threading.Event()

    def first_run():
        with locked(node_dir / ".lock", 0):
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=first_run)
    worker.start()
    holding.wait(10)
    threading.Timer(0.1, release.set).start()
    done = deliver(sample(), spool_dir, keep, lock_wait=30)
    worker.join()
    assert not done.backlogged and len(spool_files(spool_dir)) == 1


def test_no_flock_on_the_spool_locks_locally(dirs, monkeypatch, caplog):
    spool_dir, keep = dirs
    real_flock = fcntl.flock

    def flock(fd, op):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(spool_dir)):
            raise OSError(errno.ENOLCK, "No locks available")
        return real_flock(fd, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock)
    with caplog.at_level(logging.WARNING, logger="lblog.deliver"):
        done = deliver(sample(), spool_dir, keep)
    assert not done.backlogged
    assert (keep / ".lock").exists()
    assert "cannot flock" in caplog.text


def test_pending_sorts_by_time_not_node_name(tmp_path):
    for node, t in (("b-node", T0 + 5), ("a-node", T0 + 9), ("c", T0)):
        backlog.save(tmp_path, sample(t, node))
    assert [spool.read(p)["time"] for p in backlog.pending(tmp_path)] == [T0, T0 + 5, T0 + 9]
