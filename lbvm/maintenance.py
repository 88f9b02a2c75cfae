"""Drain a node for maintenance, and bring its VEs back afterwards: pure Problem -> Plan.

A drain evacuates every VE of one node. Each VE goes to its node's HA partner when the
partner has room (a switchover: the data is already mirrored), else to the node of another
pair where it leaves the lowest weighted utilisation, never breaking a target's
``max_utilisation`` or the failover headroom of the target's pair. The biggest VEs are
placed first, while there is most room. VEs that cannot leave (pinned, out of balancing,
not measured, no room anywhere) stay and are named in the plan's notes.

An affinity group leaves as a unit: its members' moves come one right after the other, all
to one node that has room for the whole group and that every member's rules allow (the
partner first). A pinned member pins the group; when no node can take the whole group, it
stays and the notes say so, rather than splitting it. Bringing VEs back moves a group the
same way.

The migration budget (max_moves, max_bytes, max_moves_per_node) is a limit on routine
rebalancing; an evacuation the operator asked for is planned and validated without it
(``for_drain``). Capacity, failover headroom, pins and maintenance always hold: the plan
goes through the shared validator like any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from algorithms.base import Move, MoveKind, Plan, Problem
from algorithms.pairs import maintenance, node_limit, pair_limit, pair_load, partner
from algorithms.rules import group_ids, group_members
from lbvm.errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from lbvm.config import Config

__all__ = ["DRAIN", "RETURN", "drain_plan", "for_drain", "node_index", "partner_blockers",
           "return_plan"]

DRAIN = "maintenance drain of {node}"  # every drain move's reason starts with this
RETURN = "back from the maintenance drain of {node}"
_TOL = 1e-9


def node_index(problem: Problem, node: str) -> int:
    """Index of ``node`` in the problem; NotFound when it is in no configured pair."""
    try:
        return problem.nodes.index(node)
    except ValueError:
        raise NotFound(f"node {node!r} is not a node of a configured pair") from None


def for_drain(problem: Problem, node: str, on: bool = True) -> Problem:
    """The problem with ``node``'s maintenance flag set (or cleared) and no move budget.

    Setting the flag forbids the node as a target, as build_problem does for a flagged
    node; clearing it allows the node again (no host rules are modelled besides it).
    """
    n = node_index(problem, node)
    flags = maintenance(problem).copy()
    flags[n] = on
    allowed = problem.allowed.copy()
    allowed[:, n] = not on
    unlimited = replace(problem.settings, max_moves=None, max_bytes=None,
                        max_moves_per_node=None)
    return replace(problem, maintenance=flags, allowed=allowed, settings=unlimited)


class _Room:
    """Node and pair loads as moves are decided, and which targets still fit a VE."""

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self.where = problem.placement.copy()
        self.load = problem.load()
        self.limit = node_limit(problem)
        self.pload = pair_load(problem.pair, self.load)
        self.plimit = pair_limit(problem)

    def same_pair(self, v: int) -> np.ndarray:
        """[N] bool: nodes in the pair of the node VE ``v`` is on now."""
        pair = self.p.pair
        here = pair[self.where[v]]
        return (pair == here) & (here >= 0)

    def fits(self, vs: np.ndarray) -> np.ndarray:
        """[N] bool: targets that take every VE of ``vs`` (those not there yet) without
        breaking a limit (the validator's rules: only resources that rise are checked)."""
        p = self.p
        dem = p.demand[vs]
        total = dem.sum(axis=0)
        there = np.zeros_like(self.load)
        np.add.at(there, self.where[vs], dem)
        moved = total - there
        node_ok = ~(((self.load + moved) > self.limit * (1 + _TOL)) & (moved > 0)).any(axis=1)
        pair = p.pair
        in_pair = np.zeros_like(self.pload)
        home = pair[self.where[vs]]
        np.add.at(in_pair, home[home >= 0], dem[home >= 0])
        pair_ok = np.ones(p.n_nodes, dtype=bool)
        paired = pair >= 0
        arriving = total - in_pair[pair[paired]]
        over = (self.pload[pair[paired]] + arriving) > self.plimit[pair[paired]] * (1 + _TOL)
        pair_ok[paired] = ~(over & (arriving > 0)).any(axis=1)
        return node_ok & pair_ok

    def move(self, v: int, t: int, reason: str) -> Move:
        p = self.p
        s, d = int(self.where[v]), p.demand[v]
        same = bool(self.same_pair(v)[t])
        kind: MoveKind = "switchover" if same else "migrate"
        self.load[s] -= d
        self.load[t] += d
        if not same:
            if p.pair[s] >= 0:
                self.pload[p.pair[s]] -= d
            if p.pair[t] >= 0:
                self.pload[p.pair[t]] += d
        self.where[v] = t
        cost = int(p.move_cost[v, 0 if same else 1])
        return Move(p.ves[v], p.nodes[s], p.nodes[t], kind, reason, cost)


def _units(problem: Problem, vs: np.ndarray) -> list[np.ndarray]:
    """``vs`` in units that move together: each affinity group (all its members, wherever
    they are) that has a VE in ``vs``, and every other VE alone; in the order of ``vs``."""
    aff = group_ids(problem.affinity, problem.n_ves)
    groups = group_members(aff)
    out, seen = [], set()
    for v in vs:
        g = int(aff[v])
        if g < 0:
            out.append(np.array([v]))
        elif g not in seen:
            seen.add(g)
            out.append(groups[g])
    return out


def _label(problem: Problem, unit: np.ndarray) -> str:
    if len(unit) == 1:
        return f"VE {problem.ves[unit[0]]}"
    return f"affinity group of {', '.join(problem.ves[v] for v in unit)}"


def drain_plan(problem: Problem, node: str) -> Plan:
    """Moves taking every VE off ``node``; see the module docstring for the choices."""
    n = node_index(problem, node)
    room = _Room(problem)
    mate = int(partner(problem.pair)[n])
    blocked = maintenance(problem).copy()
    blocked[n] = True
    on_node = np.flatnonzero(problem.placement == n)
    with np.errstate(divide="ignore", invalid="ignore"):
        peak = problem.capacity.max(axis=0)
        units = _units(problem, on_node)
        share = np.array([np.nan_to_num(problem.demand[u].sum(axis=0) / peak).max()
                          for u in units])
    weights = problem.settings.weights
    reason = DRAIN.format(node=node)
    moves: list[Move] = []
    notes: list[str] = []
    for unit in (units[i] for i in np.argsort(-share, kind="stable")):
        what = _label(problem, unit)
        pinned = unit[~problem.movable[unit]]
        if len(pinned) and (len(np.unique(room.where[pinned])) > 1 or room.where[pinned[0]] == n):
            who = f"{problem.ves[pinned[0]]} is " if len(unit) > 1 else ""
            notes.append(f"{what} stays on {node}: {who}pinned, out of balancing or not "
                         "measured")
            continue
        ok = problem.allowed[unit].all(axis=0) & ~blocked & room.fits(unit)
        if len(pinned):
            ok &= np.arange(problem.n_nodes) == room.where[pinned[0]]
        if not ok.any():
            whole = " the whole group" if len(unit) > 1 else " it"
            notes.append(f"{what} stays on {node}: no allowed node has room for{whole}")
            continue
        if mate >= 0 and ok[mate]:
            moves += _move_unit(room, unit, mate, f"{reason}: to its HA partner")
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            after = np.nan_to_num((room.load + problem.demand[unit].sum(axis=0))
                                  / problem.capacity)
        cost = np.where(ok, (after * weights).max(axis=1), np.inf)
        t = int(np.argmin(cost))
        why = "partner full" if mate >= 0 else "no partner"
        moves += _move_unit(room, unit, t, f"{reason}: {why}, most room on {problem.nodes[t]}")
    left = len(on_node) - int((room.where[on_node] != n).sum())
    notes.insert(0, f"drain of {node}: {len(on_node) - left} of {len(on_node)} VE(s) leave")
    return Plan("drain", tuple(moves), problem.score(), problem.score(room.where), tuple(notes))


def _move_unit(room: _Room, unit: np.ndarray, t: int, reason: str) -> list[Move]:
    """The moves of ``unit``'s VEs not on ``t`` yet, one right after the other."""
    if len(unit) > 1:
        reason = f"{reason} ({_label(room.p, unit)} moves as a unit)"
    return [room.move(int(v), t, reason) for v in unit if room.where[v] != t]


def return_plan(problem: Problem, homes: Mapping[str, str], node: str) -> Plan:
    """Moves bringing VEs back to where a drain of ``node`` took them from.

    ``homes`` maps VE -> node it was drained from (read from the journal by the caller).
    A VE that is gone, already home, pinned or no longer fits there is named in the notes
    and left where it is; an affinity group goes back whole or not at all.
    """
    room = _Room(problem)
    index = {v: i for i, v in enumerate(problem.ves)}
    blocked = maintenance(problem)
    reason = RETURN.format(node=node)
    moves: list[Move] = []
    notes: list[str] = []
    known: list[int] = []
    for ve, home in homes.items():
        v = index.get(ve)
        if v is None:
            notes.append(f"VE {ve} has no recent samples: not brought back")
        elif home not in problem.nodes:
            notes.append(f"VE {ve}: its home {home} is in no configured pair")
        else:
            known.append(v)
    for unit in _units(problem, np.array(known, dtype=np.int64)):
        what = _label(problem, unit)
        wanted = {homes[problem.ves[v]] for v in unit if problem.ves[v] in homes}
        if len(wanted) > 1:
            notes.append(f"{what} stays: its members came from {', '.join(sorted(wanted))}")
            continue
        home = wanted.pop()
        t = problem.nodes.index(home)
        movers = unit[room.where[unit] != t]
        if not len(movers):
            continue
        if not problem.movable[movers].all():
            notes.append(f"{what} stays: pinned, out of balancing or not measured")
        elif blocked[t] or not problem.allowed[unit, t].all():
            notes.append(f"{what} stays: {home} takes no VEs (maintenance)")
        elif not room.fits(unit)[t]:
            notes.append(f"{what} stays: {home} has no room for it now")
        else:
            moves += _move_unit(room, unit, t, reason)
    notes.insert(0, f"return to {node}: {len(moves)} of {len(homes)} drained VE(s) go back")
    return Plan("return", tuple(moves), problem.score(), problem.score(room.where), tuple(notes))


def partner_blockers(engine: Engine, config: Config, node: str,
                     now: float | None = None) -> list[str]:
    """Why ``node`` may not be drained now: its partner or its pair as a whole is not
    healthy (the node's own problems do not count: draining it is how they get fixed)."""
    from lbvm.hastate import judge
    from lbvm.store.ha import load

    pair = config.pair_of().get(node)
    state = judge(load(engine), config, now).get(pair or "")
    if state is None or not state.known:
        return []
    return [r.text for r in state.about(node)]
