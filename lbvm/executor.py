"""The only code that moves VEs: run a plan's moves in order, journalling every step.

A backend turns a Move into an argv list and runs it. ``Simulate`` runs nothing (demos,
tests, dry clusters); ``Command`` runs a configured template such as
``["vzmigrate", "--online", "{dst}", "{ve}"]`` with a timeout, in its own process group,
never through a shell. ``execute`` journals the whole plan as 'planned' before the first
move starts, so no move is ever missing from the journal, then runs the moves one by one;
after a failure the rest are skipped, because their preconditions no longer hold.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import string
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Protocol

from sqlalchemy import Engine, select

from algorithms.base import Move, Plan
from lbvm import journal
from lbvm.config import Config
from lbvm.errors import ExecutorError
from lbvm.ids import check_host, check_ve
from lbvm.store.events import record_event
from lbvm.store.queries import set_ve_node
from lbvm.store.schema import ves

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


def backend_from_config(config: Config, engine: Engine | None = None) -> Backend:
    """The backend named by ``[executor].backend``.

    'simulate', 'command' (the ``[executor].command`` template) or the name of a preset in
    lbvm.presets (vzmigrate, prlctl, virsh, incus, pct, ...).
    """
    from lbvm import presets  # only needed for preset names

    ex = config.executor
    if ex.backend == "simulate":
        return Simulate(engine)
    if ex.backend == "command":
        return Command(ex.command, ex.timeout, ex.output_tail)
    if ex.backend in presets.PRESETS:
        return presets.PresetBackend(presets.get(ex.backend), ex.timeout, ex.output_tail)
    known = ", ".join(["simulate", "command", *sorted(presets.PRESETS)])
    raise ExecutorError(f"[executor].backend: unknown backend {ex.backend!r}; use one of {known}")


def execute(
    engine: Engine,
    plan: Plan,
    backend: Backend,
    *,
    run_id: int | None,
    stop: StopFlag | None = None,
) -> list[MoveResult]:
    """Run ``plan``'s moves in order; return one MoveResult per move, in plan order.

    Every argv is built (and so every id checked) before anything is written. Then the whole
    plan is journalled 'planned'; each move goes running -> done (the store's VE node is
    updated in the same transaction) or failed, and after a failure the remaining moves are
    skipped. If the executor itself is interrupted, the move in flight becomes 'unknown'.
    Once ``stop`` is set (mover lease lost, or the monitor shutting down) no further move
    starts; the rest are journalled 'skipped'.
    """
    argvs = [backend.argv(m) for m in plan.moves]
    ids = journal.record_plan(engine, run_id, plan.moves, backend.name)
    results: list[MoveResult] = []
    for i, (move_id, move, argv) in enumerate(zip(ids, plan.moves, argvs, strict=True)):
        if stop is not None and stop.is_set():
            rest = ids[i:]
            journal.skip(engine, rest, "skipped: stopping (mover lease lost or shutting down)")
            with engine.begin() as conn:
                msg = f"{len(rest)} move(s) skipped: stopping (mover lease lost or shutting down)"
                record_event(conn, "error", "move", f"run {run_id}", msg)
            results += [
                MoveResult(mid, m, "skipped") for mid, m in zip(rest, plan.moves[i:], strict=True)
            ]
            break
        journal.mark_running(engine, move_id, argv)
        try:
            outcome = backend.run(move, argv)
        except BaseException as exc:
            journal.mark_finished(engine, move_id, "unknown", None, f"executor stopped: {exc!r}")
            journal.skip(engine, ids[i + 1 :], f"skipped: move {move_id} did not finish")
            raise
        what = f"VE {move.ve} {move.src} -> {move.dst} ({move.kind}, {backend.name})"
        state = "done" if outcome.ok else "failed"
        with engine.begin() as conn:
            journal.transition(
                conn, move_id, state, exit_code=outcome.exit_code, output=outcome.output
            )
            if outcome.ok:
                set_ve_node(conn, move.ve, move.dst)
                record_event(conn, "info", "move", move.ve, f"moved {what}")
            else:
                last = outcome.output.strip().splitlines()[-1:] or [""]
                msg = f"move failed: {what}, exit {outcome.exit_code}: {last[0]}"
                record_event(conn, "error", "move", move.ve, msg)
        results.append(MoveResult(move_id, move, state, outcome))
        if outcome.ok:
            log.info("moved %s", what)
            continue
        log.error("move %s failed (exit %s)", what, outcome.exit_code)
        rest = ids[i + 1 :]
        if rest:
            journal.skip(engine, rest, f"skipped: move {move_id} of VE {move.ve} failed")
            with engine.begin() as conn:
                msg = f"{len(rest)} later move(s) skipped: move {move_id} of VE {move.ve} failed"
                record_event(conn, "warning", "move", f"run {run_id}", msg)
        results += [
            MoveResult(mid, m, "skipped") for mid, m in zip(rest, plan.moves[i + 1 :], strict=True)
        ]
        break
    return results
