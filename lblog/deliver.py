"""Put one sample where the monitor will find it, or keep it locally until it can.

Under the flock ``<spool>/incoming/<node>/.lock``: flush the local backlog into the spool
(oldest first), then write the new sample. When the spool is missing, read-only, full or
failing (any OSError: ENOENT, EROFS, ENOSPC, EACCES, EIO, ESTALE, ...), the sample goes to
the backlog instead, so nothing is lost while shared storage is away. Paths are strings.
"""

from __future__ import annotations

import errno
import os
from contextlib import ExitStack

from lblog import backlog as backlog_mod
from lblog import spool
from lblog.errors import SpoolError
from lblog.lazylog import get_logger
from lblog.lock import locked
from lblog.record import Record
from lblog.sample import Sample

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lblog.procfile import StrPath

log = get_logger(__name__)

LOCK_NAME = ".lock"
DEFAULT_LOCK_WAIT = 20.0
# flock cannot work here (NFS without a lock daemon): lock locally instead, which still
# keeps this node's own runs apart, the only writers of its spool directory.
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL)


class Delivery(Record):
    """Where a sample went. ``reason`` says why the spool was not used (None when it was)."""

    _fields = ("path", "backlogged", "flushed", "dropped", "pending", "reason")
    __slots__ = _fields
    path: str
    backlogged: bool
    flushed: int
    dropped: int
    pending: int
    reason: str | None

    def __init__(
        self,
        path: str,
        backlogged: bool,
        flushed: int = 0,
        dropped: int = 0,
        pending: int = 0,
        reason: str | None = None,
    ) -> None:
        _set = object.__setattr__
        _set(self, "path", path)
        _set(self, "backlogged", backlogged)
        _set(self, "flushed", flushed)
        _set(self, "dropped", dropped)
        _set(self, "pending", pending)
        _set(self, "reason", reason)


def deliver(
    sample: Sample,
    spool_dir: StrPath,
    backlog: StrPath = backlog_mod.DEFAULT_DIR,
    *,
    backlog_max: int = backlog_mod.DEFAULT_MAX,
    lock_wait: float = DEFAULT_LOCK_WAIT,
) -> Delivery:
    """Write ``sample`` to the spool (after flushing the backlog) or to the backlog.

    Raises LockBusy when another run holds the lock too long, SpoolError when neither the
    spool nor the backlog can take the sample (then nothing was written).
    """
    spool_dir, backlog = os.fspath(spool_dir), os.fspath(backlog)
    with ExitStack() as stack:
        try:
            node_dir = _node_dir(spool_dir, sample.node)
            stack.enter_context(_lock(os.path.join(node_dir, LOCK_NAME), backlog, lock_wait))
        except OSError as exc:
            return _keep(sample, backlog, backlog_max, lock_wait, _why(spool_dir, exc))
        flushed = 0
        try:
            if backlog_mod.pending(backlog):
                stack.enter_context(locked(_lock_path(backlog), lock_wait))
                flushed, stopped = backlog_mod.flush(backlog, spool_dir)
                if stopped is not None:
                    raise stopped
            path = spool.put(spool_dir, sample)
        except OSError as exc:
            kept = _keep_unlocked(sample, backlog, backlog_max, _why(spool_dir, exc))
            return Delivery(kept.path, True, flushed, kept.dropped, kept.pending, kept.reason)
    if flushed:
        log.info("flushed %d backlog sample(s) from %s into %s", flushed, backlog, spool_dir)
    return Delivery(path, False, flushed)


def _node_dir(spool_dir: str, node: str) -> str:
    """``<spool>/incoming/<node>``, created below an EXISTING spool root only.

    A spool root that is missing is an unmounted share: creating it would write samples
    onto the node's own disk where the monitor never looks.
    """
    if not os.path.isdir(spool_dir):
        raise FileNotFoundError(errno.ENOENT, "spool directory is missing", spool_dir)
    directory = spool.node_path(spool_dir, node)
    os.makedirs(directory, exist_ok=True)
    return directory


def _lock(path: str, backlog: str, wait: float) -> ExitStack:
    """The spool lock, or a local one in the backlog when the spool cannot flock."""
    stack = ExitStack()
    try:
        stack.enter_context(locked(path, wait))
    except OSError as exc:
        if exc.errno not in _NO_FLOCK:
            raise
        log.warning("%s: cannot flock (%s); locking %s instead", path, exc.strerror, backlog)
        stack.enter_context(locked(_lock_path(backlog), wait))
    return stack


def _keep(
    sample: Sample, backlog: str, backlog_max: int, lock_wait: float, reason: str
) -> Delivery:
    try:
        with locked(_lock_path(backlog), lock_wait):
            return _keep_unlocked(sample, backlog, backlog_max, reason)
    except OSError as exc:
        raise SpoolError(f"cannot keep the sample: {reason}; backlog {backlog}: {exc}") from exc


def _keep_unlocked(sample: Sample, backlog: str, backlog_max: int, reason: str) -> Delivery:
    try:
        path, dropped = backlog_mod.save(backlog, sample, backlog_max)
    except OSError as exc:
        raise SpoolError(f"cannot keep the sample: {reason}; backlog {backlog}: {exc}") from exc
    waiting = len(backlog_mod.pending(backlog))
    log.warning("%s; sample kept in %s (%d waiting)", reason, backlog, waiting)
    return Delivery(path, True, 0, dropped, waiting, reason)


def _lock_path(backlog: str) -> str:
    """The backlog's lock file, the backlog created if needed."""
    os.makedirs(backlog, exist_ok=True)
    return os.path.join(backlog, LOCK_NAME)


def _why(spool_dir: str, exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "error")
    where = exc.filename or spool_dir
    return f"spool {spool_dir} unusable ({name}: {exc.strerror or exc} at {where})"
