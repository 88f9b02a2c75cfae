"""The only code that moves VEs: run a plan's moves, journalling every step.

A backend turns a Move into an argv list and runs it. ``Simulate`` runs nothing (demos,
tests, dry clusters); ``Command`` runs a configured template such as
``["vzmigrate", "--online", "{dst}", "{ve}"]`` with a timeout, in its own process group,
never through a shell. A backend that can say where a VE is (``locate``: the presets) is
asked after every move, so a tool claiming success for a VE that did not move is caught.

``execute`` journals the whole plan as 'planned' before the first move starts, so no move is
ever missing from the journal. Moves start in plan order; with ``max_parallel`` > 1 a move
may start while others run, but only once every earlier move touching a node of its source
or target pair has finished, and never more than ``max_per_node`` at once on one node.
After a failure no further move starts (the plan's later steps assumed it), the moves in
flight finish and the rest are skipped. Each VE moved gets a cooldown in the store
(``ves.cooldown_until``), longer after a failure, so plans leave it alone for a while.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import string
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import IO, TYPE_CHECKING, Protocol

from sqlalchemy import Engine, select, update

from algorithms.base import Move, Plan
from lbvm import journal
from lbvm.config import Config
from lbvm.errors import ExecutorError
from lbvm.ids import check_host, check_ve
from lbvm.store.events import record_event
from lbvm.store.queries import set_ve_node
from lbvm.store.schema import ves

if TYPE_CHECKING:
    from lbvm.presets import Location

log = logging.getLogger(__name__)

PLACEHOLDERS = ("ve", "src", "dst")


@dataclass(frozen=True)
class Outcome:
    """What running one move gave: exit_code None means it never exited on its own."""

    ok: bool
    exit_code: int | None
    output: str
    argv: tuple[str, ...]


@dataclass(frozen=True)
class MoveResult:
    """A move's journal id, final state and, when it ran, its outcome."""

    move_id: int
    move: Move
    state: str  # done | failed | skipped | unknown
    outcome: Outcome | None = None


class Backend(Protocol):
    name: str

    def argv(self, move: Move) -> list[str]:
        """The command for ``move``; raises ExecutorError for ids unsafe to pass on."""
        ...

    def run(self, move: Move, argv: Sequence[str]) -> Outcome: ...


class StopFlag(Protocol):
    """Anything with ``is_set()``: a threading.Event, or several combined."""

    def is_set(self) -> bool: ...


def check_move(move: Move) -> None:
    """Refuse VE ids and host names that are not plain identifiers (no options, no paths)."""
    check_ve(move.ve)
    for host in (move.src, move.dst):
        check_host(host)


class Simulate:
    """Moves nothing: records ``["simulate", ve, src, dst]`` and succeeds.

    With an engine it first checks that the store has the VE on ``src``, so a simulated plan
    fails where a real one would on a stale placement.
    """

    name = "simulate"

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine

    def argv(self, move: Move) -> list[str]:
        check_move(move)
        return ["simulate", move.ve, move.src, move.dst]

    def run(self, move: Move, argv: Sequence[str]) -> Outcome:
        if self.engine is not None:
            with self.engine.connect() as conn:
                node = conn.execute(select(ves.c.node).where(ves.c.ve == move.ve)).scalar()
            if node != move.src:
                where = f"on {node}" if node else "not in the store"
                msg = f"VE {move.ve} is {where}, not on {move.src}"
                return Outcome(False, 1, msg, tuple(argv))
        msg = f"simulated {move.kind} of VE {move.ve} from {move.src} to {move.dst}"
        return Outcome(True, 0, msg, tuple(argv))


def check_template(template: Sequence[str]) -> tuple[str, ...]:
    """Return the template if every argument uses only {ve}, {src} and {dst}."""
    if not template or not all(isinstance(a, str) for a in template) or not template[0]:
        raise ExecutorError("[executor].command must be a non-empty list of strings")
    for arg in template:
        try:
            parts = list(string.Formatter().parse(arg))
        except ValueError as exc:
            raise ExecutorError(f"[executor].command: {arg!r}: {exc}") from None
        for _, field, spec, conversion in parts:
            if field is None:
                continue
            if field not in PLACEHOLDERS or spec or conversion:
                raise ExecutorError(
                    f"[executor].command: unknown placeholder {{{field}}} in {arg!r};"
                    " use {ve}, {src} or {dst}"
                )
    return tuple(template)


