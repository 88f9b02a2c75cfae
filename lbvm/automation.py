"""What the monitor may do with a plan: automation levels, the migration threshold, cooldowns.

Modelled on VMware DRS. Every VE has an automation level, its own (``ves.automation``, set
with ``lbm automation``) or else the cluster's (``[monitor].automation``):

- ``report``: its moves are logged, never made or stored, not even mandatory ones;
- ``recommend``: its moves are stored in a plan for ``lbm plan --apply ID``;
- ``automatic``: its moves are executed by the nightly run.

The migration threshold (``[monitor].threshold``, 1-5) says how much a move must gain:

    threshold   a move is made when it is mandatory, or it lowers the score by at least
    1           (mandatory moves only)
    2           1000 x min_gain
    3           100 x min_gain   (default)
    4           10 x min_gain
    5           min_gain         (every move the algorithm proposes)

A move is *mandatory* when, at its place in the plan, it evacuates a maintenance node or a
node the VE's rules forbid, takes load off a node over max_utilisation, moves a VE out of a
pair that could not fail over, separates an anti-affinity group sharing a pair, or brings a
VE to the node of its affinity group when the group is split. This is
judged from the Problem, not from the algorithm's words, so it holds for every algorithm.

Filtering keeps the plan valid: moves are taken in plan order and each one kept is checked
by the shared validator after the moves kept before it; a move that no longer fits is held
back with the validator's reason. An affinity group's move (its members' consecutive moves
to one node) is kept or held whole, judged by its summed gain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, select

from algorithms.base import Move, Plan, Problem
from algorithms.pairs import maintenance, node_limit, pair_limit, pair_load
from lbvm.config import AUTOMATION
from lbvm.store.schema import ves
from lbvm.validate import units, validate

THRESHOLDS = (1, 2, 3, 4, 5)
_FACTOR = {1: math.inf, 2: 10.0, 3: 5.0, 4: 2.0, 5: 1.0}
_TOL = 1e-9


def required_gain(threshold: int, min_gain: float) -> float:
    """The gain × N (score drop times the number of nodes, as algorithms' min_gain is read)
    an optional move needs at ``threshold`` (inf at 1: none qualifies)."""
    if threshold not in _FACTOR:
        raise ValueError(f"threshold {threshold!r} is not one of {THRESHOLDS}")
    return _FACTOR[threshold] * max(min_gain, 0.0)


@dataclass(frozen=True)
class Judged:
    """One move as judged where it stands: its gain and why it is mandatory ("" if not)."""

    move: Move
    gain: float
    mandatory: str


@dataclass(frozen=True)
class Held:
    """A move left out, and why."""

    move: Move
    why: str


@dataclass(frozen=True)
class Decision:
    """The nightly run's verdict on a plan: what to execute, what to store, what to leave."""

    execute: Plan
    recommend: Plan
    held: tuple[Held, ...]
    mandatory: frozenset[Move]  # the moves (of execute and recommend) that are mandatory


class _Sim:
    """Placement and loads while walking a plan, one move at a time (O(N·R) per move)."""

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self.index_ve = {v: i for i, v in enumerate(problem.ves)}
        self.index_node = {n: i for i, n in enumerate(problem.nodes)}
        self.where = np.array(problem.placement, dtype=np.int64)
        self.load = problem.load(self.where)
        self.limit = node_limit(problem)
        self.plimit = pair_limit(problem)
        self.maint = maintenance(problem)

    def score(self, load: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.nan_to_num(load / self.p.capacity, nan=0.0, posinf=0.0)
        return float(np.sum(self.p.settings.weights * u.std(axis=0)))

    def judge(self, move: Move) -> Judged:
        v, s, d = (self.index_ve.get(move.ve), self.index_node.get(move.src),
                   self.index_node.get(move.dst))
        if v is None or s is None or d is None:
            return Judged(move, -math.inf, "")
        after = self.load.copy()
        after[s] -= self.p.demand[v]
        after[d] += self.p.demand[v]
        gain = self.score(self.load) - self.score(after)
        return Judged(move, gain, self._why(v, s, d))

    def _why(self, v: int, s: int, d: int) -> str:
        p = self.p
        if self.maint[s]:
            return f"evacuates {p.nodes[s]} (maintenance)"
        if not p.allowed[v, s]:
            return f"leaves {p.nodes[s]}, which the rules of {p.ves[v]} forbid"
        dem = p.demand[v] > 0
        if (dem & (self.load[s] > self.limit[s] * (1 + _TOL))).any():
            return f"relieves {p.nodes[s]} (over max_utilisation)"
        ps, pd_ = int(p.pair[s]), int(p.pair[d])
        if ps >= 0 and ps != pd_:
            pload = pair_load(p.pair, self.load)[ps]
            if (dem & (pload > self.plimit[ps] * (1 + _TOL))).any():
                return f"restores the failover headroom of {p.nodes[s]}'s pair"
        anti = p.anti_affinity
        if anti is not None and anti[v] >= 0 and ps >= 0 and ps != pd_:
            mates = np.flatnonzero(anti == anti[v])
            mates = mates[mates != v]
            if (p.pair[self.where[mates]] == ps).any():
                return f"separates anti-affinity group {int(anti[v])} sharing a pair"
        aff = p.affinity
        if aff is not None and aff[v] >= 0:
            mates = np.flatnonzero(aff == aff[v])
            on = self.where[mates]
            if (on != on[0]).any() and (on[mates != v] == d).any():
                return f"joins affinity group {int(aff[v])} on {p.nodes[d]}"
        return ""

    def apply(self, move: Move) -> None:
        v, s, d = self.index_ve[move.ve], self.index_node[move.src], self.index_node[move.dst]
        self.load[s] -= self.p.demand[v]
        self.load[d] += self.p.demand[v]
        self.where[v] = d


def judge(problem: Problem, plan: Plan) -> tuple[Judged, ...]:
    """Each move's gain and mandatory reason, in plan order, as if every earlier one ran."""
    sim = _Sim(problem)
    out = []
    for m in plan.moves:
        j = sim.judge(m)
        out.append(j)
        if j.gain > -math.inf:
            sim.apply(m)
    return tuple(out)


def select_moves(
    problem: Problem,
    plan: Plan,
    keep: Callable[[Judged], str],
) -> tuple[Plan, tuple[Held, ...], frozenset[Move]]:
    """The moves ``keep`` accepts (it returns "" to keep, else why not), in plan order, each
    judged and validated after the moves kept before it.

    Returns the plan of kept moves (scores recomputed), the moves held back with the reason,
    and the kept moves that are mandatory.
    """
    sim = _Sim(problem)
    kept: list[Move] = []
    held: list[Held] = []
    mandatory: set[Move] = set()
    for unit in units(problem, plan.moves):
        # an affinity group's move is kept or held whole, judged by its summed gain
        ms = [plan.moves[i] for i in unit]
        load, where = sim.load.copy(), sim.where.copy()
        js = []
        for m in ms:
            js.append(sim.judge(m))
            if js[-1].gain > -math.inf:
                sim.apply(m)
        sim.load, sim.where = load, where
        gain = sum(j.gain for j in js)
        must = next((j.mandatory for j in js if j.mandatory), "")
        why = next((w for m in ms if (w := keep(Judged(m, gain, must)))), "")
        if not why:
            reasons = validate(problem, Plan(plan.algorithm, (*kept, *ms), 0.0, 0.0))
            why = f"no longer valid without the moves left out: {reasons[0]}" if reasons else ""
        if why:
            held += [Held(m, why) for m in ms]
            continue
        if must:
            mandatory.update(ms)
        kept += ms
        for m in ms:
            sim.apply(m)
    notes = plan.notes
    if held:
        notes = (*notes, f"{len(held)} of {len(plan.moves)} move(s) held back")
    out = Plan(plan.algorithm, tuple(kept), problem.score(), sim.score(sim.load), notes)
    return out, tuple(held), frozenset(mandatory)


def apply_threshold(
    problem: Problem, plan: Plan, threshold: int
) -> tuple[Plan, tuple[Held, ...], frozenset[Move]]:
    """The plan's mandatory moves and those gaining enough at ``threshold``, still valid."""
    need = required_gain(threshold, problem.settings.min_gain)

    def keep(j: Judged) -> str:
        if j.mandatory or j.gain * problem.n_nodes >= need:
            return ""
        return f"gain×N {j.gain * problem.n_nodes:.3g} below {need:.3g} (threshold {threshold})"

    return select_moves(problem, plan, keep)


def decide(
    problem: Problem,
    plan: Plan,
    *,
    level: str,
    ve_levels: Mapping[str, str],
    threshold: int,
) -> Decision:
    """Split a valid plan by automation level and threshold (see the module docstring).

    Moves of VEs at 'report' and optional moves below the threshold are held back. Of the
    rest, the moves of VEs at 'automatic' form the plan to execute (re-validated on its
    own); the moves of VEs at 'recommend' form the plan to store.
    """
    if level not in AUTOMATION:
        raise ValueError(f"automation level {level!r} is not one of {', '.join(AUTOMATION)}")

    def of(ve: str) -> str:
        return ve_levels.get(ve) or level

    need = required_gain(threshold, problem.settings.min_gain)

    def actionable(j: Judged) -> str:
        if of(j.move.ve) == "report":
            return f"VE {j.move.ve} is at automation level report"
        if j.mandatory or j.gain * problem.n_nodes >= need:
            return ""
        return f"gain×N {j.gain * problem.n_nodes:.3g} below {need:.3g} (threshold {threshold})"

    wanted, held, mandatory = select_moves(problem, plan, actionable)
    execute, later, _ = select_moves(
        problem, wanted,
        lambda j: "" if of(j.move.ve) == "automatic" else "recommend",
    )
    stored = tuple(h.move for h in later if h.why == "recommend")
    dropped = tuple(h for h in later if h.why != "recommend")
    recommend = Plan(plan.algorithm, stored, plan.score_before, plan.score_before)
    return Decision(execute, recommend, (*held, *dropped), mandatory)


# -- the store ---------------------------------------------------------------------------


def ve_levels(engine: Engine) -> dict[str, str]:
    """VE -> its own automation level, for the VEs that have one."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(ves.c.ve, ves.c.automation).where(ves.c.automation.is_not(None))
        ).all()
    return {str(ve): str(level) for ve, level in rows if level in AUTOMATION}


def cooldown_mask(engine: Engine, names: Sequence[str], now: float) -> np.ndarray:
    """[V] bool: True for the VEs of ``names`` whose cooldown has not passed at ``now``."""
    with engine.connect() as conn:
        cooling = conn.execute(
            select(ves.c.ve).where(ves.c.cooldown_until > now)
        ).scalars().all()
    return np.isin(np.asarray(names, dtype=object), np.asarray(cooling, dtype=object))
