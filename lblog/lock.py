"""An exclusive flock held for one agent run, so overlapping cron runs never interleave."""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager

from lblog.errors import SpoolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Iterator

    from lblog.procfile import StrPath

POLL_SECONDS = 0.05


class LockBusy(SpoolError):
    """Another run held the lock for longer than we were willing to wait."""


@contextmanager
def locked(path: StrPath, wait: float) -> Iterator[str]:
    """Hold an exclusive flock on ``path`` (created if needed) for the ``with`` block.

    Waits up to ``wait`` seconds for a run that holds it, then raises LockBusy. The file is
    never removed: unlinking a lock file lets two runs lock two different inodes. OSErrors
    other than "held by someone else" (no lock daemon on NFS, read-only) propagate.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"{path}: another lblog run still holds the lock after {wait:g} s"
                    ) from None
                time.sleep(POLL_SECONDS)
        yield os.fspath(path)
    finally:
        os.close(fd)
