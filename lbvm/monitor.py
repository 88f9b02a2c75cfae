"""The LB monitor: watch the cluster on a schedule, rebalance at night, never twice at once.

Two jobs run from an APScheduler 3 scheduler whose job store lives in the LBVM database
(so a nightly run missed while the monitor was down still runs, late, within the grace):

- ``check`` (every 5 minutes): ingest the spool, build the problem, plan, report. Hot nodes
  and pairs that could not fail over go to the log and the site hook.
- ``nightly`` (02:30): the same, then act on the automation levels (the cluster's and each
  VE's own, see lbvm.automation) and the migration threshold: moves of VEs at ``report``
  are only logged, those at ``recommend`` are stored for ``lbm plan --apply``, those at
  ``automatic`` are executed; optional moves gaining too little are left out.

Only the monitor holding the ``monitor`` lease runs jobs; another one waits, passive, and
takes over when the lease expires. Before its first job an active monitor reconciles moves a
crash left 'running' with where the VEs really are. SIGHUP reloads the config; SIGTERM
stops after the move in flight is recorded. While the store is unreachable the service
retries with exponential backoff (up to ``db_retry_max``) and resumes, reconciling first.
Log lines are key=value for syslog.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from algorithms.base import Problem
from lbvm import automation, hooks, journal, lease, presets
from lbvm.config import Config, MonitorConfig, load
from lbvm.cycle import CycleResult, Prepared, apply_plan, prepare
from lbvm.errors import LbvmError, StaleData, StoreError
from lbvm.executor import MoveResult, backend_from_config
from lbvm.reconcile import Reconciled, reconcile
from lbvm.store import retention
from lbvm.store.engine import connect
from lbvm.store.events import record_event
from lbvm.store.ingest import ingest
from lbvm.store.schema import moves
from lbvm.validate import headroom

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger(__name__)

MONITOR_LEASE = "monitor"
_RACES = ("locked", "duplicate key", "already exists")


class KV:
    """A key=value log line, formatted only when a handler emits it."""

    def __init__(self, event: str, **values: object) -> None:
        self.event, self.values = event, values

    def __str__(self) -> str:
        parts = [f"event={self.event}"]
        for key, value in self.values.items():
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            if not text or any(c in text for c in ' "='):
                text = json.dumps(text)
            parts.append(f"{key}={text}")
        return " ".join(parts)


# The monitor's settings are the config's [monitor] section, declared once in lbvm.config.
MonitorSettings = MonitorConfig


def settings_from(config: Config) -> MonitorConfig:
    """The ``[monitor]`` section of the config (its defaults where the file has none)."""
    return config.monitor


# -- what a tick produced ------------------------------------------------------------------


@dataclass(frozen=True)
class TickResult:
    """One check or nightly run. status: passive | done | failed | refused | stale | error."""

    active: bool
    status: str
    run_id: int | None = None
    planned: int = 0
    moved: int = 0
    reconciled: tuple[Reconciled, ...] = ()
    message: str = ""
    stored_plan: int | None = None  # the plan kept for `lbm plan --apply` (recommend level)
    held: int = 0  # moves left out by automation levels or the threshold


def alerts(problem: Problem) -> list[dict[str, object]]:
    """Hook events for hot nodes and for pairs that could not fail over now."""
    out: list[dict[str, object]] = []
    util = problem.utilisation()
    limit = problem.settings.max_utilisation
    for n, r in zip(*np.nonzero(util > limit), strict=True):
        out.append({"event": "hotspot", "node": problem.nodes[n],
                    "resource": problem.resources[r], "utilisation": round(float(util[n, r]), 4),
                    "limit": float(limit[r])})
    degraded = problem.degraded
    why = getattr(problem, "ha_node_reasons", None)
    if degraded is not None:
        for p in np.unique(problem.pair[np.asarray(degraded, bool)]):
            idx = np.flatnonzero(problem.pair == p)
            reasons = sorted({str(why[i]) for i in idx if why is not None and why[i]})
            out.append({"event": "failover_broken", "nodes": [problem.nodes[i] for i in idx],
                        "reason": "; ".join(reasons) or "pair degraded"})
    room = headroom(problem)
    for p, r in zip(*np.nonzero(room < 0), strict=True):
        members = [problem.nodes[i] for i in np.flatnonzero(problem.pair == p)]
        out.append({"event": "failover_broken", "nodes": members,
                    "resource": problem.resources[r], "short_by": round(float(-room[p, r]), 4)})
    return out


# -- the monitor ----------------------------------------------------------------------------


class Monitor:
    """One monitor process: ``run_once`` for cron sites, ``serve`` for a long-running one."""

    def __init__(
        self,
        config_path: str | Path | None,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
        settings: MonitorSettings | None = None,
        runner: presets.Runner = presets.run_argv,
        wait_for_store: bool = False,
    ) -> None:
        """``wait_for_store``: when the store cannot be opened, retry with backoff (the
        service) instead of raising StoreError (cron runs, tests)."""
        self.config_path = config_path
        self.holder = holder or lease.default_holder()
        self.clock = clock
        self.runner = runner
        self.stopping = threading.Event()
        self.reloading = threading.Event()
        self._wake = threading.Event()  # cuts the service loop's wait short on a signal
        self._fixed = settings
        self._busy = threading.Lock()  # one job at a time, reloads wait for it
        self._store_failures = 0  # consecutive failed attempts to reach the store
        self._wait_for_store = wait_for_store
        self.config, self.settings, self.engine = self._load()

    def _load(self) -> tuple[Config, MonitorSettings, Engine]:
        config = load(self.config_path)
        settings = self._fixed or settings_from(config)
        tries = 0
        while True:
            tries += 1
            try:
                engine = connect(config.database)
            except StoreError as exc:
                # Another process creating the tables at this very moment: SQLite says
                # "locked", PostgreSQL a duplicate key in pg_type. Trying again settles it.
                busy = tries < 5 and any(w in str(exc) for w in _RACES)
                if not (self._wait_for_store or busy) or self.stopping.is_set():
                    raise
                self._wake.wait(self._store_down(exc, settings))
                self._wake.clear()
                continue
            self._store_up()
            return config, settings, engine

    def _store_down(self, exc: BaseException, settings: MonitorSettings | None = None) -> float:
        """Count a failed attempt to reach the store, log it; the seconds to wait before the
        next one: 1, 2, 4, ... up to ``db_retry_max``."""
        cap = (settings or self.settings).db_retry_max
        self._store_failures += 1
        delay = min(cap, 2.0 ** (self._store_failures - 1))
        text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        log.error("%s", KV("store_unavailable", attempt=self._store_failures,
                           retry_in=f"{delay:g}", error=text[0] if text else type(exc).__name__))
        return delay

    def _store_up(self) -> None:
        if self._store_failures:
            log.warning("%s", KV("store_back", after_attempts=self._store_failures))
        self._store_failures = 0

    # signals ------------------------------------------------------------------------------

    def install_signals(self) -> Callable[[], None]:
        """SIGTERM/SIGINT: stop after the move in flight; SIGHUP: reload the config.

        Returns a function that puts the previous handlers back.
        """
        wanted = {signal.SIGTERM: self.stop, signal.SIGINT: self.stop,
                  signal.SIGHUP: self.request_reload}
        before = {sig: signal.signal(sig, lambda *_, do=do: do()) for sig, do in wanted.items()}

        def restore() -> None:
            for sig, old in before.items():
                signal.signal(sig, old)

        return restore

    def stop(self) -> None:
        log.info("%s", KV("stopping", holder=self.holder))
        self.stopping.set()
        self._wake.set()

    def request_reload(self) -> None:
        self.reloading.set()
        self._wake.set()

    def reload(self) -> None:
        """Re-read the config (between jobs); a bad file keeps the old one and says why."""
        self.reloading.clear()
        with self._busy:
            try:
                config, settings, engine = self._load()
            except LbvmError as exc:
                log.error("%s", KV("reload_failed", error=exc))
                return
            old, self.engine = self.engine, engine
            self.config, self.settings = config, settings
            old.dispose()
        log.info("%s", KV("reloaded", config=self.config_path or "-"))

    # one run -------------------------------------------------------------------------------

    def lead(self) -> bool:
        """Take or keep the monitor lease; False: another monitor is active."""
        lease.break_dead(self.engine, MONITOR_LEASE)
        return lease.acquire(self.engine, MONITOR_LEASE, self.holder, self.settings.lease_ttl,
                             now=self.clock())

    def run_once(self, nightly: bool = False) -> TickResult:
        """One check (or nightly run) for cron sites: lead, reconcile, run, let go.

        Raises StoreError when the store cannot be reached (cron tries again next time)."""
        try:
            return self._run_once(nightly)
        except SQLAlchemyError as exc:
            self._store_down(exc)
            raise StoreError(f"the store is unreachable: {getattr(exc, 'orig', None) or exc}"
                             ) from None

    def _run_once(self, nightly: bool) -> TickResult:
        if not self.lead():
            other = lease.holder(self.engine, MONITOR_LEASE, now=self.clock())
            log.info("%s", KV("passive", holder=self.holder, active=other or "-"))
            return TickResult(False, "passive", message=f"monitor {other} is active")
        try:
            with lease.Keeper(self.engine, MONITOR_LEASE, self.holder, self.settings.lease_ttl,
                              clock=self.clock):
                return self.tick(nightly)
        finally:
            lease.release(self.engine, MONITOR_LEASE, self.holder)

    def reconcile(self) -> tuple[Reconciled, ...]:
        """Settle moves a crash left 'running', under the mover lease (skipped if it is busy)."""
        with self.engine.connect() as conn:
            unsettled = conn.execute(
                select(moves.c.id).where(moves.c.state.in_(("planned", "running"))).limit(1)
            ).first()
        if unsettled is None:
            return ()
        ttl = self.settings.lease_ttl
        lease.break_dead(self.engine, lease.MOVER)
        if not lease.acquire(self.engine, lease.MOVER, self.holder, ttl, now=self.clock()):
            other = lease.holder(self.engine, lease.MOVER, now=self.clock())
            log.info("%s", KV("reconcile_deferred", mover=other or "-"))
            return ()
        try:
            return tuple(reconcile(self.engine, self.config, timeout=self.settings.locate_timeout,
                                   run=self.runner, now=self.clock()))
        finally:
            lease.release(self.engine, lease.MOVER, self.holder)

    def tick(self, nightly: bool) -> TickResult:
        """Settle what a crash left, ingest, plan, and act on the automation level: at night on
        every move that clears the threshold, in the frequent check on mandatory moves only
        (maintenance evacuation, a pair that cannot fail over, broken must-rules), which
        should not wait for the night."""
        with self._busy:
            found = self.reconcile()
            result = replace(self._tick(nightly), reconciled=found)
        self._store_up()
        return result

    def _tick(self, nightly: bool) -> TickResult:
        job = "nightly" if nightly else "check"
        if self.stopping.is_set():
            return TickResult(True, "error", message="stopping")
        config, engine = self.config, self.engine
        now = self.clock()
        try:
            got = ingest(engine, config.spool, now=now, jobs=config.store.ingest_jobs,
                         skew_threshold=config.store.clock_skew_max)
            log.info("%s", KV("ingested", job=job, files=got.files, ve_rows=got.ve_rows,
                              quarantined=got.quarantined))
        except LbvmError as exc:  # planning on what the store has is still worth it
            log.error("%s", KV("ingest_failed", job=job, error=exc))
        if nightly:
            self._retention(engine, config, now)
        try:
            prepared = prepare(engine, config, kind=job, now=now)
            decision = None if prepared.reasons else self._decide(prepared, nightly)
            execute = decision is not None and bool(decision.execute.moves)
            todo = decision.execute if decision is not None and execute else prepared.plan
            backend = backend_from_config(config, engine, runner=self.runner) if execute else None
            cycle = apply_plan(engine, config, replace(prepared, plan=todo), execute=execute,
                               backend=backend, stop=self.stopping)
        except StaleData as exc:
            with engine.begin() as conn:
                record_event(conn, "warning", "stale", job, f"{job} refused to plan: {exc}", now)
            log.warning("%s", KV("stale_data", job=job, reason=exc))
            return TickResult(True, "stale", message=str(exc))
        except LbvmError as exc:
            log.error("%s", KV("cycle_failed", job=job, error=exc))
            return TickResult(True, "error", message=str(exc))
        self._report(job, cycle, prepared)
        stored = None
        if decision is not None and decision.recommend.moves:
            stored = journal.store_plan(engine, cycle.run_id, decision.recommend,
                                        mandatory=decision.mandatory, now=now)
            log.info("%s", KV("plan_stored", plan=stored, moves=len(decision.recommend.moves)))
            with engine.begin() as conn:
                record_event(conn, "info", "plan", f"plan {stored}",
                             f"plan {stored} stored: {len(decision.recommend.moves)} move(s) "
                             f"recommended; apply with `lbm plan --apply {stored}`", now)
        if cycle.results:
            self._after_moves(cycle.results)
        moved = sum(r.state == "done" for r in cycle.results)
        held = len(decision.held) if decision is not None else 0
        return TickResult(True, cycle.status, cycle.run_id, len(cycle.plan.moves), moved,
                          message="; ".join(cycle.reasons), stored_plan=stored, held=held)

    def _retention(self, engine: Engine, config: Config, now: float) -> None:
        """Roll raw samples up into hours and drop what is past [store] retention."""
        try:
            kept = retention.run(engine, now, config.store.raw_days, config.store.rollup_days)
            log.info("%s", KV("retention", hours=kept.hours, raw_deleted=kept.raw_deleted,
                              rollups_deleted=kept.rollups_deleted))
        except LbvmError as exc:  # the plan does not depend on it
            log.error("%s", KV("retention_failed", error=exc))

    def _decide(self, prepared: Prepared, nightly: bool) -> automation.Decision:
        """Split the plan by automation level and threshold; log what is held back.

        The frequent check uses threshold 1 (mandatory moves only) and stores no plan, so a
        site at `recommend` gets one stored plan a night, not one every few minutes.
        """
        decision = automation.decide(
            prepared.problem, prepared.plan, level=self.settings.automation,
            ve_levels=automation.ve_levels(self.engine),
            threshold=self.settings.threshold if nightly else 1,
        )
        if not nightly:
            decision = replace(decision, recommend=replace(decision.recommend, moves=()))
        for h in decision.held:
            log.info("%s", KV("move_held", run=prepared.run_id, ve=h.move.ve, src=h.move.src,
                              dst=h.move.dst, reason=h.why))
        for m in decision.mandatory:
            log.info("%s", KV("move_mandatory", run=prepared.run_id, ve=m.ve, src=m.src,
                              dst=m.dst))
        return decision

    def _report(self, job: str, cycle: CycleResult, prepared: Prepared) -> None:
        plan = cycle.plan
        log.info("%s", KV(job, run=cycle.run_id, status=cycle.status, moves=len(plan.moves),
                          proposed=len(prepared.plan.moves),
                          score_before=f"{plan.score_before:.4f}",
                          score_after=f"{plan.score_after:.4f}",
                          automation=self.settings.automation, threshold=self.settings.threshold))
        for reason in cycle.reasons:
            log.warning("%s", KV("plan_refused", run=cycle.run_id, reason=reason))
        for event in alerts(cycle.problem):
            log.warning("%s", KV(str(event["event"]), **{k: v for k, v in event.items()
                                                          if k != "event"}))
            hooks.run_hook(self.settings.hook, event, self.settings.hook_timeout)

    def _after_moves(self, results: Sequence[MoveResult]) -> None:
        """Tell the log and the hook how each move ended (the executor checked the location)."""
        for r in results:
            m = r.move
            base = {"ve": m.ve, "src": m.src, "dst": m.dst, "kind": m.kind, "move_id": r.move_id}
            if r.state == "done":
                log.info("%s", KV("move_done", **base))
                hooks.run_hook(self.settings.hook, {"event": "move_done", **base},
                               self.settings.hook_timeout)
            elif r.state in ("failed", "unknown"):
                lines = r.outcome.output.strip().splitlines()[-1:] if r.outcome else []
                reason = lines[0] if lines else ""
                log.error("%s", KV("move_failed", **base, state=r.state, reason=reason))
                hooks.run_hook(self.settings.hook, {"event": "move_failed", **base,
                               "state": r.state, "reason": reason},
                               self.settings.hook_timeout)

    # the long-running service --------------------------------------------------------------

    def serve(self) -> None:
        """Run until stopped: lead when the lease allows, run the jobs while leading."""
        from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
        from apscheduler.schedulers.background import BackgroundScheduler

        # The job store shares the store's engine (SQLite pragmas, PostgreSQL timeouts). Its
        # table is created first on its own: two monitors starting at once may race there.
        store = SQLAlchemyJobStore(engine=self.engine)
        try:
            store.jobs_t.create(self.engine, checkfirst=True)
        except SQLAlchemyError:
            log.debug("job table created by another monitor just now")
        scheduler = BackgroundScheduler(
            jobstores={"default": store},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        scheduler.start(paused=True)
        _SERVING[self.holder] = self
        log.info("%s", KV("serving", holder=self.holder, check_every=self.settings.check_every,
                          nightly_at=self.settings.nightly_at))
        active = False
        try:
            while not self.stopping.is_set():
                wait = self.settings.lease_ttl / 3
                try:
                    active = self._serve_step(scheduler, active)
                    self._store_up()
                except (LbvmError, SQLAlchemyError) as exc:  # the store may be away a while
                    wait = self._store_down(exc)
                    if active:
                        log.warning("%s", KV("passive", holder=self.holder,
                                             reason="store unreachable"))
                        scheduler.pause()
                        active = False
                self._wake.wait(wait)
                self._wake.clear()
        finally:
            scheduler.shutdown(wait=True)  # the job in flight ends after its current move
            _SERVING.pop(self.holder, None)
            try:
                lease.release(self.engine, MONITOR_LEASE, self.holder)
            except (LbvmError, SQLAlchemyError) as exc:  # it expires on its own
                log.warning("%s", KV("release_failed", error=exc))
            log.info("%s", KV("stopped", holder=self.holder))

    def _serve_step(self, scheduler: BaseScheduler, active: bool) -> bool:
        """Reload if asked, take or keep the lease, start or pause the jobs; the new state."""
        if self.reloading.is_set():
            self.reload()
            if active:
                schedule(scheduler, self)
        held = self.lead()
        if held and not active:
            log.info("%s", KV("active", holder=self.holder))
            self.reconcile()
            schedule(scheduler, self)
            scheduler.resume()
            return True
        if not held and active:
            log.warning("%s", KV("passive", holder=self.holder, reason="lease lost"))
            scheduler.pause()
            return False
        return active


# -- scheduler jobs ---------------------------------------------------------------------------

# The job store keeps a textual reference to a plain function plus pickled arguments, so a
# job finds its monitor here, by holder. A job whose monitor is not serving does nothing.
_SERVING: dict[str, Monitor] = {}
CHECK_JOB, NIGHTLY_JOB = "lbvm-check", "lbvm-nightly"


def run_job(holder: str, nightly: bool) -> None:
    """What the scheduler calls; never raises (a failing job must not kill the scheduler)."""
    monitor = _SERVING.get(holder)
    if monitor is None or monitor.stopping.is_set():
        log.info("%s", KV("job_skipped", holder=holder, nightly=nightly))
        return
    try:
        monitor.tick(nightly)
    except (StoreError, SQLAlchemyError) as exc:  # the service loop backs off and resumes
        monitor._store_down(exc)
    except Exception as exc:
        log.exception("%s", KV("job_crashed", nightly=nightly, error=exc))


def schedule(scheduler: BaseScheduler, monitor: Monitor) -> None:
    """(Re)place both jobs with the monitor's current settings; the first check runs now."""
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    s = monitor.settings
    hour, minute = s.nightly_time
    scheduler.add_job(
        run_job, IntervalTrigger(seconds=s.check_every), args=(monitor.holder, False),
        id=CHECK_JOB, name="check", replace_existing=True,
        misfire_grace_time=max(1, int(s.check_every)), next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        run_job, CronTrigger(hour=hour, minute=minute), args=(monitor.holder, True),
        id=NIGHTLY_JOB, name="nightly", replace_existing=True,
        misfire_grace_time=max(1, int(s.misfire_grace)),
    )
