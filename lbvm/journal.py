"""The migration journal, the runs ledger and stored plans, kept in the store.

Every move is a row of the ``moves`` table that only goes forward:

    planned -> running -> done | failed | unknown
    planned -> skipped | unknown

Each transition is its own committed transaction and is a conditional UPDATE (``WHERE state
IN ...``), so a crash leaves an honest row and two actors cannot both start one move.
``unknown`` is for a move whose fate we cannot tell (the executor died mid-move); a restarted
monitor reconciles those with where the VE really is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select, update

from algorithms.base import Move, Plan
from lbvm.errors import NotFound, StoreError
from lbvm.store.schema import moves, plans, runs

STATES = ("planned", "running", "done", "failed", "skipped", "unknown")
FINAL = frozenset({"done", "failed", "skipped", "unknown"})
RUN_STATUSES = ("running", "done", "failed", "refused")

# Target state -> the states it may be reached from.
_FROM: dict[str, tuple[str, ...]] = {
    "running": ("planned",),
    "done": ("running",),
    "failed": ("running",),
    "skipped": ("planned",),
    "unknown": ("planned", "running"),
}

COLUMNS = (
    "id",
    "run_id",
    "ve",
    "src",
    "dst",
    "kind",
    "state",
    "reason",
    "backend",
    "argv",
    "exit_code",
    "output",
    "planned_at",
    "started_at",
    "finished_at",
)


@dataclass(frozen=True)
class MoveRow:
    """One journal row as read back from the store."""

    id: int
    run_id: int | None
    ve: str
    src: str
    dst: str
    kind: str
    state: str
    reason: str | None
    backend: str | None
    argv: tuple[str, ...] | None
    exit_code: int | None
    output: str | None
    planned_at: float
    started_at: float | None
    finished_at: float | None


def _now(now: float | None) -> float:
    return time.time() if now is None else float(now)


# -- runs -------------------------------------------------------------------------------


def start_run(engine: Engine, kind: str, algorithm: str | None, *, now: float | None = None) -> int:
    """Open a runs row (status 'running') and return its id.

    ``kind`` says who ran it: plan, rebalance, migrate, ingest, demo, monitor, ...
    """
    if not kind or len(kind) > 32:
        raise StoreError(f"run kind {kind!r} must be 1 to 32 characters")
    with engine.begin() as conn:
        row = conn.execute(
            insert(runs)
            .values(kind=kind, algorithm=algorithm, started_at=_now(now), status="running")
            .returning(runs.c.id)
        ).one()
    return int(row[0])


def finish_run(
    engine: Engine,
    run_id: int,
    status: str,
    score_before: float | None,
    score_after: float | None,
    message: str | None,
    *,
    now: float | None = None,
) -> None:
    """Close a run with its final status ('done', 'failed' or 'refused') and scores."""
    if status not in RUN_STATUSES or status == "running":
        raise StoreError(f"run {run_id}: cannot finish with status {status!r}")
    with engine.begin() as conn:
        done = conn.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status == "running")
            .values(
                status=status,
                finished_at=_now(now),
                score_before=score_before,
                score_after=score_after,
                message=message,
            )
        ).rowcount
    if done != 1:
        raise StoreError(f"run {run_id} does not exist or is already finished")


# -- moves ------------------------------------------------------------------------------


def record_plan(
    engine: Engine,
    run_id: int | None,
    planned: Sequence[Move],
    backend: str,
    *,
    now: float | None = None,
) -> list[int]:
    """Journal every move of a plan as 'planned' in one transaction; ids in plan order."""
    if not planned:
        return []
    ts = _now(now)
    rows = [
        {
            "run_id": run_id,
            "ve": m.ve,
            "src": m.src,
            "dst": m.dst,
            "kind": m.kind,
            "state": "planned",
            "reason": m.reason or None,
            "backend": backend,
            "planned_at": ts,
        }
        for m in planned
    ]
    with engine.begin() as conn:
        result = conn.execute(
            insert(moves).returning(moves.c.id, sort_by_parameter_order=True), rows
        )
        ids = [int(r[0]) for r in result]
    return ids


def transition(
    conn: Connection,
    move_id: int,
    state: str,
    *,
    now: float | None = None,
    **values: object,
) -> None:
    """Move one row to ``state`` inside the caller's transaction, or raise StoreError.

    Used by the executor to commit a move's end together with the VE's new node.
    """
    if state not in _FROM:
        raise StoreError(f"move {move_id}: {state!r} is not a state a move can go to")
    stamp = "started_at" if state == "running" else "finished_at"
    changed = conn.execute(
        update(moves)
        .where(moves.c.id == move_id, moves.c.state.in_(_FROM[state]))
        .values(state=state, **{stamp: _now(now)}, **values)
    ).rowcount
    if changed != 1:
        current = conn.execute(select(moves.c.state).where(moves.c.id == move_id)).first()
        if current is None:
            raise NotFound(f"move {move_id} is not in the journal")
        raise StoreError(f"move {move_id} is {current[0]}; it cannot become {state}")


def mark_running(
    engine: Engine, move_id: int, argv: Sequence[str], *, now: float | None = None
) -> None:
    """planned -> running, recording the exact argv about to run (JSON list)."""
    with engine.begin() as conn:
        transition(conn, move_id, "running", now=now, argv=json.dumps(list(argv)))


def mark_finished(
    engine: Engine,
    move_id: int,
    state: str,
    exit_code: int | None,
    output: str | None,
    *,
    now: float | None = None,
) -> None:
    """running -> done | failed | unknown, or planned -> skipped | unknown."""
    if state not in FINAL:
        raise StoreError(f"move {move_id}: {state!r} is not a final state")
    with engine.begin() as conn:
        transition(conn, move_id, state, now=now, exit_code=exit_code, output=output)


def skip(
    engine: Engine, move_ids: Sequence[int], reason: str, *, now: float | None = None
) -> int:
    """Mark the still-planned moves among ``move_ids`` skipped; return how many were."""
    if not move_ids:
        return 0
    with engine.begin() as conn:
        return int(
            conn.execute(
                update(moves)
                .where(moves.c.id.in_(list(move_ids)), moves.c.state == "planned")
                .values(state="skipped", finished_at=_now(now), output=reason)
            ).rowcount
        )


def _row(r: object) -> MoveRow:
    m = r._mapping  # type: ignore[attr-defined]
    argv = tuple(json.loads(m["argv"])) if m["argv"] else None
    return MoveRow(**{**dict(m), "argv": argv})


def get_move(engine: Engine, move_id: int) -> MoveRow:
    with engine.connect() as conn:
        r = conn.execute(select(moves).where(moves.c.id == move_id)).first()
    if r is None:
        raise NotFound(f"move {move_id} is not in the journal")
    return _row(r)


def running_moves(engine: Engine) -> list[MoveRow]:
    """Moves started but never finished: what a restarted monitor must reconcile first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(moves).where(moves.c.state == "running").order_by(moves.c.id)
        ).all()
    return [_row(r) for r in rows]


