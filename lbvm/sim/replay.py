"""Replay a trace through the production planning path, one interval at a time.

Per interval: the load of every node is accounted (migrations in flight count on both
nodes, see ``intervals``); then, when a plan is due, the monitor's path runs unchanged
except for where samples come from: ``model.problem_from_frame`` builds the Problem from the
window statistic (the store's ``window_demand`` rules: ``balance.window`` and
``balance.statistic``), the registered algorithm plans, ``validate`` checks, and
``cycle.apply_plan`` runs the plan through the real executor and journal on a temporary
SQLite store with the ``simulate`` backend. VEs in their cooldown (``[executor].cooldown``
of simulated time since they moved) are not movable, as ``cycle.prepare`` makes them. Moves
then take ``bytes / bandwidth`` seconds of simulated time from the planning time, started
as the executor starts them (``executor.schedule``): in plan order, at most
``max_parallel`` at once and ``max_per_node`` per node, each after the earlier moves that
touch its pairs; while they run no new plan starts (the monitor's job would still be busy),
which is counted as ``busy_skips``.

With ``profile_window`` each Problem also carries the VEs' samples over that window as its
``profile`` (not running: 0), for the algorithms that read time profiles.

Plans are due at every interval (the frequent check at the ``automatic`` level), or with
``nightly`` once a day when the trace clock (UTC) passes ``nightly_at``.

With ``memory = "cloudsim-null"`` the VEs' memory counts for the initial placement only;
from then on every VE uses 0 bytes (node load, SLATAH, failover, the planner's demand), as
CloudSim's PlanetLab VMs do, while a move still copies the VE's full memory.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert

from algorithms import registry
from algorithms.base import Algorithm, Plan, Problem
from algorithms.errors import AlgorithmError
from algorithms.pairs import n_pairs, pair_load
from lbvm import journal
from lbvm.config import Config
from lbvm.cycle import Prepared, apply_plan, cooled
from lbvm.errors import LbvmError
from lbvm.executor import Limits, Simulate, dependencies
from lbvm.model import problem_from_frame
from lbvm.sim import intervals
from lbvm.sim.intervals import Segments
from lbvm.sim.placement import initial
from lbvm.sim.power import power
from lbvm.sim.scenario import Cluster, SimScenario
from lbvm.sim.traces import Trace
from lbvm.store.engine import connect
from lbvm.store.queries import STATISTICS
from lbvm.store.schema import nodes, ves
from lbvm.validate import validate

log = logging.getLogger(__name__)

DAY = 86400.0


@dataclass(frozen=True)
class ReplayResult:
    """What one algorithm did over the trace. Per-interval arrays have T rows.

    util[T, N, R]      time-weighted utilisation of each node
    active[T, N]       node switched on (see SimScenario.switch_off)
    watts[T, N]        power drawn (0 when off)
    pair_short[T, P]   the pair could not fail over (some resource over its limit)
    moves[T], bytes[T] moves done and bytes copied by the plan made at the end of interval t
    degraded[T]        core-seconds lost to migrations; requested[T] core-seconds asked for
    """

    algorithm: str
    trace: Trace
    cluster: Cluster
    scenario: SimScenario
    nightly: bool
    util: np.ndarray
    active: np.ndarray
    watts: np.ndarray
    pair_short: np.ndarray
    moves: np.ndarray
    switchovers: np.ndarray
    bytes: np.ndarray
    degraded: np.ndarray
    requested: np.ndarray
    plans: int
    refused: int
    busy_skips: int
    notes: tuple[str, ...]


def sorted_trace(trace: Trace) -> Trace:
    """The trace with its VEs in the Problem's order (sorted ids), so indices agree."""
    order = np.array(sorted(range(trace.n_ves), key=lambda i: trace.ves[i]), dtype=np.int64)
    if np.array_equal(order, np.arange(trace.n_ves)):
        return trace
    pick = order.tolist()
    return replace(
        trace,
        ves=tuple(trace.ves[i] for i in pick),
        cpu=trace.cpu[order], mem=trace.mem[order], cpu_size=trace.cpu_size[order],
        mem_size=trace.mem_size[order], disk=trace.disk[order],
        sources=tuple(trace.sources[i] for i in pick),
        nodes=None if trace.nodes is None else tuple(trace.nodes[i] for i in pick),
    )


