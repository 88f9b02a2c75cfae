"""``consolidate``: pack VEs onto fewer HA pairs so whole pairs can be powered down.

What it optimises: the number of pairs that carry VEs, within the same limits every plan
keeps — ``max_utilisation`` on each node and failover headroom in each pair (the survivor
of a kept pair can still carry it) — with few moves: pairs are emptied whole, least loaded
first, and VEs on kept pairs stay where they are. Each pair's VEs go best-fit decreasing
(largest first, each to the kept node it fills most tightly); if any of them fits nowhere,
that pair's moves are taken back and it stays powered. Empty pairs that could be powered
down are listed in the notes (``pair=A+B can be powered down``).

What it needs: ``demand``, ``capacity``, ``placement``, ``pair`` and the rules. Pairs with a
VE that cannot leave (pinned, in an affinity group, rules) are kept. Nodes outside any pair
are never emptied. Evacuations and repairs come first, as in ``balance``.

Limits: greedy (best-fit decreasing is within 11/9 of the fewest bins for one resource, no
such bound for several); it does not balance the pairs it keeps — run ``balance`` after.
Budgets can stop it part way: a pair is only counted when it is empty.

Cost in V, N (v̄ VEs per pair): per pair tried O(v̄ · N · R) to place its VEs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from algorithms.balance import mandatory
from algorithms.base import Plan, Problem
from algorithms.common import finish
from algorithms.pairs import check_shapes
from algorithms.state import Pick, State, members


class Consolidate:
    """Power-aware best-fit decreasing over whole HA pairs."""

    name: ClassVar[str] = "consolidate"
    summary: ClassVar[str] = (
        "power: empties the least loaded HA pairs into the others (best-fit decreasing, "
        "failover headroom kept) and lists the pairs that could be powered down"
    )

    def plan(self, problem: Problem) -> Plan:
        check_shapes(problem)
        st = State(problem)
        notes: list[str] = []
        if problem.n_ves and problem.n_nodes:
            notes = mandatory(st)
            notes += _pack(st, problem)
        return finish(self.name, problem, st, notes)


def _pack(st: State, problem: Problem) -> list[str]:
    pairs = members(st.pair, len(st.plim))
    n_pairs = len(pairs)
    if n_pairs < 2:
        return []
    ves_of = [np.array([v for n in m for v in st.node_ves[n]], dtype=np.int64) for m in pairs]
    on_pair = np.bincount(st.pair[st.placement][st.pair[st.placement] >= 0],
                          minlength=n_pairs)
    free_on_pair = np.array([len(x) for x in ves_of])
    # a pair with a VE that cannot leave is kept
    keep = on_pair != free_on_pair
    share = (st.pload * st.inv_plim).max(axis=1)
    dropped = on_pair == 0
    notes: list[str] = []
    for p in np.argsort(share, kind="stable"):
        if dropped[p] or keep[p]:
            continue
        if (~dropped).sum() <= 1 or not st.budget_left():
            break
        here = np.array([v for n in pairs[p] for v in st.node_ves[n]], dtype=np.int64)
        if _empty(st, pairs, dropped, int(p), here, problem):
            dropped[p] = True
    for p in np.flatnonzero(dropped):
        names = "+".join(problem.nodes[n] for n in pairs[p])
        notes.append(f"pair={names} can be powered down (no VEs left)")
    kept = int((~dropped).sum())
    notes.append(f"{kept} of {n_pairs} pair(s) carry VEs")
    return notes


def _empty(st: State, pairs: list[np.ndarray], dropped: np.ndarray, p: int, vs: np.ndarray,
           problem: Problem) -> bool:
    """Move every VE of pair ``p`` onto the kept pairs, or take the moves back."""
    closed = np.zeros(st.n, dtype=bool)
    for q in np.flatnonzero(dropped):
        closed[pairs[q]] = True
    closed[pairs[p]] = True
    size = (st.dem[vs] * st.inv_cap[st.placement[vs]]).max(axis=1)
    made: list[tuple[int, int]] = []  # (VE, node it was on before this pair's moves)
    names = "+".join(problem.nodes[n] for n in pairs[p])
    for v in vs[np.argsort(-size, kind="stable")]:
        ds = np.flatnonzero(st.open_targets() & ~closed)
        ok = np.zeros(0, dtype=bool)
        if len(ds) and st.budget_left():
            g, cost = st.gains(np.array([v]), ds)
            ok = (g[0] > -np.inf) & (cost[0] <= st.bytes_left())
        if not ok.any():
            for u, back in reversed(made):  # newest first: each is the last step of its VE
                st.apply(Pick(u, back, 0.0), "")
            return False
        ds = ds[ok]
        # best fit: the target left with the least room (after the VE) on its tightest resource
        room = ((st.limit[ds] - st.load[ds] - st.dem[v]) * st.inv_cap[ds]).min(axis=1)
        d = int(ds[np.argmin(room)])
        made.append((int(v), int(st.placement[v])))
        st.apply(Pick(int(v), d, 0.0), f"empty pair {names} to power it down; ")
    return True
