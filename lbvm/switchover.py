"""The OpenVZ live switchover inside an HA pair, as an executor backend.

The VE's private area already lives on the pair's DRBD-mirrored filesystem, so nothing is
copied: the VE is checkpointed onto that filesystem, the cluster manager moves the
filesystem (its resource) to the partner, and the VE is restored there.

    check     DRBD of the VE Connected, UpToDate/UpToDate, no resync (on the source)
    suspend   vzctl chkpnt VE --suspend                                   (source)
    dump      vzctl chkpnt VE --dump --dumpfile DUMPDIR/dump.VE           (source)
    recheck   DRBD still healthy: a partner gone Inconsistent stops here  (source)
    move      crm_resource --move --resource RES --node DST (or the manager's command)
    undump    vzctl restore VE --undump --dumpfile DUMPDIR/dump.VE        (target)
    resume    vzctl restore VE --resume                                   (target)
    kill      vzctl chkpnt VE --kill                                      (source)

On a failure before ``kill`` the switchover is rolled back: ``vzctl restore VE --kill`` on
the target (once a restore began), the resource moved back (once it moved), and ``vzctl
chkpnt VE --resume`` on the source, so no VE is left suspended. Every step, rollbacks
included, is an argv run with a timeout (through ssh unless the node is this host) and a
row of the ``move_steps`` table, shown by `lbm log` as a ``switchover`` event.
"""

from __future__ import annotations

import json
import logging
import shlex
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from algorithms.base import Move
from lblog.errors import ParseError
from lblog.ha.drbd8 import parse_proc_drbd
from lblog.ha.drbd9 import parse_drbdadm_status
from lblog.ha.model import DrbdStatus
from lbvm import journal
from lbvm.config import Config, SwitchoverConfig
from lbvm.errors import ExecutorError
from lbvm.executor import Backend, Command, Outcome, check_move
from lbvm.ids import check_host
from lbvm.store.events import record_event
from lbvm.store.schema import ha_ves, move_steps

log = logging.getLogger(__name__)

NAME = "live-switchover"
CLUSTER_MOVE = {
    "pacemaker": ("crm_resource", "--move", "--resource", "{res}", "--node", "{dst}"),
    "rgmanager": ("clusvcadm", "-r", "{res}", "-m", "{dst}"),
    "heartbeat": ("/usr/share/heartbeat/hb_takeover", "foreign"),  # run on the target
}
DRBD_CHECK = {
    "drbdadm": ("drbdadm", "status", "{drbd}"),
    "proc": ("cat", "/proc/drbd"),
}
STEP_COLUMNS = ["move_id", "step", "node", "argv", "exit_code", "output", "started_at",
                "finished_at"]


# How a live switchover runs: the config's [switchover] section, declared once there.
SwitchoverSettings = SwitchoverConfig


def settings_from(config: Config) -> SwitchoverConfig:
    """The ``[switchover]`` section; an empty ``local`` means this host's short name."""
    s = config.switchover
    return s if s.local else replace(s, local=(socket.gethostname().split(".")[0],))


@dataclass(frozen=True)
class Step:
    name: str
    node: str
    argv: tuple[str, ...]


