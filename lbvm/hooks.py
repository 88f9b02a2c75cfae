"""The site's hook: one command told about what the monitor did, the event as JSON on stdin.

Sites use it to page someone, post to chat, or open a ticket. A hook must never stop the
monitor: a hook that is missing, fails, hangs or prints rubbish is logged and forgotten.

Events (the ``event`` key of the JSON object):
    move_done        a VE reached its destination     ve, src, dst, kind, move_id
    move_failed      a move failed or was left unknown ve, src, dst, kind, move_id, state,
                                                       reason
    hotspot          a node is over its limit          node, resource, utilisation, limit
    failover_broken  a pair cannot fail over           nodes, resource, short_by
Every event also carries ``ts`` (epoch seconds) and ``host`` (where the monitor runs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

EVENTS = frozenset({"move_done", "move_failed", "hotspot", "failover_broken"})


def run_hook(
    argv: Sequence[str] | None, event: Mapping[str, Any], timeout: float = 30
) -> bool:
    """Run the hook with ``event`` on stdin; True when it exited 0. Never raises.

    ``argv`` None (no hook configured) does nothing and returns False.
    """
    if not argv:
        return False
    kind = event.get("event")
    if kind not in EVENTS:
        log.warning("event=hook_skipped reason=unknown_event kind=%r", kind)
        return False
    payload = {"ts": time.time(), "host": socket.gethostname(), **event}
    try:
        data = json.dumps(payload, sort_keys=True, default=str)
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a timeout can stop the hook's children too
        )
    except (OSError, ValueError, TypeError) as exc:
        log.error("event=hook_error hook=%s kind=%s error=%r", argv[0], kind, str(exc))
        return False
    try:
        out, err = proc.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        log.error("event=hook_timeout hook=%s kind=%s timeout=%s", argv[0], kind, timeout)
        return False
    except OSError as exc:  # e.g. the hook exited without reading stdin
        proc.kill()
        proc.communicate()
        log.error("event=hook_error hook=%s kind=%s error=%r", argv[0], kind, str(exc))
        return False
    if proc.returncode != 0:
        tail = (err or out).strip().splitlines()[-1:] or [""]
        log.error(
            "event=hook_failed hook=%s kind=%s exit=%s output=%r",
            argv[0], kind, proc.returncode, tail[0][:200],
        )
        return False
    log.info("event=hook_ran hook=%s kind=%s", argv[0], kind)
    return True
