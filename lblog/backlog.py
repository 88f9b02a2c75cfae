"""The local backlog: samples kept on the node while the shared spool is unreachable.

Files are spool documents under their spool names, written atomically. The backlog is
bounded: when full the OLDEST sample goes and a ``dropped`` counter file says how many went.
``flush`` moves them into the spool, oldest first, each removed only once the spool holds it.
Paths are strings (``os.path``): the agent does not import pathlib.
"""

from __future__ import annotations

import contextlib
import os

from lblog import spool
from lblog.atomic import write_atomic
from lblog.errors import ParseError
from lblog.lazylog import get_logger
from lblog.sample import Sample

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from lblog.procfile import StrPath

log = get_logger(__name__)

DEFAULT_DIR = "/var/lib/lblog/backlog"
DEFAULT_MAX = 2016  # a week of 5-minute samples
DROPPED = "dropped"
BAD = "bad"  # unreadable backlog files are moved here, never deleted


def pending(backlog: StrPath) -> list[str]:
    """Backlog samples, oldest first (by the UTC stamp in the name); [] when no backlog."""
    try:
        names = [
            n for n in os.listdir(backlog) if n.endswith(spool.SUFFIX) and not n.startswith(".")
        ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    names.sort(key=lambda n: (n[n.rfind("-") + 1 :], n))
    return [os.path.join(backlog, n) for n in names]


def dropped(backlog: StrPath) -> int:
    """How many samples the backlog has dropped since it was created."""
    path = os.path.join(backlog, DROPPED)
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        return 0
    try:
        return max(0, int(text.strip()))
    except ValueError:
        log.warning("%s: unreadable drop counter %r, counting from 0", path, text[:40])
        return 0


def save(backlog: StrPath, sample: Sample, max_files: int = DEFAULT_MAX) -> tuple[str, int]:
    """Keep ``sample`` in the backlog; return its path and how many old samples were dropped.

    Makes room first, so the backlog never holds more than ``max_files`` samples.
    """
    if max_files < 1:
        raise ValueError(f"backlog size must be at least 1, not {max_files}")
    backlog = os.fspath(backlog)
    os.makedirs(backlog, exist_ok=True)
    old = pending(backlog)
    excess = old[: max(0, len(old) - max_files + 1)]
    for path in excess:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if excess:
        _write_atomic(backlog, DROPPED, f"{dropped(backlog) + len(excess)}\n".encode())
        log.warning(
            "backlog %s full (%d): dropped the %d oldest sample(s)", backlog, max_files, len(excess)
        )
    path = _write_atomic(backlog, spool.file_name(sample), spool.encode(sample))
    return path, len(excess)


def flush(backlog: StrPath, spool_dir: StrPath) -> tuple[int, OSError | None]:
    """Move backlog samples into ``spool_dir``, oldest first.

    Returns how many moved and the OSError that stopped it (None when all moved): the rest
    stay for the next run. A backlog file that cannot be read is moved to
    ``<backlog>/bad/`` and logged, never deleted.
    """
    moved = 0
    for path in pending(backlog):
        try:
            sample = spool.to_sample(spool.read(path))
        except (ParseError, TypeError, ValueError, KeyError) as exc:
            bad = os.path.join(backlog, BAD)
            os.makedirs(bad, exist_ok=True)
            os.replace(path, os.path.join(bad, os.path.basename(path)))
            log.error("backlog file %s is unreadable (%s); kept in %s", path, exc, bad)
            continue
        try:
            spool.put(spool_dir, sample)
        except OSError as exc:
            return moved, exc
        os.unlink(path)
        moved += 1
    return moved, None


def _write_atomic(directory: str, name: str, data: bytes) -> str:
    return write_atomic(os.path.join(directory, name), data)