class LiveSwitchover:
    """Executor backend: switchovers run step by step; other moves go to ``fallback``."""

    name = NAME

    def __init__(
        self,
        settings: SwitchoverSettings,
        engine: Engine | None = None,
        *,
        fallback: Backend | None = None,
    ) -> None:
        if settings.manager not in CLUSTER_MOVE:
            raise ExecutorError(f"[switchover].manager {settings.manager!r}: use one of "
                                f"{', '.join(CLUSTER_MOVE)}")
        if settings.drbd_check not in (*DRBD_CHECK, "none"):
            raise ExecutorError(f"[switchover].drbd_check {settings.drbd_check!r}: use "
                                "drbdadm, proc or none")
        if settings.step_timeout <= 0:
            raise ExecutorError("[switchover].step_timeout must be positive")
        self.settings = settings
        self.engine = engine
        self.fallback = fallback

    # -- the Backend protocol ------------------------------------------------------------

    def argv(self, move: Move) -> list[str]:
        if move.kind != "switchover":
            if self.fallback is None:
                raise ExecutorError(f"{NAME} moves VEs inside a pair only; VE {move.ve} "
                                    f"{move.src}->{move.dst} is a {move.kind}")
            return self.fallback.argv(move)
        check_move(move)
        return [NAME, move.ve, move.src, move.dst]

    def run(self, move: Move, argv: Sequence[str]) -> Outcome:
        if move.kind != "switchover":
            assert self.fallback is not None  # argv() refused it otherwise
            return self.fallback.run(move, argv)
        return self.switch(move, self._move_id(move))

    # -- the steps ------------------------------------------------------------------------

    def _resources(self, move: Move) -> tuple[str | None, str]:
        """(DRBD resource or None: check them all, cluster resource) of the VE."""
        if self.engine is None:
            return None, move.ve
        with self.engine.connect() as conn:
            rows = list(conn.execute(
                sa.select(ha_ves.c.reporter, ha_ves.c.drbd, ha_ves.c.cluster)
                .where(ha_ves.c.ve == move.ve)
            ).all())
        rows.sort(key=lambda r: r.reporter != move.src)  # the source's own view first
        drbd = next((r.drbd for r in rows if r.drbd), None)
        cluster = next((r.cluster for r in rows if r.cluster), None)
        return drbd, cluster or move.ve

    def plan_steps(self, move: Move) -> tuple[list[Step], dict[str, list[Step]]]:
        """The forward steps, and the rollback steps to run after each forward step fails."""
        s = self.settings
        drbd, res = self._resources(move)
        values = {"ve": move.ve, "src": move.src, "dst": move.dst, "res": res,
                  "drbd": drbd or "all", "dumpdir": s.dumpdir}

        def step(name: str, node: str, template: Sequence[str], **extra: str) -> Step:
            return Step(name, node, tuple(a.format(**{**values, **extra}) for a in template))

        dump = ("--dumpfile", "{dumpdir}/dump.{ve}")
        move_node = move.dst if s.manager == "heartbeat" else move.src
        back_node = move.src if s.manager == "heartbeat" else move.dst
        check = [] if s.drbd_check == "none" else [
            step("check", move.src, DRBD_CHECK[s.drbd_check])]
        forward = [
            *check,
            step("suspend", move.src, ("vzctl", "chkpnt", "{ve}", "--suspend")),
            step("dump", move.src, ("vzctl", "chkpnt", "{ve}", "--dump", *dump)),
            *[Step("recheck", c.node, c.argv) for c in check],
            step("move", move_node, CLUSTER_MOVE[s.manager]),
            step("undump", move.dst, ("vzctl", "restore", "{ve}", "--undump", *dump)),
            step("resume", move.dst, ("vzctl", "restore", "{ve}", "--resume")),
            step("kill", move.src, ("vzctl", "chkpnt", "{ve}", "--kill")),
        ]
        resume_src = step("rollback_resume", move.src, ("vzctl", "chkpnt", "{ve}", "--resume"))
        move_back = step("rollback_move", back_node, CLUSTER_MOVE[s.manager], dst=move.src)
        kill_dst = step("rollback_kill", move.dst, ("vzctl", "restore", "{ve}", "--kill"))
        rollback = {
            "check": [],
            "suspend": [resume_src],
            "dump": [resume_src],
            "recheck": [resume_src],
            "move": [move_back, resume_src],
            "undump": [kill_dst, move_back, resume_src],
            "resume": [kill_dst, move_back, resume_src],
            "kill": [],
        }
        return forward, rollback

    def switch(self, move: Move, move_id: int | None) -> Outcome:
        """Run the steps; roll back on failure. ok only when the VE runs on the target."""
        forward, rollback = self.plan_steps(move)
        lines: list[str] = []
        for st in forward:
            ok, text = self._step(move, move_id, st)
            lines.append(f"{st.name}: {text}")
            if ok:
                continue
            if st.name == "kill":  # the VE already runs on the target: retry, then warn
                ok, text = self._step(move, move_id, Step("kill_retry", st.node, st.argv))
                lines.append(f"kill_retry: {text}")
                if not ok:
                    self._event("error", move.ve, f"VE {move.ve} runs on {move.dst} but its "
                                f"suspended copy on {move.src} could not be killed: {text}")
                break
            for rb in rollback[st.name]:
                _, rb_text = self._step(move, move_id, rb)
                lines.append(f"{rb.name}: {rb_text}")
            return Outcome(False, 1, _tail("\n".join(lines), self.settings.output_tail),
                           (NAME, move.ve, move.src, move.dst))
        return Outcome(True, 0, _tail("\n".join(lines), self.settings.output_tail),
                       (NAME, move.ve, move.src, move.dst))

    def _argv(self, node: str, argv: Sequence[str]) -> list[str]:
        if node in self.settings.local:
            return list(argv)
        # ssh hands its command line to the far side's shell: quote so it splits it back
        # into exactly this argv.
        return [*self.settings.ssh, check_host(node), shlex.join(argv)]

    def _step(self, move: Move, move_id: int | None, st: Step) -> tuple[bool, str]:
        argv = self._argv(st.node, st.argv)
        started = time.time()
        row_id = self._start(move_id, st, argv, started)
        runner = Command(argv[:1], self.settings.step_timeout, self.settings.output_tail)
        outcome = runner.run(move, argv)
        ok = outcome.ok
        text = outcome.output.strip()
        if ok and st.name in ("check", "recheck"):
            ok, text = _mirror_ok(outcome.output, self.settings.drbd_check, " ".join(st.argv))
        note = "" if ok or text == outcome.output.strip() else f"\n{text}"
        self._finish(row_id, outcome.exit_code, outcome.output + note)
        code = "timed out" if outcome.exit_code is None else f"exit {outcome.exit_code}"
        last = text.splitlines()[-1:] or [""]
        self._event("info" if ok else "error", move.ve,
                    f"move {move_id} {st.name} on {st.node}: {' '.join(st.argv)}: {code}"
                    + ("" if ok else f": {last[0][:200]}"))
        return ok, f"{code} {last[0][:200]}".strip()

    # -- the journal ----------------------------------------------------------------------

    def _move_id(self, move: Move) -> int | None:
        """The journal row the executor marked running for this move."""
        if self.engine is None:
            return None
        rows = [r for r in journal.running_moves(self.engine)
                if (r.ve, r.src, r.dst) == (move.ve, move.src, move.dst)]
        return rows[-1].id if rows else None

    def _start(self, move_id: int | None, st: Step, argv: list[str], now: float) -> int | None:
        if self.engine is None or move_id is None:
            return None
        with self.engine.begin() as conn:
            row = conn.execute(
                move_steps.insert().values(move_id=move_id, step=st.name, node=st.node,
                                           argv=json.dumps(argv), started_at=now)
                .returning(move_steps.c.id)
            ).one()
        return int(row[0])

    def _finish(self, row_id: int | None, code: int | None, output: str) -> None:
        if self.engine is None or row_id is None:
            return
        with self.engine.begin() as conn:
            conn.execute(move_steps.update().where(move_steps.c.id == row_id).values(
                exit_code=code, output=output, finished_at=time.time()))

    def _event(self, level: str, ve: str, message: str) -> None:
        log.log(logging.INFO if level == "info" else logging.ERROR, "%s", message)
        if self.engine is not None:
            with self.engine.begin() as conn:
                record_event(conn, level, "switchover", ve, message)