def moves_frame(
    engine: Engine,
    *,
    ve: str | None = None,
    since: float | None = None,
    run_id: int | None = None,
) -> pd.DataFrame:
    """The journal as a DataFrame (columns ``COLUMNS``), oldest first.

    ``since`` filters on planned_at (epoch seconds); argv stays the stored JSON text.
    """
    q = select(moves).order_by(moves.c.planned_at, moves.c.id)
    if ve is not None:
        q = q.where(moves.c.ve == ve)
    if since is not None:
        q = q.where(moves.c.planned_at >= since)
    if run_id is not None:
        q = q.where(moves.c.run_id == run_id)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(COLUMNS))


def runs_frame(engine: Engine, *, since: float | None = None) -> pd.DataFrame:
    """The runs ledger as a DataFrame, oldest first."""
    q = select(runs).order_by(runs.c.started_at, runs.c.id)
    if since is not None:
        q = q.where(runs.c.started_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=[c.name for c in runs.columns])


# -- stored plans (the 'recommend' automation level) --------------------------------------

PLAN_STATES = ("open", "applied", "superseded")


@dataclass(frozen=True)
class StoredPlan:
    """A plan kept for ``lbm plan --apply``, with those of its moves that are mandatory."""

    id: int
    run_id: int | None
    created_at: float
    state: str
    plan: Plan
    mandatory: frozenset[Move]


def store_plan(
    engine: Engine,
    run_id: int | None,
    plan: Plan,
    *,
    mandatory: frozenset[Move] = frozenset(),
    now: float | None = None,
) -> int:
    """Keep ``plan`` as the open plan; an older open plan becomes 'superseded'."""
    doc = [
        {"ve": m.ve, "src": m.src, "dst": m.dst, "kind": m.kind, "reason": m.reason,
         "bytes": m.bytes, "mandatory": m in mandatory}
        for m in plan.moves
    ]
    with engine.begin() as conn:
        conn.execute(update(plans).where(plans.c.state == "open").values(state="superseded"))
        row = conn.execute(
            insert(plans).values(run_id=run_id, created_at=_now(now), algorithm=plan.algorithm,
                                 score_before=plan.score_before, score_after=plan.score_after,
                                 moves=json.dumps(doc), state="open").returning(plans.c.id)
        ).one()
    return int(row[0])


def get_plan(engine: Engine, plan_id: int) -> StoredPlan:
    """A stored plan by id; NotFound names it, StoreError says when its moves are unreadable."""
    with engine.connect() as conn:
        r = conn.execute(select(plans).where(plans.c.id == plan_id)).first()
    if r is None:
        raise NotFound(f"plan {plan_id} is not stored (see `lbm history`)")
    try:
        items = json.loads(r.moves)
        planned = tuple(
            Move(str(d["ve"]), str(d["src"]), str(d["dst"]), d["kind"], str(d.get("reason", "")),
                 int(d.get("bytes") or 0))
            for d in items
        )
        mandatory = frozenset(m for m, d in zip(planned, items, strict=True)
                              if d.get("mandatory"))
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreError(f"plan {plan_id}: its moves are not readable: {exc!r}") from None
    plan = Plan(r.algorithm, planned, r.score_before or 0.0, r.score_after or 0.0,
                (f"stored plan {plan_id}",))
    return StoredPlan(int(r.id), r.run_id, float(r.created_at), str(r.state), plan, mandatory)


def set_plan_state(engine: Engine, plan_id: int, state: str, *, was: str = "open") -> bool:
    """Move a stored plan from ``was`` to ``state``; False when it was not in ``was``."""
    if state not in PLAN_STATES:
        raise StoreError(f"plan {plan_id}: {state!r} is not one of {', '.join(PLAN_STATES)}")
    with engine.begin() as conn:
        changed = conn.execute(
            update(plans).where(plans.c.id == plan_id, plans.c.state == was).values(state=state)
        ).rowcount
    return changed == 1
