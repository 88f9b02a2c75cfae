"""Drain a node for maintenance, and bring its VEs back afterwards: pure Problem -> Plan.

A drain evacuates every VE of one node. Each VE goes to its node's HA partner when the
partner has room (a switchover: the data is already mirrored), else to the node of another
pair where it leaves the lowest weighted utilisation, never breaking a target's
``max_utilisation`` or the failover headroom of the target's pair. The biggest VEs are
placed first, while there is most room. VEs that cannot leave (pinned, out of balancing,
not measured, no room anywhere) stay and are named in the plan's notes.

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

    def fits(self, v: int) -> np.ndarray:
        """[N] bool: targets that take VE ``v`` without breaking a limit (the validator's
        rules: only resources that rise are checked)."""
        d = self.p.demand[v]
        rises = d > 0
        node_ok = ~(((self.load + d) > self.limit * (1 + _TOL)) & rises).any(axis=1)
        pair = self.p.pair
        pair_ok = np.ones(self.p.n_nodes, dtype=bool)
        paired = pair >= 0
        over = (self.pload[pair[paired]] + d) > self.plimit[pair[paired]] * (1 + _TOL)
        pair_ok[paired] = ~(over & rises).any(axis=1)
        return node_ok & (pair_ok | self.same_pair(v))

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


def drain_plan(problem: Problem, node: str) -> Plan:
    """Moves taking every VE off ``node``; see the module docstring for the choices."""
    n = node_index(problem, node)
    room = _Room(problem)
    mate = int(partner(problem.pair)[n])
    blocked = maintenance(problem).copy()
    blocked[n] = True
    on_node = np.flatnonzero(problem.placement == n)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.nan_to_num(problem.demand[on_node] / problem.capacity.max(axis=0))
    order = on_node[np.argsort(-share.max(axis=1), kind="stable")]
    weights = problem.settings.weights
    reason = DRAIN.format(node=node)
    moves: list[Move] = []
    notes: list[str] = []
    for v in order:
        ve = problem.ves[v]
        if not problem.movable[v]:
            notes.append(f"VE {ve} stays on {node}: pinned, out of balancing or not measured")
            continue
        ok = problem.allowed[v] & ~blocked & room.fits(v)
        if not ok.any():
            notes.append(f"VE {ve} stays on {node}: no allowed node has room for it")
            continue
        if mate >= 0 and ok[mate]:
            moves.append(room.move(v, mate, f"{reason}: to its HA partner"))
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            after = np.nan_to_num((room.load + problem.demand[v]) / problem.capacity)
        cost = np.where(ok, (after * weights).max(axis=1), np.inf)
        t = int(np.argmin(cost))
        why = "partner full" if mate >= 0 else "no partner"
        moves.append(room.move(v, t, f"{reason}: {why}, most room on {problem.nodes[t]}"))
    notes.insert(0, f"drain of {node}: {len(moves)} of {len(on_node)} VE(s) leave")
    return Plan("drain", tuple(moves), problem.score(), problem.score(room.where), tuple(notes))


def return_plan(problem: Problem, homes: Mapping[str, str], node: str) -> Plan:
    """Moves bringing VEs back to where a drain of ``node`` took them from.

    ``homes`` maps VE -> node it was drained from (read from the journal by the caller).
    A VE that is gone, already home, pinned or no longer fits there is named in the notes
    and left where it is.
    """
    room = _Room(problem)
    index = {v: i for i, v in enumerate(problem.ves)}
    blocked = maintenance(problem)
    reason = RETURN.format(node=node)
    moves: list[Move] = []
    notes: list[str] = []
    for ve, home in homes.items():
        v = index.get(ve)
        if v is None:
            notes.append(f"VE {ve} has no recent samples: not brought back")
            continue
        if home not in problem.nodes:
            notes.append(f"VE {ve}: its home {home} is in no configured pair")
            continue
        t = problem.nodes.index(home)
        if room.where[v] == t:
            continue
        if not problem.movable[v]:
            notes.append(f"VE {ve} stays: pinned, out of balancing or not measured")
        elif blocked[t] or not problem.allowed[v, t]:
            notes.append(f"VE {ve} stays: {home} takes no VEs (maintenance)")
        elif not room.fits(v)[t]:
            notes.append(f"VE {ve} stays: {home} has no room for it now")
        else:
            moves.append(room.move(v, t, reason))
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
