"""Atomic file writes: temp name in the same folder, fsync, rename, fsync of the folder.

A reader sees the whole file or none of it. The temp name is ``.<name>.<pid>.tmp`` opened
with O_EXCL: readers skip names starting with '.', concurrent writers never share one, and
the agent avoids the tempfile module (it pulls shutil and the compression modules into every
cron run). Paths are strings (``os.path``): the agent does not import pathlib.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lblog.procfile import StrPath


def write_atomic(path: StrPath, data: bytes, *, mode: int = 0o644) -> str:
    """Write ``data`` to ``path`` atomically and durably; return ``path`` as a string."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    _remove(tmp)  # left by a killed run that had our pid: ours to remove
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    dfd = os.open(folder or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return path


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