class Command:
    """Runs a command template per move: argv list, own session, timeout, output tail."""

    name = "command"

    def __init__(
        self,
        template: Sequence[str],
        timeout: float,
        output_tail: int,
        *,
        kill_grace: float = 5.0,
    ) -> None:
        if timeout <= 0 or output_tail < 0:
            raise ExecutorError("[executor] timeout must be > 0 and output_tail >= 0")
        self.template = check_template(template)
        self.timeout = float(timeout)
        self.output_tail = int(output_tail)
        self.kill_grace = float(kill_grace)

    def argv(self, move: Move) -> list[str]:
        check_move(move)
        return [a.format(ve=move.ve, src=move.src, dst=move.dst) for a in self.template]

    def run(self, move: Move, argv: Sequence[str]) -> Outcome:
        argv = tuple(argv)
        # Output goes to a file, not a pipe: memory stays bounded and a grandchild that
        # keeps the descriptor open cannot make us wait.
        with tempfile.TemporaryFile() as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except FileNotFoundError:
                return Outcome(False, 127, f"{argv[0]}: command not found", argv)
            except OSError as exc:
                return Outcome(False, 126, f"{argv[0]}: {exc.strerror or exc}", argv)
            try:
                code: int | None = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                code = None
            except BaseException:
                self._kill(proc)
                raise
            text = _tail(out, self.output_tail)
        if code is None:
            note = f"timed out after {self.timeout:g} s"
            text = f"{text.rstrip()}\n{note}" if text.strip() else note
        return Outcome(code == 0, code, text, argv)

    def _kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after the grace."""
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=self.kill_grace)
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _tail(fh: IO[bytes], limit: int) -> str:
    """The last ``limit`` bytes written to ``fh``, decoded leniently."""
    if limit == 0:
        return ""
    size = fh.seek(0, os.SEEK_END)
    fh.seek(max(0, size - limit))
    return fh.read().decode("utf-8", errors="replace")


def backend_from_config(
    config: Config,
    engine: Engine | None = None,
    *,
    runner: Callable[[list[str], float], tuple[int, str]] | None = None,
) -> Backend:
    """The backend named by ``[executor].backend``.

    'simulate', 'command' (the ``[executor].command`` template) or the name of a preset in
    lbvm.presets (vzmigrate, prlctl, virsh, incus, pct, ...). ``runner`` runs a preset's
    location queries (default: a real process, ``[monitor].locate_timeout``).
    """
    from lbvm import presets  # only needed for preset names

    ex = config.executor
    if ex.backend == "live-switchover":
        from lbvm.switchover import backend_for

        return backend_for(config, engine)
    if ex.backend == "simulate":
        return Simulate(engine)
    if ex.backend == "command":
        return Command(ex.command, ex.timeout, ex.output_tail)
    if ex.backend in presets.PRESETS:
        return presets.PresetBackend(
            presets.get(ex.backend), ex.timeout, ex.output_tail,
            locate_timeout=config.monitor.locate_timeout, runner=runner or presets.run_argv,
        )
    known = ", ".join(["simulate", "command", *sorted(presets.PRESETS)])
    raise ExecutorError(f"[executor].backend: unknown backend {ex.backend!r}; use one of {known}")


@dataclass(frozen=True)
class Limits:
    """How moves run: concurrency, the pause after each move, cooldowns (seconds).

    ``pairs`` maps a node to its pair name; nodes not in it are their own pair.
    """

    max_parallel: int = 1
    max_per_node: int = 1
    pause: float = 0.0
    cooldown: float = 0.0
    failed_cooldown: float = 0.0
    pairs: Mapping[str, str] = dc_field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> Limits:
        ex = config.executor
        return cls(ex.max_parallel, ex.max_per_node, ex.pause, ex.cooldown, ex.failed_cooldown,
                   config.pair_of())


def dependencies(moves: Sequence[Move], pairs: Mapping[str, str]) -> list[set[int]]:
    """For each move, the earlier moves that touch a node of its source or target pair."""
    members: dict[str, set[str]] = {}
    for node, pair in pairs.items():
        members.setdefault(pair, set()).add(node)

    def zone(node: str) -> set[str]:
        return members.get(pairs.get(node, ""), set()) | {node}

    out: list[set[int]] = []
    for i, m in enumerate(moves):
        near = zone(m.src) | zone(m.dst)
        out.append({j for j in range(i) if moves[j].src in near or moves[j].dst in near})
    return out


def _verdict(move: Move, outcome: Outcome, loc: Location | None) -> tuple[str, str | None, str]:
    """(state, node the store should say, note) after a move, given where the VE was found."""
    if loc is None or (loc.node is None and not loc.certain):
        note = "" if loc is None else "location query gave no answer; trusting the tool"
        return ("done" if outcome.ok else "failed"), (move.dst if outcome.ok else None), note
    if loc.node == move.dst:
        if outcome.ok:
            return "done", move.dst, ""
        return "unknown", move.dst, f"the tool failed but VE {move.ve} is on {move.dst}"
    if loc.node == move.src:
        if outcome.ok:
            return "failed", move.src, (f"the tool reported success but VE {move.ve} is "
                                        f"still on {move.src}")
        return "failed", move.src, ""
    where = f"on {loc.node}" if loc.node else "on neither node"
    return "unknown", loc.node, f"VE {move.ve} is {where} after the move"


@dataclass
class _Run:
    """One execute call: what it needs to run and record a move."""

    engine: Engine
    backend: Backend
    run_id: int | None
    limits: Limits
    now: Callable[[], float]

    def one(self, move_id: int, move: Move, argv: Sequence[str]) -> MoveResult:
        """Run one move already marked running; commit its end, node and cooldown."""
        try:
            outcome = self.backend.run(move, argv)
            locate = getattr(self.backend, "locate", None)
            loc = locate(move.ve, [move.dst, move.src]) if locate is not None else None
        except BaseException as exc:
            journal.mark_finished(self.engine, move_id, "unknown", None,
                                  f"executor stopped: {exc!r}")
            raise
        state, node, note = _verdict(move, outcome, loc)
        output = f"{outcome.output.rstrip()}\n{note}" if note else outcome.output
        what = f"VE {move.ve} {move.src} -> {move.dst} ({move.kind}, {self.backend.name})"
        cool = self.limits.cooldown if state == "done" else self.limits.failed_cooldown
        with self.engine.begin() as conn:
            journal.transition(conn, move_id, state, exit_code=outcome.exit_code, output=output)
            if node is not None:
                set_ve_node(conn, move.ve, node)
            if cool > 0:
                conn.execute(update(ves).where(ves.c.ve == move.ve)
                             .values(cooldown_until=self.now() + cool))
            if state == "done":
                record_event(conn, "info", "move", move.ve, f"moved {what}")
            else:
                last = (note or outcome.output).strip().splitlines()[-1:] or [""]
                msg = f"move {state}: {what}, exit {outcome.exit_code}: {last[0]}"
                record_event(conn, "error", "move", move.ve, msg)
        if state == "done":
            log.info("moved %s", what)
        else:
            log.error("move %s %s (exit %s) %s", what, state, outcome.exit_code, note)
        return MoveResult(move_id, move, state, Outcome(outcome.ok, outcome.exit_code, output,
                                                        outcome.argv))

    def skip(self, ids: Sequence[int], why: str) -> None:
        if journal.skip(self.engine, ids, f"skipped: {why}"):
            with self.engine.begin() as conn:
                record_event(conn, "warning", "move", f"run {self.run_id}",
                             f"{len(ids)} move(s) skipped: {why}")


def _pause(seconds: float, stop: StopFlag | None) -> None:
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0 and not (stop is not None and stop.is_set()):
        time.sleep(min(left, 0.05))


def execute(
    engine: Engine,
    plan: Plan,
    backend: Backend,
    *,
    run_id: int | None,
    stop: StopFlag | None = None,
    limits: Limits | None = None,
    now: float | None = None,
) -> list[MoveResult]:
    """Run ``plan``'s moves; return one MoveResult per move, in plan order.

    Every argv is built (and so every id checked) before anything is written. Then the whole
    plan is journalled 'planned'; each move goes running -> done (the store's VE node is
    updated in the same transaction), failed or unknown (see ``_verdict``). After a failure,
    and once ``stop`` is set (mover lease lost, or the monitor shutting down), no further move
    starts; the rest are journalled 'skipped'. If the executor itself is interrupted, the
    move in flight becomes 'unknown'. ``now`` is the clock cooldowns start from (default:
    the wall clock when each move ends).
    """
    limits = limits or Limits()
    argvs = [backend.argv(m) for m in plan.moves]
    ids = journal.record_plan(engine, run_id, plan.moves, backend.name)
    if not ids:
        return []
    clock = (lambda: float(now)) if now is not None else time.time
    runner = _Run(engine, backend, run_id, limits, clock)
    results: dict[int, MoveResult] = {}
    deps = dependencies(plan.moves, limits.pairs)
    pending = list(range(len(ids)))
    busy: dict[Future[MoveResult], int] = {}
    per_node: dict[str, int] = {}
    why_stop = ""
    pool = ThreadPoolExecutor(limits.max_parallel) if limits.max_parallel > 1 else None
    try:
        while pending or busy:
            if not why_stop and stop is not None and stop.is_set():
                why_stop = "stopping (mover lease lost or shutting down)"
            if why_stop and pending:
                runner.skip([ids[i] for i in pending], why_stop)
                results.update({i: MoveResult(ids[i], plan.moves[i], "skipped") for i in pending})
                pending = []
            started = _start_ready(runner, plan, ids, argvs, pending, busy, results, deps,
                                   per_node, limits, pool)
            if pool is None:
                for i in started:  # one at a time, in this thread: Ctrl-C reaches the tool
                    results[i] = runner.one(ids[i], plan.moves[i], argvs[i])
                    why_stop = why_stop or _failed(results[i])
                    if pending and not why_stop:
                        _pause(limits.pause, stop)
                continue
            if not busy:
                continue
            done, _ = wait(list(busy), return_when=FIRST_COMPLETED)
            for fut in done:
                i = busy.pop(fut)
                for node in {plan.moves[i].src, plan.moves[i].dst}:
                    per_node[node] -= 1
                results[i] = fut.result()
                why_stop = why_stop or _failed(results[i])
            if pending and not why_stop:
                _pause(limits.pause, stop)
    except BaseException:
        journal.skip(engine, [ids[i] for i in pending], "skipped: the executor was interrupted")
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return [results[i] for i in range(len(ids))]


def _failed(r: MoveResult) -> str:
    return "" if r.state == "done" else f"move {r.move_id} of VE {r.move.ve} {r.state}"


def _start_ready(
    runner: _Run,
    plan: Plan,
    ids: list[int],
    argvs: list[list[str]],
    pending: list[int],
    busy: dict[Future[MoveResult], int],
    results: dict[int, MoveResult],
    deps: list[set[int]],
    per_node: dict[str, int],
    limits: Limits,
    pool: ThreadPoolExecutor | None,
) -> list[int]:
    """Mark running the pending moves that may start now; submit them to ``pool`` (or, with
    no pool, return the first one for the caller to run). Removes them from ``pending``."""
    started: list[int] = []
    for i in list(pending):
        if len(busy) + (len(started) if pool is None else 0) >= limits.max_parallel:
            break
        m = plan.moves[i]
        if not deps[i] <= results.keys():
            continue
        nodes = {m.src, m.dst}
        if any(per_node.get(n, 0) >= limits.max_per_node for n in nodes):
            continue
        pending.remove(i)
        journal.mark_running(runner.engine, ids[i], argvs[i])
        started.append(i)
        if pool is None:
            break
        for n in nodes:
            per_node[n] = per_node.get(n, 0) + 1
        busy[pool.submit(runner.one, ids[i], m, argvs[i])] = i
    return started if pool is None else []
