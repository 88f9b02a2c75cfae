"""One rebalancing cycle: problem -> plan -> validation -> (execution), always on the record.

This is the single code path behind ``lbm rebalance``, ``lbm migrate``, the demo, the
monitor and the simulator. Ingesting is the caller's job (it comes first). Each cycle leaves
a ``runs`` row: 'done', 'failed' (an error or a failed move) or 'refused' (the validator
said no, and nothing was executed). Executing takes the store's mover lease, so only one
actor moves VEs at a time.

A cycle is two steps so a CLI can show the plan and ask before acting: ``prepare`` (or
``prepare_move`` for one operator-chosen move) opens the run, plans and validates;
``apply_plan`` executes or not and closes the run. ``run_cycle`` does both.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace

from sqlalchemy import Engine

from algorithms import registry
from algorithms.base import Algorithm, Move, MoveKind, Plan, Problem
from algorithms.errors import AlgorithmError
from lbvm import journal, lease
from lbvm.automation import cooldown_mask
from lbvm.config import Config
from lbvm.errors import ExecutorError, LbvmError, NotFound
from lbvm.executor import Backend, Limits, MoveResult, backend_from_config, execute
from lbvm.model import build_problem
from lbvm.store.events import record_event
from lbvm.validate import validate

log = logging.getLogger(__name__)

LEASE_TTL = 60.0  # seconds; renewed every third of it while moves run


@dataclass(frozen=True)
class Prepared:
    """An open run with its plan; ``reasons`` non-empty means the plan must be refused."""

    run_id: int
    problem: Problem
    plan: Plan
    reasons: tuple[str, ...]
    now: float | None = None  # the caller's clock, when it gave one (cooldowns start there)


@dataclass(frozen=True)
class CycleResult:
    """What a cycle decided and did."""

    run_id: int
    problem: Problem
    plan: Plan
    reasons: tuple[str, ...]  # the validator's; non-empty: refused, nothing executed
    results: tuple[MoveResult, ...]  # one per move when executed, else empty
    status: str  # done | failed | refused

    @property
    def valid(self) -> bool:
        return not self.reasons


def _event(engine: Engine, level: str, subject: str | None, message: str) -> None:
    with engine.begin() as conn:
        record_event(conn, level, "run", subject, message)


def _fail(engine: Engine, run_id: int, exc: BaseException, plan: Plan | None = None) -> None:
    """Close the run as failed and say why; the caller re-raises."""
    message = str(exc) or type(exc).__name__
    before = plan.score_before if plan else None
    after = plan.score_after if plan else None
    journal.finish_run(engine, run_id, "failed", before, after, message)
    _event(engine, "error", f"run {run_id}", f"run {run_id} failed: {message}")


def prepare(
    engine: Engine,
    config: Config,
    *,
    algorithm: str | Algorithm | None = None,
    kind: str = "plan",
    now: float | None = None,
) -> Prepared:
    """Open a run, build the problem, plan with ``algorithm`` (default: the configured one)
    and validate. Errors (StaleData, UnknownAlgorithm, ...) close the run 'failed' first.

    VEs in their cooldown (moved, or failed to move, recently) are not movable here."""
    chosen = config.balance.algorithm if algorithm is None else algorithm
    label = chosen if isinstance(chosen, str) else type(chosen).name
    run_id = journal.start_run(engine, kind, label)
    try:
        algo = registry.load(chosen) if isinstance(chosen, str) else chosen
        problem = cooled(engine, build_problem(engine, config, now=now, algorithm=label), now)
        plan = algo.plan(problem)
        reasons = tuple(validate(problem, plan))
    except (LbvmError, AlgorithmError) as exc:
        _fail(engine, run_id, exc)
        raise
    return Prepared(run_id, problem, plan, reasons, now)


def cooled(engine: Engine, problem: Problem, now: float | None) -> Problem:
    """The problem with VEs still in their cooldown made not movable."""
    cooling = cooldown_mask(engine, problem.ves, time.time() if now is None else now)
    if not cooling.any():
        return problem
    return replace(problem, movable=problem.movable & ~cooling)


def prepare_move(
    engine: Engine,
    config: Config,
    ve: str,
    node: str,
    *,
    now: float | None = None,
    force: bool = False,
) -> Prepared:
    """Open a 'migrate' run for moving ``ve`` to ``node``, validated like any plan.

    An operator's move must also keep the should-rules (preferences) unless ``force``;
    must-rules (capacity, failover, pins, maintenance, HA) hold whatever ``force`` says.
    """
    run_id = journal.start_run(engine, "migrate", "manual")
    try:
        problem = build_problem(engine, config, now=now)
        plan, reasons = one_move_plan(problem, ve, node)
        reasons += tuple(validate(problem, plan, strict_should=not force))
    except LbvmError as exc:
        _fail(engine, run_id, exc)
        raise
    return Prepared(run_id, problem, plan, reasons, now)


def check_stored(
    engine: Engine, config: Config, plan_id: int, *, now: float | None = None
) -> tuple[journal.StoredPlan, Problem, Plan, tuple[str, ...]]:
    """A stored plan checked against the cluster as it is now: (stored, problem, plan with
    today's scores, reasons to refuse it). A plan no longer open, or whose moves no longer
    validate (a VE moved since, a node filled up), has reasons. Cooldowns do not apply: the
    operator chose these moves."""
    stored = journal.get_plan(engine, plan_id)
    problem = build_problem(engine, config, now=now)
    reasons = list(validate(problem, stored.plan))
    if stored.state != "open":
        reasons.insert(0, f"plan {plan_id} is {stored.state}, not open")
    after = problem.placement.copy()
    if not reasons:
        index = {v: i for i, v in enumerate(problem.ves)}
        nodes = {n: i for i, n in enumerate(problem.nodes)}
        for m in stored.plan.moves:
            after[index[m.ve]] = nodes[m.dst]
    plan = replace(stored.plan, score_before=problem.score(), score_after=problem.score(after))
    return stored, problem, plan, tuple(reasons)


def prepare_stored(
    engine: Engine, config: Config, plan_id: int, *, now: float | None = None
) -> tuple[Prepared, journal.StoredPlan]:
    """Open an 'apply' run for a stored plan, checked by ``check_stored``: with reasons,
    ``apply_plan`` refuses it whole, never in part."""
    algorithm = journal.get_plan(engine, plan_id).plan.algorithm  # an unknown id opens no run
    run_id = journal.start_run(engine, "apply", algorithm)
    try:
        stored, problem, plan, reasons = check_stored(engine, config, plan_id, now=now)
    except LbvmError as exc:
        _fail(engine, run_id, exc)
        raise
    return Prepared(run_id, problem, plan, reasons, now), stored


def one_move_plan(problem: Problem, ve: str, node: str) -> tuple[Plan, tuple[str, ...]]:
    """The plan moving ``ve`` to ``node``, and reasons to refuse it the validator cannot see."""
    try:
        v = problem.ves.index(ve)
    except ValueError:
        raise NotFound(f"VE {ve!r} has no recent samples in the store") from None
    try:
        n = problem.nodes.index(node)
    except ValueError:
        raise NotFound(f"node {node!r} is not a node of a configured pair") from None
    s = int(problem.placement[v])
    same_pair = bool(problem.pair[s] >= 0 and problem.pair[s] == problem.pair[n])
    kind: MoveKind = "switchover" if same_pair else "migrate"
    after = problem.placement.copy()
    after[v] = n
    cost = int(problem.move_cost[v, 0 if same_pair else 1])
    move = Move(ve, problem.nodes[s], node, kind, "requested by the operator", cost)
    plan = Plan("manual", (move,), problem.score(), problem.score(after))
    # The validator refuses a move to the node it starts from too, in its own words.
    return plan, ((f"VE {ve} is already on {node}",) if s == n else ())


def apply_plan(
    engine: Engine,
    config: Config,
    prepared: Prepared,
    *,
    execute: bool,
    backend: Backend | None = None,
    stop: threading.Event | None = None,
) -> CycleResult:
    """Close the run: refuse an invalid plan, else execute it (when asked) under the lease."""
    run_id, problem, plan, reasons = (
        prepared.run_id, prepared.problem, prepared.plan, prepared.reasons
    )
    if reasons:
        message = f"plan refused: {'; '.join(reasons)}"
        journal.finish_run(engine, run_id, "refused", plan.score_before, plan.score_after, message)
        _event(engine, "warning", f"run {run_id}", message)
        log.info("run %s: %s", run_id, message)
        return CycleResult(run_id, problem, plan, reasons, (), "refused")
    if not execute or not plan.moves:
        message = f"{len(plan.moves)} move(s) {'executed' if execute else 'planned, not executed'}"
        journal.finish_run(engine, run_id, "done", plan.score_before, plan.score_after, message)
        return CycleResult(run_id, problem, plan, (), (), "done")
    try:
        results = _execute_leased(engine, config, plan, backend, run_id, stop, prepared.now)
    except BaseException as exc:
        _fail(engine, run_id, exc, plan)
        raise
    counts = {s: sum(r.state == s for r in results) for s in ("done", "failed", "skipped")}
    status = "done" if counts["done"] == len(results) else "failed"
    message = ", ".join(f"{v} {k}" for k, v in counts.items() if v) + f" of {len(results)} moves"
    journal.finish_run(engine, run_id, status, plan.score_before, plan.score_after, message)
    level = "info" if status == "done" else "error"
    _event(engine, level, f"run {run_id}", f"run {run_id} ({plan.algorithm}): {message}")
    return CycleResult(run_id, problem, plan, (), tuple(results), status)


def run_cycle(
    engine: Engine,
    config: Config,
    *,
    algorithm: str | Algorithm | None = None,
    execute: bool,
    backend: Backend | None = None,
    now: float | None = None,
    kind: str | None = None,
    stop: threading.Event | None = None,
) -> CycleResult:
    """prepare + apply_plan: plan, validate, and execute when ``execute`` and valid.

    Raises what planning raises (StaleData, UnknownAlgorithm, ...) and ExecutorError when
    the moves cannot start; the run row is closed 'failed' first. A refused plan is not an
    error: the result carries the validator's reasons.
    """
    kind = kind or ("rebalance" if execute else "plan")
    prepared = prepare(engine, config, algorithm=algorithm, kind=kind, now=now)
    return apply_plan(engine, config, prepared, execute=execute, backend=backend, stop=stop)


def migrate_one(
    engine: Engine,
    config: Config,
    ve: str,
    node: str,
    *,
    execute: bool,
    backend: Backend | None = None,
    now: float | None = None,
) -> CycleResult:
    """prepare_move + apply_plan: one operator-chosen move, validated and journalled."""
    prepared = prepare_move(engine, config, ve, node, now=now)
    return apply_plan(engine, config, prepared, execute=execute, backend=backend)


class _Either:
    """Set when either event is: the lease was lost or the caller is stopping."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


def _execute_leased(
    engine: Engine,
    config: Config,
    plan: Plan,
    backend: Backend | None,
    run_id: int,
    stop: threading.Event | None = None,
    now: float | None = None,
) -> list[MoveResult]:
    me = lease.default_holder()
    lease.break_dead(engine, lease.MOVER)  # a crashed lbm on this host need not block us
    if not lease.acquire(engine, lease.MOVER, me, LEASE_TTL):
        other = lease.holder(engine, lease.MOVER) or "another actor"
        raise ExecutorError(f"VEs are being moved by {other}; try again when it is done")
    try:
        _forget_running(engine, run_id)
        chosen = backend if backend is not None else backend_from_config(config, engine)
        with lease.Keeper(engine, lease.MOVER, me, LEASE_TTL) as keeper:
            either = _Either(keeper.lost, stop)
            return execute(engine, plan, chosen, run_id=run_id, stop=either,
                           limits=Limits.from_config(config), now=now)
    finally:
        lease.release(engine, lease.MOVER, me)


def _forget_running(engine: Engine, run_id: int) -> None:
    """Moves left 'running' by an actor that died: their outcome is unknown.

    We hold the mover lease, so nobody else is running them. Marking them 'unknown' keeps
    the journal honest; the next ingest shows where those VEs really are.
    """
    for row in journal.running_moves(engine):
        journal.mark_finished(
            engine, row.id, "unknown", None, f"found running when run {run_id} started"
        )
        _event(
            engine,
            "warning",
            row.ve,
            f"move {row.id} of VE {row.ve} ({row.src} -> {row.dst}) never finished; "
            "marked unknown",
        )