def window_statistic(window: np.ndarray, statistic: str) -> np.ndarray:
    """The statistic per row of [V, S] samples, as ``queries.window_demand`` computes it
    (pandas' linear quantile, mean or max); NaN where a row has no sample."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows give NaN, as wanted
        if statistic == "mean":
            return np.nanmean(window, axis=1)
        if statistic == "max":
            return np.nanmax(window, axis=1)
        q = STATISTICS.get(statistic)
        if q is None and statistic.startswith("p"):
            q = float(statistic[1:]) / 100
        if q is None or not 0 <= q <= 1:
            raise LbvmError(f"statistic {statistic!r}: use mean, max or pNN such as p95")
        if np.isnan(window).any():
            return np.nanquantile(window, q, axis=1)
        return np.quantile(window, q, axis=1)


def latest(window: np.ndarray) -> np.ndarray:
    """The last non-NaN value of each row of [V, S] (NaN when there is none)."""
    valid = ~np.isnan(window)
    last = window.shape[1] - 1 - np.argmax(valid[:, ::-1], axis=1)
    out = window[np.arange(window.shape[0]), last]
    return np.where(valid.any(axis=1), out, np.nan)


def _store(cluster: Cluster, trace: Trace, where: np.ndarray, folder: Path) -> Engine:
    engine = connect(f"sqlite:///{folder / 'replay.db'}")
    with engine.begin() as conn:
        conn.execute(insert(nodes), [
            {"name": n, "pair": p, "cpus": float(c), "mem_bytes": int(m), "maintenance": False}
            for n, p, c, m in zip(cluster.nodes, cluster.pairs, cluster.cpus, cluster.mem_bytes,
                                  strict=True)
        ])
        conn.execute(insert(ves), [
            {"ve": v, "node": cluster.nodes[int(n)], "balanced": True, "pinned": False}
            for v, n in zip(trace.ves, where, strict=True)
        ])
    return engine


def _due(k0: float, k1: float, nightly: bool, at: str) -> bool:
    if not nightly:
        return True
    hh, mm = at.split(":")
    offset = int(hh) * 3600 + int(mm) * 60
    return math.floor((k1 - offset) / DAY) > math.floor((k0 - offset) / DAY)


class _Planner:
    """The monitor's planning path for one replay: Problem, plan, validate, apply, journal."""

    def __init__(self, engine: Engine, trace: Trace, cluster: Cluster,
                 scenario: SimScenario, algorithm: Algorithm, label: str,
                 move_mem: np.ndarray | None = None) -> None:
        self.engine, self.trace, self.cluster = engine, trace, cluster
        self.move_mem = move_mem  # bytes a move copies (None: the latest memory sample)
        self.algorithm, self.label = algorithm, label
        self.balance = scenario.balance
        self.config = Config(pairs=cluster.pair_configs(), balance=scenario.balance,
                             executor=replace(scenario.executor, backend="simulate"))
        self.limits = Limits.from_config(self.config)
        self.backend = Simulate(engine)
        self.node_frame = pd.DataFrame({
            "node": list(cluster.nodes), "pair": list(cluster.pairs), "cpus": cluster.cpus,
            "mem_bytes": cluster.mem_bytes, "maintenance": False})
        self.node_names = np.array(cluster.nodes, dtype=object)
        self.ve_names = list(trace.ves)
        self.samples = max(1, math.ceil(self.balance.window / trace.interval - 1e-9))
        self.profile_steps = math.ceil(scenario.profile_window / trace.interval - 1e-9)

    def problem(self, t: int, where: np.ndarray) -> Problem:
        lo = max(0, t + 1 - self.samples)
        cpu = self.trace.cpu[:, lo:t + 1]
        mem = self.trace.mem[:, lo:t + 1]
        stat = self.balance.statistic
        frame = pd.DataFrame({
            "ve": self.ve_names, "node": self.node_names[where], "balanced": True,
            "pinned": False, "cpu": window_statistic(cpu, stat),
            "mem": window_statistic(mem, stat),
            "mem_bytes": latest(mem) if self.move_mem is None else self.move_mem,
            "disk_bytes": self.trace.disk})
        problem = problem_from_frame(frame, self.node_frame, self.balance)
        if problem.ves != self.trace.ves:  # sorted_trace makes this hold
            raise LbvmError("the Problem's VE order differs from the trace's")
        if self.profile_steps:
            lo = max(0, t + 1 - self.profile_steps)
            prof = np.stack([self.trace.cpu[:, lo:t + 1], self.trace.mem[:, lo:t + 1]], axis=2)
            problem = replace(problem, profile=np.nan_to_num(prof).astype(np.float32))
        return problem

    def run(self, problem: Problem, now: float
            ) -> tuple[Problem, Plan, list[int], tuple[str, ...]]:
        """Plan, validate and apply at simulated time ``now``: the problem as planned (VEs in
        their cooldown not movable), the plan, the VE indices moved (in order) and refusal
        reasons."""
        run_id = journal.start_run(self.engine, "simulate", self.label)
        try:
            problem = cooled(self.engine, problem, now)
            plan = self.algorithm.plan(problem)
            reasons = tuple(validate(problem, plan))
        except (LbvmError, AlgorithmError) as exc:
            journal.finish_run(self.engine, run_id, "failed", None, None, str(exc))
            raise
        prepared = Prepared(run_id, problem, plan, reasons, now)
        result = apply_plan(self.engine, self.config, prepared, execute=True,
                            backend=self.backend)
        index = {v: i for i, v in enumerate(problem.ves)}
        done = [index[r.move.ve] for r in result.results if r.state == "done"]
        if result.status == "failed":
            raise LbvmError(f"simulated run {run_id} failed: {result.results}")
        return problem, plan, done, reasons


