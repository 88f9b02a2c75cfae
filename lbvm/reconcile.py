"""After a crash: settle the moves a dead executor left 'running' or 'planned'.

A move found 'running' is checked against where the VE really is (the backend preset's
location query, or the store for the simulate backend): on the destination it is done, on
the source failed, elsewhere or nowhere we can tell unknown; the store follows what was
found. Moves still 'planned' are skipped and their runs closed as failed. The caller holds
the mover lease, so no live executor owns these rows.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select

from lbvm import journal, presets
from lbvm.config import Config
from lbvm.store.events import record_event
from lbvm.store.queries import set_ve_node
from lbvm.store.schema import moves, runs, ves

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reconciled:
    """A move found 'running' at start and what it became: done, failed or unknown."""

    move_id: int
    ve: str
    src: str
    dst: str
    state: str
    found: str | None


def where_is(
    engine: Engine,
    config: Config,
    ve: str,
    candidates: Sequence[str],
    *,
    timeout: float = 60.0,
    run: presets.Runner = presets.run_argv,
) -> presets.Location:
    """Where ``ve`` really is: the backend preset's location query, or for the simulate
    backend the store (which is all a simulated cluster has)."""
    preset = presets.PRESETS.get(config.executor.backend)
    if preset is not None and preset.location is not None:
        return presets.locate(preset, ve, candidates, timeout=timeout, run=run)
    if config.executor.backend == "simulate":
        with engine.connect() as conn:
            node = conn.execute(select(ves.c.node).where(ves.c.ve == ve)).scalar()
        return presets.Location(node, node is not None)
    return presets.Location(None, False)  # a bare command template cannot be asked


def reconcile(
    engine: Engine,
    config: Config,
    *,
    timeout: float = 60.0,
    run: presets.Runner = presets.run_argv,
    now: float | None = None,
) -> list[Reconciled]:
    """Settle every move left 'running' (the caller holds the mover lease).

    Found on the destination: done. Still on the source: failed. Anywhere else, or nowhere
    we can tell: unknown. Wherever the VE is found, the store is told.
    """
    out = []
    rows = journal.running_moves(engine)
    for row in rows:
        loc = where_is(engine, config, row.ve, [row.dst, row.src], timeout=timeout, run=run)
        state = {row.dst: "done", row.src: "failed"}.get(loc.node or "", "unknown")
        seen = f"found on {loc.node}" if loc.node else "not found" if loc.certain else (
            "location unknown")
        message = f"reconciled after a restart: VE {row.ve} {seen}"
        with engine.begin() as conn:
            journal.transition(conn, row.id, state, now=now, output=message)
            if loc.node is not None:
                set_ve_node(conn, row.ve, loc.node)
            level = "info" if state == "done" else "warning"
            record_event(conn, level, "reconcile", row.ve,
                         f"move {row.id} ({row.src} -> {row.dst}) {state}: {seen}", now)
        log.warning("event=reconciled move=%s ve=%s src=%s dst=%s state=%s found=%s",
                    row.id, row.ve, row.src, row.dst, state, loc.node or "-")
        out.append(Reconciled(row.id, row.ve, row.src, row.dst, state, loc.node))
    _close_orphans(engine, {row.run_id for row in rows}, now)
    return out


def _close_orphans(engine: Engine, run_ids: set[int | None], now: float | None) -> None:
    """Moves still 'planned' and runs still 'running' that a dead executor left behind.

    The caller holds the mover lease, so no executor is alive to start those moves.
    """
    with engine.connect() as conn:
        planned = conn.execute(
            select(moves.c.id, moves.c.run_id).where(moves.c.state == "planned")
        ).all()
        dead_runs = {*run_ids, *(r.run_id for r in planned)} - {None}
        open_runs = conn.execute(
            select(runs.c.id).where(runs.c.id.in_(dead_runs), runs.c.status == "running")
        ).scalars().all()
    if planned:
        n = journal.skip(engine, [r.id for r in planned], "skipped: its run was interrupted",
                         now=now)
        log.warning("event=reconciled_planned skipped=%s", n)
    for run_id in open_runs:
        journal.finish_run(engine, run_id, "failed", None, None,
                           "interrupted: the process running it died", now=now)
        log.warning("event=reconciled_run run=%s status=failed", run_id)
