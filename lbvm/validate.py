"""The shared plan validator: every plan, from any algorithm, is checked here before use.

Moves are applied in order; after each one the target node must stay under
``max_utilisation`` (only resources whose load rises are checked, so a node already over may
still shrink) and the target's pair must still be able to fail over, unless the move is a
switchover inside one pair (the pair total does not change). Pins, must rules (``allowed``),
maintenance, the kind of move, the budget, each VE moving at most once and anti-affinity (no
move brings a second member of a group into a pair) are checked too. An affinity group moves
as a unit: its members' moves come one right after the other, all to one node (``units``),
and when such a run ends the group shares one node; between its first and last move the
group is split, which nothing else may leave it. Should rules (``preferred``) only warn,
unless ``strict_should``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from algorithms.base import Move, Plan, Problem
from algorithms.pairs import maintenance, node_limit, pair_limit, pair_load
from algorithms.rules import domains, group_ids, preferred
from lbvm import validate_ha
from lbvm.errors import PlanRejected

__all__ = ["Review", "check", "headroom", "review", "units", "validate"]


@dataclass(frozen=True)
class Review:
    """What the validator found: errors refuse the plan, warnings (should rules) do not."""

    errors: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.errors

_TOL = 1e-9


def headroom(problem: Problem, placement: np.ndarray | None = None) -> np.ndarray:
    """Spare capacity [P, R] of each pair's weaker survivor; negative = cannot fail over.

    ``failover_overcommit × min(capacity of the pair's nodes) − pair total load``.
    """
    load = problem.load(placement)
    return pair_limit(problem) - pair_load(problem.pair, load)


def units(problem: Problem, moves: Sequence[Move]) -> list[list[int]]:
    """Indices of ``moves`` cut into units: a run of consecutive moves of members of one
    affinity group to one node is one unit (a group move), any other move a unit alone."""
    affinity = group_ids(problem.affinity, problem.n_ves)
    index = {v: i for i, v in enumerate(problem.ves)}
    out: list[list[int]] = []
    last = (-1, "")
    for i, m in enumerate(moves):
        v = index.get(m.ve)
        g = int(affinity[v]) if v is not None else -1
        if g >= 0 and out and last == (g, m.dst):
            out[-1].append(i)
        else:
            out.append([i])
        last = (g, m.dst)
    return out


def check(problem: Problem, plan: Plan, *, strict_should: bool = False) -> None:
    """Raise PlanRejected with every reason when the plan is not valid."""
    reasons = validate(problem, plan, strict_should=strict_should)
    if reasons:
        raise PlanRejected(reasons)


def validate(problem: Problem, plan: Plan, *, strict_should: bool = False) -> list[str]:
    """Every reason the plan is invalid (empty list: valid), naming move, VE, node, resource.

    Broken should rules are warnings (see ``review``); ``strict_should`` makes them errors.
    """
    found = review(problem, plan)
    return [*found.errors, *found.warnings] if strict_should else list(found.errors)


def review(problem: Problem, plan: Plan) -> Review:
    """Errors and warnings of a plan, each naming the move, VE, node and resource."""
    s = problem.settings
    ves = {v: i for i, v in enumerate(problem.ves)}
    nodes = {n: i for i, n in enumerate(problem.nodes)}
    res = problem.resources
    where = np.array(problem.placement, dtype=np.int64)
    load = problem.load(where)
    limit = node_limit(problem)
    pair = problem.pair
    pload = pair_load(pair, load)
    plimit = pair_limit(problem)
    maint = maintenance(problem)
    per_node = np.zeros(problem.n_nodes, dtype=np.int64)
    spent = 0.0
    out: list[str] = []
    warn: list[str] = []
    first_move: dict[int, int] = {}
    pref = preferred(problem)
    dom = domains(pair)
    anti = group_ids(problem.anti_affinity, problem.n_ves)
    affinity = group_ids(problem.affinity, problem.n_ves)
    run_end = {u[-1]: u[0] for u in units(problem, plan.moves)}

    if s.max_moves is not None and len(plan.moves) > s.max_moves:
        out.append(f"plan has {len(plan.moves)} moves, budget max_moves is {s.max_moves}")
    ended: tuple[int, int, int] | None = None  # (first, last move, group) of a group move
    for i, m in enumerate(plan.moves):
        if ended:
            out += _left_split(problem, plan, affinity, where, *ended)
            ended = None
        at = f"move {i} ({m.ve} {m.src}→{m.dst})"
        v, src, dst = ves.get(m.ve), nodes.get(m.src), nodes.get(m.dst)
        unknown = [f"{what} {name!r}" for what, name, idx in
                   (("VE", m.ve, v), ("node", m.src, src), ("node", m.dst, dst)) if idx is None]
        if unknown:
            out.append(f"{at}: unknown {', '.join(unknown)}")
            continue
        assert v is not None and src is not None and dst is not None
        if affinity[v] >= 0 and i in run_end:
            ended = (run_end[i], i, int(affinity[v]))
        if where[v] != src:
            out.append(f"{at}: {m.ve} is on {problem.nodes[where[v]]} at this point, not {m.src}")
        if v in first_move:
            out.append(f"{at}: {m.ve} already moved in move {first_move[v]}; a plan moves each "
                       "VE at most once")
        first_move.setdefault(v, i)
        if src == dst:
            out.append(f"{at}: source and target are the same node")
            continue
        if not problem.movable[v]:
            out.append(f"{at}: {m.ve} is pinned")
        if not problem.allowed[v, dst]:
            out.append(f"{at}: {m.ve} is not allowed on {m.dst}")
        if maint[dst]:
            out.append(f"{at}: {m.dst} is in maintenance")
        if pref is not None and not pref[v, dst]:
            warn.append(f"{at}: {m.dst} is not a preferred node of {m.ve} (should rule)")
        if anti[v] >= 0 and dom[dst] != dom[where[v]]:
            peers = np.flatnonzero((anti == anti[v]) & (dom[where] == dom[dst]))
            if len(peers):
                out.append(f"{at}: {m.dst} shares a pair with {problem.ves[peers[0]]}, which "
                           f"is in {m.ve}'s anti-affinity group")
        here = int(where[v])
        same = bool(pair[here] >= 0 and pair[here] == pair[dst])
        kind = "switchover" if same else "migrate"
        if m.kind != kind:
            out.append(f"{at}: kind {m.kind!r} but {m.src} and {m.dst} make it a {kind}")
        dem = problem.demand[v]
        rises = dem > 0
        load[here] -= dem
        load[dst] += dem
        over = rises & (load[dst] > limit[dst] * (1 + _TOL))
        for r in np.flatnonzero(over):
            out.append(f"{at}: {m.dst} {res[r]} {load[dst, r]:.6g} over its limit "
                       f"{limit[dst, r]:.6g} (max_utilisation)")
        if not same:
            if pair[here] >= 0:
                pload[pair[here]] -= dem
            if pair[dst] >= 0:
                p = pair[dst]
                pload[p] += dem
                short = rises & (pload[p] > plimit[p] * (1 + _TOL))
                mates = "+".join(problem.nodes[n] for n in np.flatnonzero(pair == p))
                for r in np.flatnonzero(short):
                    out.append(f"{at}: pair {mates} could not fail over: {res[r]} total "
                               f"{pload[p, r]:.6g} > {plimit[p, r]:.6g}")
        where[v] = dst
        spent += float(problem.move_cost[v, 0 if same else 1])
        before = spent - float(problem.move_cost[v, 0 if same else 1])
        if s.max_bytes is not None and spent > s.max_bytes >= before:
            out.append(f"{at}: {spent:.0f} bytes copied so far, budget max_bytes is {s.max_bytes}")
        per_node[[here, dst]] += 1
        if s.max_moves_per_node is not None:
            for n in (here, dst):
                if per_node[n] == s.max_moves_per_node + 1:
                    out.append(f"{at}: {problem.nodes[n]} takes part in more than "
                               f"{s.max_moves_per_node} moves (max_moves_per_node)")
    if ended:
        out += _left_split(problem, plan, affinity, where, *ended)
    out += validate_ha.reasons(problem, plan)
    return Review(tuple(out), tuple(warn))


def _left_split(problem: Problem, plan: Plan, affinity: np.ndarray, where: np.ndarray,
                first: int, last: int, group: int) -> list[str]:
    """The error when the group move of moves ``first``..``last`` leaves its group split."""
    members = np.flatnonzero(affinity == group)
    spread = len(np.unique(where[members]))
    if spread == 1:
        return []
    names = ", ".join(problem.ves[x] for x in members)
    at = (f"move {first}" if first == last else f"moves {first}-{last}")
    return [f"{at} ({', '.join(m.ve for m in plan.moves[first:last + 1])} → "
            f"{plan.moves[last].dst}): affinity group of {names} is left on {spread} nodes; "
            "its members move one right after the other to one node"]