def replay(
    trace: Trace,
    scenario: SimScenario,
    algorithm: str | Algorithm,
    *,
    cluster: Cluster | None = None,
    nightly: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Replay ``trace`` with ``algorithm`` (a registered name or an instance) on ``cluster``
    (default: the scenario's); see the module docstring."""
    algo = registry.load(algorithm) if isinstance(algorithm, str) else algorithm
    label = algorithm if isinstance(algorithm, str) else type(algorithm).name
    cluster = scenario.cluster(trace.n_ves) if cluster is None else cluster
    trace = sorted_trace(trace)
    where = initial(trace, cluster, scenario.placement)
    move_mem = None
    if scenario.memory == "cloudsim-null":
        move_mem = trace.mem_size
        trace = replace(trace, mem=np.where(np.isnan(trace.mem), np.nan, 0.0))
    T, N, dt = trace.n_steps, cluster.n_nodes, trace.interval
    pair_idx = pd.factorize(pd.Series(cluster.pairs, dtype=object))[0].astype(np.int64)
    P = n_pairs(pair_idx)
    limit = _pair_limit(cluster, pair_idx, scenario)
    util = np.zeros((T, N, 2))
    active = np.zeros((T, N), dtype=bool)
    watts = np.zeros((T, N))
    short = np.zeros((T, P), dtype=bool)
    moves, switch, moved_bytes = (np.zeros(T, dtype=np.int64) for _ in range(3))
    lost, asked = np.zeros(T), np.zeros(T)
    plans = refused = busy = 0
    notes: list[str] = []
    seg = Segments.empty()
    busy_until = -np.inf
    running = ~np.isnan(trace.cpu)
    with tempfile.TemporaryDirectory(prefix="lbvm-sim-") as tmp:
        engine = _store(cluster, trace, where, Path(tmp))
        try:
            planner = _Planner(engine, trace, cluster, scenario, algo, label, move_mem)
            for t in range(T):
                k0 = trace.start + t * dt
                k1 = k0 + dt
                rows = intervals.presence(where, seg, k0, k1)
                cpu_load = intervals.load(rows, trace.cpu[:, t], N)
                mem_load = intervals.load(rows, trace.mem[:, t], N)
                util[t, :, 0] = cpu_load / cluster.cpus
                util[t, :, 1] = mem_load / cluster.mem_bytes
                active[t] = _active(intervals.occupied(rows, running[:, t], N), pair_idx,
                                    scenario.switch_off)
                watts[t] = np.where(active[t], power(cluster.power, util[t, :, 0]), 0.0)
                pl = pair_load(pair_idx, np.stack([cpu_load, mem_load], axis=1))
                short[t] = (pl > limit * (1 + 1e-9)).any(axis=1)
                lost[t] = intervals.degraded(seg, trace.cpu[:, t], scenario.pdm_share, k0, k1)
                asked[t] = float(np.nansum(trace.cpu[:, t])) * dt
                if progress is not None:
                    progress(1)
                if not _due(k0, k1, nightly, scenario.nightly_at):
                    continue
                if busy_until > k1:
                    busy += 1
                    continue
                where = seg.final(where)
                seg = Segments.empty()
                problem, plan, done, reasons = planner.run(planner.problem(t, where), k1)
                plans += 1
                if reasons:
                    refused += 1
                    if len(notes) < 5:
                        notes.append(f"interval {t}: plan refused: {reasons[0]}")
                    continue
                seg, busy_until = _schedule(problem, plan, done, k1, scenario.bandwidth,
                                            planner.limits)
                moves[t] = len(done)
                ps = problem.pair[seg.src]
                switch[t] = int(np.sum((ps >= 0) & (ps == problem.pair[seg.dst])))
                moved_bytes[t] = int(np.sum(_cost(problem, seg)))
        finally:
            engine.dispose()
    return ReplayResult(label, trace, cluster, scenario, nightly, util, active, watts, short,
                        moves, switch, moved_bytes, lost, asked, plans, refused, busy,
                        tuple(notes))


def _pair_limit(cluster: Cluster, pair_idx: np.ndarray, scenario: SimScenario) -> np.ndarray:
    """[P, R] load each pair may carry and still fail over (weaker node × overcommit)."""
    cap = np.stack([cluster.cpus, cluster.mem_bytes], axis=1)
    weakest = np.full((n_pairs(pair_idx), 2), np.inf)
    paired = pair_idx >= 0  # -1: in no pair
    np.minimum.at(weakest, pair_idx[paired], cap[paired])
    over = scenario.balance.failover_overcommit
    return weakest * np.array([over["cpu"], over["mem"]])


def _active(occupied: np.ndarray, pair_idx: np.ndarray, rule: str) -> np.ndarray:
    if rule == "never":
        return np.ones_like(occupied)
    if rule == "pair":  # a node in no pair is on when it is occupied
        paired = pair_idx >= 0
        used = np.bincount(pair_idx[paired], weights=occupied[paired].astype(np.float64),
                           minlength=n_pairs(pair_idx)) > 0
        return np.where(paired, np.r_[used, False][pair_idx], occupied)
    return occupied


def _cost(problem: Problem, seg: Segments) -> np.ndarray:
    same = (problem.pair[seg.src] >= 0) & (problem.pair[seg.src] == problem.pair[seg.dst])
    return np.where(same, problem.move_cost[seg.ve, 0], problem.move_cost[seg.ve, 1])


def _schedule(problem: Problem, plan: Plan, done: list[int], at: float,
              bandwidth: float, limits: Limits) -> tuple[Segments, float]:
    """The done moves as segments of bytes / bandwidth seconds each, started from ``at`` as
    the executor would start them (see ``timeline``); and when the last one ends."""
    if not done:
        return Segments.empty(), at
    names = {n: i for i, n in enumerate(problem.nodes)}
    moved = plan.moves[:len(done)]  # a run that is not 'failed' did every move
    ve = np.array(done, dtype=np.int64)
    src = np.array([names[m.src] for m in moved], dtype=np.int64)
    dst = np.array([names[m.dst] for m in moved], dtype=np.int64)
    seg = Segments(ve, src, dst, np.zeros(len(ve)), np.zeros(len(ve)))
    secs = _cost(problem, seg) / bandwidth
    start = timeline(secs, src, dst, dependencies(moved, limits.pairs), limits, at)
    end = start + secs
    return Segments(ve, src, dst, start, end), float(end.max())


def timeline(secs: np.ndarray, src: np.ndarray, dst: np.ndarray, deps: list[set[int]],
             limits: Limits, at: float) -> np.ndarray:
    """Start time of each move, as ``executor.execute`` starts them: in plan order, a move
    starts once the earlier moves it depends on (``executor.dependencies``) have ended, with
    fewer than ``max_parallel`` moves running and fewer than ``max_per_node`` on each of its
    nodes; after moves end, ``pause`` passes before the next starts. One loop step per move
    (a plan has at most a few hundred), not per sample."""
    n = len(secs)
    start = np.full(n, np.nan)
    pending = list(range(n))
    running: dict[int, float] = {}
    per_node: dict[int, int] = {}
    finished: set[int] = set()
    now = at
    while pending:
        for i in list(pending):
            if len(running) >= limits.max_parallel:
                break
            nodes = {int(src[i]), int(dst[i])}
            if not deps[i] <= finished or any(per_node.get(x, 0) >= limits.max_per_node
                                               for x in nodes):
                continue
            pending.remove(i)
            start[i] = now
            running[i] = now + float(secs[i])
            for x in nodes:
                per_node[x] = per_node.get(x, 0) + 1
        if not running:  # cannot happen: a move depends only on earlier ones
            raise LbvmError("simulated executor stalled: no move can start")
        now = min(running.values())
        for i in [j for j, end in running.items() if end <= now]:
            del running[i]
            finished.add(i)
            for x in {int(src[i]), int(dst[i])}:
                per_node[x] -= 1
        if pending:
            now += limits.pause
    return start
