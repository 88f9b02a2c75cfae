"""Settle a greedy plan: plan again on its own result until nothing is left to do, then make
the whole way there one move per VE, in an order that keeps every step valid.

A greedy plan moves each VE at most once, so a VE it has placed early (an evacuation) can
block a later step (emptying the pair it landed on) that a fresh plan on the result would
take. Settling finds that fixed point, so a second run on the result has nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from algorithms import groups
from algorithms.base import Problem
from algorithms.state import Pick, State


def settle(problem: Problem, st: State, run: Callable[[State], object], rounds: int = 2
           ) -> State | None:
    """A new State going straight from ``problem``'s placement to where ``run`` settles,
    starting from ``st``'s result; None when ``st`` is already settled or no order of the
    moves keeps every step valid (then ``st`` stands).

    The fixed point is found without the move budget; under a budget the way there is cut
    where the budget ends, taking the moves in the order the runs made them (repairs first,
    then unit by unit), and kept only when it leaves no more units carrying VEs than ``st``.
    VEs that no order can move one move each (two VEs swapping units that only one at a
    time may hold, as anti-affinity peers) stay where they were or where ``st`` put them,
    whichever leaves a next run less to undo (``_least_churn``)."""
    s = problem.settings
    budget = (s.max_moves, s.max_bytes, s.max_moves_per_node) != (None, None, None)
    free = replace(problem, settings=replace(s, max_moves=None, max_bytes=None,
                                             max_moves_per_node=None))
    target = st.placement.copy()
    first: dict[int, int] = {}  # VE -> rank of its first move in the runs
    why = {}
    for v, m in zip(_indices(problem, st), st.moves, strict=True):
        first.setdefault(v, len(first))
        why[v] = _why(m.reason)
    for _ in range(rounds):
        nxt = State(replace(free, placement=target))
        run(nxt)
        if not nxt.moves:
            break
        for v, m in zip(_indices(problem, nxt), nxt.moves, strict=True):
            first.setdefault(v, len(first))
            why[v] = _why(m.reason)
        target = nxt.placement.copy()
    if np.array_equal(target, st.placement):
        return None
    rank = first if budget else None
    out = State(problem)
    stuck = order(out, target, why, rank)
    if stuck:
        best = _least_churn(problem, st, run, target, stuck, why, rank)
        if best is None:
            return None
        out = best
    if budget and _carried(out) > _carried(st):
        return None
    return out


def _least_churn(problem: Problem, st: State, run: Callable[[State], object],
                 target: np.ndarray, stuck: list[int], why: dict[int, str],
                 rank: dict[int, int] | None) -> State | None:
    """When some VEs cannot reach ``target`` one move each: the way there with them left
    where they were, or where ``st`` put them, or ``st`` itself (None), whichever a next
    run moves fewest VEs back from, then fewest VEs at all (rare: a few plans more)."""
    best: tuple[tuple[int, int], State | None] = (_churn(problem, st, run), None)
    aims = []
    for fallback in (problem.placement, st.placement):
        aim = target.copy()
        aim[stuck] = fallback[stuck]
        aims += [aim, _trim(st, problem.placement, target, aim)]
    for aim in aims:
        out = State(problem)
        left = order(out, aim, why, rank)
        if left:  # give those up too
            aim[left] = problem.placement[left]
            out = State(problem)
            if order(out, aim, why, rank):
                continue
        churn = _churn(problem, out, run)
        if churn < best[0]:
            best = (churn, out)
    return best[1]


def _trim(st: State, start: np.ndarray, target: np.ndarray, aim: np.ndarray) -> np.ndarray:
    """``aim`` without the moves that only served to empty a unit ``target`` empties and
    ``aim`` does not: those VEs stay where they were."""
    dom = st.dom
    full = np.zeros(int(dom.max(initial=-1)) + 1, dtype=bool)
    full[dom[aim]] = True
    full[dom[target]] = False  # units target keeps carrying are not its emptied ones
    out = aim.copy()
    back = full[dom[start]] & (aim != start)
    out[back] = start[back]
    return out


def _churn(problem: Problem, st: State, run: Callable[[State], object]) -> tuple[int, int]:
    """What a next run on ``st``'s result does: VEs it sends back where this plan took them
    from, and moves in all."""
    nxt = State(replace(problem, placement=st.placement.copy()))
    run(nxt)
    left = {(m.ve, m.src) for m in st.moves}
    return len({(m.ve, m.dst) for m in nxt.moves} & left), len(nxt.moves)


def _carried(st: State) -> int:
    """Units (pairs, nodes outside pairs) carrying VEs."""
    return len(np.unique(st.dom[st.placement]))


def order(st: State, target: np.ndarray, why: dict[int, str],
          rank: dict[int, int] | None = None) -> list[int]:
    """Move every VE to ``target``, sweeping again over those that do not fit yet: largest
    first, or by ``rank`` (then the moves stop where the budget ends). Returns the VEs a
    sweep could place none of (empty: done)."""
    pending = np.flatnonzero(target != st.placement)
    if rank is None:
        size = (st.dem[pending] * st.inv_cap[st.placement[pending]]).max(axis=1)
        todo = [int(v) for v in pending[np.argsort(-size, kind="stable")]]
    else:
        todo = sorted((int(v) for v in pending), key=lambda v: rank.get(v, len(rank)))
    st.use_pref = False  # the runs already weighed the should rules
    while todo:
        rest = []
        for v in todo:
            if not st.budget_left():
                return []
            d = int(target[v])
            if not st.free[v]:  # an affinity group's member: the group goes as a unit
                if st.placement[v] != d and not groups.gather(st, v, d, why.get(v, "")):
                    rest.append(v)
                continue
            g, cost = st.gains(np.array([v]), np.array([d]))
            if g[0, 0] > -np.inf and cost[0, 0] <= st.bytes_left():
                st.apply(Pick(v, d, 0.0), why.get(v, ""))
            else:
                rest.append(v)
        if len(rest) == len(todo):
            return rest
        todo = rest
    return []


def _indices(problem: Problem, st: State) -> list[int]:
    index = {ve: i for i, ve in enumerate(problem.ves)}
    return [index[m.ve] for m in st.moves]


def _why(reason: str) -> str:
    """The cause part of a move's reason (before the load detail and the spread)."""
    parts = reason.split("; ")
    return "; ".join(parts[:-2]) + "; " if len(parts) > 2 else ""
