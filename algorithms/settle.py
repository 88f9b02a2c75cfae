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
    moves keeps every step valid (then ``st`` stands)."""
    target = st.placement.copy()
    why = {int(v): _why(m.reason) for v, m in zip(_indices(problem, st), st.moves, strict=True)}
    for _ in range(rounds):
        nxt = State(replace(problem, placement=target))
        run(nxt)
        if not nxt.moves:
            break
        why.update({int(v): _why(m.reason)
                    for v, m in zip(_indices(problem, nxt), nxt.moves, strict=True)})
        target = nxt.placement.copy()
    if np.array_equal(target, st.placement):
        return None
    out = State(problem)
    return out if order(out, target, why) else None


def order(st: State, target: np.ndarray, why: dict[int, str]) -> bool:
    """Move every VE to ``target`` (largest first, sweeping again over those that do not fit
    yet); False when a sweep places none or the budget runs out."""
    pending = np.flatnonzero(target != st.placement)
    size = (st.dem[pending] * st.inv_cap[st.placement[pending]]).max(axis=1)
    todo = [int(v) for v in pending[np.argsort(-size, kind="stable")]]
    st.use_pref = False  # the runs already weighed the should rules
    while todo:
        rest = []
        for v in todo:
            d = int(target[v])
            if not st.free[v]:  # an affinity group's member: the group goes as a unit
                if st.placement[v] != d and not groups.gather(st, v, d, why.get(v, "")):
                    rest.append(v)
                continue
            g, cost = st.gains(np.array([v]), np.array([d]))
            if not st.budget_left():
                return False
            if g[0, 0] > -np.inf and cost[0, 0] <= st.bytes_left():
                st.apply(Pick(v, d, 0.0), why.get(v, ""))
            else:
                rest.append(v)
        if len(rest) == len(todo):
            return False
        todo = rest
    return True


def _indices(problem: Problem, st: State) -> list[int]:
    index = {ve: i for i, ve in enumerate(problem.ves)}
    return [index[m.ve] for m in st.moves]


def _why(reason: str) -> str:
    """The cause part of a move's reason (before the load detail and the spread)."""
    parts = reason.split("; ")
    return "; ".join(parts[:-2]) + "; " if len(parts) > 2 else ""