def _mirror_ok(output: str, how: str, where: str) -> tuple[bool, str]:
    """Whether the DRBD status printed by the check step is healthy, and why not."""
    try:
        status: DrbdStatus = (parse_proc_drbd(output, where) if how == "proc"
                              else parse_drbdadm_status(output, where))
    except ParseError as exc:
        return False, f"unreadable DRBD status: {exc}"
    bad = [v for r in status.resources for v in r.volumes if not v.healthy]
    if not status.resources:
        return False, "no DRBD resource reported"
    if bad:
        v = bad[0]
        pct = f" {v.progress_pct:.1f}%" if v.progress_pct is not None else ""
        return False, (f"DRBD {v.resource} is {v.connection} {v.replication}{pct} "
                       f"{v.disk}/{v.peer_disk}, not UpToDate/UpToDate")
    return True, "DRBD Connected UpToDate/UpToDate"


def _tail(text: str, limit: int) -> str:
    return text[-limit:] if limit else ""


def steps_frame(engine: Engine, *, ve: str | None = None,
                move_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """The step log (STEP_COLUMNS), oldest first; for `lbm show` and `lbm log`."""
    from lbvm.store.schema import moves

    query = sa.select(*(move_steps.c[c] for c in STEP_COLUMNS)).order_by(move_steps.c.id)
    if ve is not None:
        query = query.where(move_steps.c.move_id.in_(
            sa.select(moves.c.id).where(moves.c.ve == ve)))
    if move_ids is not None:
        query = query.where(move_steps.c.move_id.in_(list(move_ids)))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=STEP_COLUMNS)


def backend_from_config(
    config: Config, engine: Engine | None = None, fallback: Backend | None = None
) -> LiveSwitchover:
    """The live-switchover backend with the config's ``[switchover]`` settings."""
    return LiveSwitchover(settings_from(config), engine, fallback=fallback)


def backend_for(config: Config, engine: Engine | None = None) -> Backend:
    """The configured executor backend; ``live-switchover`` is this module's, with the
    ``[switchover].fallback`` backend (default: simulate) for moves to another pair."""
    from lbvm.executor import backend_from_config as executor_backend

    if config.executor.backend != NAME:
        return executor_backend(config, engine)
    fallback_name = config.switchover.fallback
    fallback = executor_backend(replace(config, executor=replace(config.executor,
                                                                 backend=fallback_name)), engine)
    return backend_from_config(config, engine, fallback=fallback)
