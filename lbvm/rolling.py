"""Rolling upgrades: take a cluster through an operator's command node by node, safely.

For each node, pair by pair: drain it to its partner (a validated plan, HA rules
included), run the command on it with a timeout (through ssh unless it is this host),
wait until it is back (its agent's samples resume after the command, its HA report is
newer than the command, and its pair is healthy again: nodes online, DRBD UpToDate),
bring its VEs home, and go on. Nothing starts while a pair is degraded, and nothing goes
past a node that did not come back healthy.

Progress is kept in the ``rolling`` table (one row per node, state pending -> drained ->
upgraded -> back -> done), so an interrupted run resumes where it stopped. A command that
was started but not seen to finish is not run again: the node is waited for instead.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from algorithms.base import Move, Plan, Problem
from lbvm import hastate, journal
from lbvm.config import Config, RollingConfig
from lbvm.errors import LbvmError, PlanRejected
from lbvm.executor import Backend, Command
from lbvm.ids import check_host
from lbvm.maintenance import DRAIN, drain_plan, for_drain, return_plan
from lbvm.store.events import record_event
from lbvm.store.ha import load
from lbvm.store.queries import set_maintenance
from lbvm.store.schema import ha_reports, moves, nodes, rolling, runs

log = logging.getLogger(__name__)

STATES = ("pending", "drained", "upgraded", "back", "done")


class RollingError(LbvmError):
    """A rolling upgrade cannot start or cannot go on; the message says where and why."""


# The config's [rolling] section, declared once there.
RollingSettings = RollingConfig


def settings_from(config: Config) -> RollingConfig:
    """The ``[rolling]`` section (its defaults where the file has none)."""
    return config.rolling


def order(config: Config) -> list[str]:
    """The nodes in upgrade order: pair by pair, in config order."""
    return [n for p in config.pairs for n in p.nodes]


def degraded_pairs(engine: Engine, config: Config, now: float | None = None) -> list[str]:
    """'pair: reasons' for every pair that is degraded now."""
    states = hastate.judge(load(engine), config, now)
    return [f"{s.pair}: {s.text()}" for s in states.values() if s.known and s.reasons]


Problems = Callable[[], Problem]
Ingest = Callable[[], object]


class Rolling:
    """One rolling upgrade over ``config``'s nodes; ``run()`` does (or resumes) it.

    problems(): the current Problem with HA state applied (build_problem + hastate.apply).
    ingest(): loads new spool files, so the wait sees the node's fresh samples.
    """

    def __init__(
        self,
        engine: Engine,
        config: Config,
        command: Sequence[str],
        backend: Backend,
        problems: Problems,
        ingest: Ingest,
        *,
        settings: RollingSettings | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not command or not all(isinstance(a, str) and a for a in command):
            raise RollingError("the command must be a non-empty list of words")
        self.engine, self.config = engine, config
        self.command = tuple(command)
        self.backend, self.problems, self.ingest = backend, problems, ingest
        self.settings = settings or settings_from(config)
        self.clock, self.sleep = clock, sleep
        self.pair_of = config.pair_of()

    # -- the record -----------------------------------------------------------------------

    def open_run(self) -> int:
        """The unfinished rolling run with this command, else a new one (refused while
        another command's run is unfinished or a pair is degraded)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(rolling.c.run_id, rolling.c.command)
                                .where(rolling.c.state != "done")).all()
        for run_id, command in rows:
            if tuple(json.loads(command)) != self.command:
                raise RollingError(f"rolling upgrade {run_id} with another command "
                                   f"({' '.join(json.loads(command))}) is unfinished")
        if rows:
            return int(rows[0][0])
        bad = degraded_pairs(self.engine, self.config, self.clock())
        if bad:
            raise RollingError("refusing to start: degraded pair(s): " + "; ".join(bad))
        run_id = journal.start_run(self.engine, "rolling", None, now=self.clock())
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(rolling.insert(), [
                {"run_id": run_id, "position": i, "node": n, "command": json.dumps(self.command),
                 "state": "pending", "updated_at": now} for i, n in enumerate(order(self.config))
            ])
        return run_id

    def rows(self, run_id: int) -> list[sa.Row]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.select(rolling).where(rolling.c.run_id == run_id)
                                     .order_by(rolling.c.position)).all())

    def _set(self, run_id: int, node: str, **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(rolling.update().where(rolling.c.run_id == run_id,
                                                rolling.c.node == node)
                         .values(updated_at=self.clock(), **values))

    def _event(self, level: str, node: str, message: str) -> None:
        log.log(logging.INFO if level == "info" else logging.ERROR, "%s", message)
        with self.engine.begin() as conn:
            record_event(conn, level, "rolling", node, message, self.clock())

    # -- the run --------------------------------------------------------------------------

    def run(self) -> int:
        """Do (or resume) the rolling upgrade; return its run id. Raises RollingError at the
        first node that cannot be taken through, leaving its state for a later resume."""
        run_id = self.open_run()
        for row in self.rows(run_id):
            if row.state == "done":
                continue
            try:
                self._node(run_id, row)
            except LbvmError as exc:
                message = f"rolling upgrade {run_id} stopped at {row.node}: {exc}"
                self._set(run_id, row.node, message=f"failed: {exc}")
                self._event("error", row.node, message)
                raise RollingError(message) from exc
        self._close(run_id)
        return run_id

    def _close(self, run_id: int) -> None:
        with self.engine.connect() as conn:
            status = conn.execute(sa.select(runs.c.id)
                                  .where(runs.c.id == run_id, runs.c.status == "running")).first()
        if status is not None:
            journal.finish_run(self.engine, run_id, "done", None, None,
                               f"{len(order(self.config))} node(s) upgraded", now=self.clock())
        self._event("info", "cluster", f"rolling upgrade {run_id} done")

    def _node(self, run_id: int, row: sa.Row) -> None:
        node, state = row.node, row.state
        if state == "pending":
            bad = degraded_pairs(self.engine, self.config, self.clock())
            if bad:
                raise RollingError("degraded pair(s): " + "; ".join(bad))
            self._drain(node)
            self._set(run_id, node, state="drained", message="drained")
            state = "drained"
        if state == "drained":
            started = row.command_started_at
            if started is None:
                started = self._upgrade(run_id, node)
            else:
                self._event("warning", node, f"the command on {node} started at {started:.0f} "
                            "and was not seen to finish: waiting for the node instead")
            self._wait(node, float(started))
            self._set(run_id, node, state="upgraded", message="back and healthy")
            state = "upgraded"
        if state == "upgraded":
            with self.engine.begin() as conn:
                set_maintenance(conn, node, False)
            self._return(node, run_id)
            self._set(run_id, node, state="back", message="VEs brought back")
            state = "back"
        self._set(run_id, node, state="done", message="done")
        self._event("info", node, f"rolling upgrade {run_id}: {node} done")

    def _execute(self, problem: Problem, plan: Plan, what: str) -> None:
        from lbvm.cycle import Prepared, apply_plan
        from lbvm.validate import validate
        from lbvm.validate_ha import reasons as ha_reasons

        reasons = tuple(dict.fromkeys([*validate(problem, plan), *ha_reasons(problem, plan)]))
        if reasons:
            raise PlanRejected(list(reasons))
        run_id = journal.start_run(self.engine, "maintenance", plan.algorithm, now=self.clock())
        result = apply_plan(self.engine, self.config, Prepared(run_id, problem, plan, ()),
                            execute=True, backend=self.backend)
        failed = [r for r in result.results if r.state != "done"]
        if failed:
            m = failed[0].move
            raise RollingError(f"{what}: the move of VE {m.ve} {m.src}->{m.dst} "
                               f"{failed[0].state}; see `lbm log`")

    def _drain(self, node: str) -> None:
        with self.engine.begin() as conn:
            set_maintenance(conn, node, True)
        problem = for_drain(self.problems(), node, True)
        plan = drain_plan(problem, node)
        if plan.notes[1:]:
            raise RollingError(f"cannot drain {node}: " + "; ".join(plan.notes[1:]))
        if plan.moves:
            self._execute(problem, plan, f"drain of {node}")
        self._event("info", node, f"{node} drained: {len(plan.moves)} VE(s) moved")

    def _upgrade(self, run_id: int, node: str) -> float:
        started = self.clock()
        self._set(run_id, node, command_started_at=started)
        # ssh hands its command line to the far side's shell: quote it so the shell splits it
        # back into exactly this argv (and interprets nothing).
        argv = list(self.command) if node in self.settings.local else [
            *self.settings.ssh, check_host(node), shlex.join(self.command)]
        outcome = Command(argv[:1], self.settings.command_timeout, 4000).run(
            _nomove(node), argv)
        self._set(run_id, node, command_finished_at=self.clock())
        last = (outcome.output.strip().splitlines() or [""])[-1][:200]
        # ssh exits 255 when the connection drops, as it does when the command reboots
        if not outcome.ok and outcome.exit_code != 255:
            code = "timed out" if outcome.exit_code is None else f"exit {outcome.exit_code}"
            raise RollingError(f"command on {node} failed ({code}): {last}")
        self._event("info", node, f"command on {node} finished (exit {outcome.exit_code})")
        return started

    def _back(self, node: str, since: float) -> str | None:
        """None when ``node`` is back and its pair healthy, else what is still missing."""
        with self.engine.connect() as conn:
            seen = conn.execute(sa.select(nodes.c.last_seen).where(nodes.c.name == node)).scalar()
            reported = conn.execute(sa.select(ha_reports.c.ts)
                                    .where(ha_reports.c.reporter == node)).scalar()
        if seen is None or seen <= since:
            return f"no samples from {node} since the command"
        if reported is None or reported <= since:
            return f"no HA state from {node} since the command"
        state = hastate.judge(load(self.engine), self.config, self.clock()).get(
            self.pair_of.get(node, ""))
        if state is not None and state.reasons:
            return f"pair {state.pair} not healthy: {state.text()}"
        return None

    def _wait(self, node: str, since: float) -> None:
        deadline = self.clock() + self.settings.wait_timeout
        while True:
            self.ingest()
            missing = self._back(node, since)
            if missing is None:
                return
            if self.clock() >= deadline:
                raise RollingError(f"{node} did not come back healthy within "
                                   f"{self.settings.wait_timeout:g} s: {missing}")
            self.sleep(self.settings.poll_every)

    def _return(self, node: str, run_id: int) -> None:
        with self.engine.connect() as conn:
            since = conn.execute(sa.select(runs.c.started_at)
                                 .where(runs.c.id == run_id)).scalar()
            drained = conn.execute(
                sa.select(moves.c.ve).where(
                    moves.c.src == node, moves.c.state == "done",
                    moves.c.planned_at >= (since or 0),
                    moves.c.reason.like(DRAIN.format(node=node) + "%"))
                .order_by(moves.c.id)).scalars().all()
        homes = {str(ve): node for ve in dict.fromkeys(drained)}
        problem = for_drain(self.problems(), node, False)
        plan = return_plan(problem, homes, node)
        if plan.moves:
            self._execute(problem, plan, f"return to {node}")
        self._event("info", node, f"{len(plan.moves)} VE(s) back on {node}")


def _nomove(node: str) -> Move:
    """Command.run wants a move only to pass it along; a rolling command has none."""
    return Move("-", node, node, "switchover")


def describe(config: Config, command: Sequence[str], problem: Problem,
             settings: RollingSettings | None = None) -> list[str]:
    """The sequence a rolling upgrade would follow, one line per step (``--dry-run``)."""
    s = settings or settings_from(config)
    out = []
    for i, node in enumerate(order(config), 1):
        plan = drain_plan(for_drain(problem, node, True), node)
        moves_text = ", ".join(f"{m.ve}→{m.dst} ({m.kind})" for m in plan.moves) or "no VEs"
        where = "locally" if node in s.local else "via ssh"
        out += [
            f"{i}. {node}: drain ({moves_text})" + ("; " + "; ".join(plan.notes[1:])
                                                    if plan.notes[1:] else ""),
            f"   run {json.dumps(list(command))} on {node} {where} "
            f"(timeout {s.command_timeout:g} s)",
            f"   wait until {node} reports again and its pair is healthy "
            f"(timeout {s.wait_timeout:g} s, every {s.poll_every:g} s)",
            f"   bring {len(plan.moves)} VE(s) back to {node}",
        ]
    return out
