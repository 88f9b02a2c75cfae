"""``consolidate``: pack VEs onto fewer HA pairs so whole pairs can be powered down.

What it optimises: the number of pairs that carry VEs, within the same limits every plan
keeps — ``max_utilisation`` on each node and failover headroom in each pair (the survivor
of a kept pair can still carry it) — with few moves: pairs are emptied whole, least loaded
first, and VEs on kept pairs stay where they are. Each pair's VEs go best-fit decreasing
(largest first, each to the kept node it fills most tightly); if any of them fits nowhere,
that pair's moves are taken back and it stays powered. A target keeps ``HEADROOM`` of its
node limit and of its pair's limit free, so the next plan does not start with repairs. Empty
pairs that could be powered down are listed in the notes (``pair=A+B can be powered down``).

What it needs: ``demand``, ``capacity``, ``placement``, ``pair`` and the rules. Pairs with a
VE that cannot leave (pinned, in an affinity group, rules) are kept. Nodes outside any pair
are never emptied. Evacuations and repairs come first, as in ``balance``, onto pairs that
already carry VEs when they can; only for what is left are powered-down pairs switched on,
one, then two, four, ... at a time, those most of the waiting VEs may go to first. Emptying a
pair can make room for an evacuation that was stuck; evacuating and packing then run again
(at most ``ROUNDS`` times). When a VE the plan already moved keeps a pair from being emptied
(each VE moves once per plan) and no budget is set, the plan is made again on its own result
until nothing is left and each VE goes straight where it settles (``algorithms.settle``), so
a second run on the result has nothing to do.

Limits: greedy (best-fit decreasing is within 11/9 of the fewest bins for one resource, no
such bound for several); it does not balance the pairs it keeps — run ``balance`` after.
Budgets can stop it part way: a pair is only counted when it is empty. After ``GIVE_UP``
pairs in a row could not be emptied it stops trying (the later pairs are fuller still).

Cost in V, N (v̄ VEs per pair): per pair tried O(v̄ · N · R) to place its VEs; at most
``GIVE_UP`` failed pairs in a row per round. Settling, when it runs, costs up to two plans
more. A plan takes 0.3 s CPU at 200 nodes and 4,000 VEs, 1.7 s at 1,000 and 20,000
(synthetic clusters, no move budget).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from algorithms.balance import mandatory
from algorithms.base import Plan, Problem
from algorithms.common import finish
from algorithms.pairs import check_shapes
from algorithms.rules import anti_crowded
from algorithms.settle import settle
from algorithms.state import Pick, State

HEADROOM = 0.9  # a packing target stays under this share of its node limit and pair limit
ROUNDS = 3  # evacuate-and-pack rounds: a later one runs only when the last changed something
GIVE_UP = 8  # pairs in a row that could not be emptied before packing stops trying


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
            notes, blocked = _rounds(st)
            s = problem.settings
            budget = (s.max_moves, s.max_bytes, s.max_moves_per_node) != (None, None, None)
            settled = settle(problem, st, _rounds) if blocked and not budget else None
            if settled is not None:
                st = settled
                notes.append("planned again on its own result until nothing was left to do; "
                             "each VE moves once, straight to where it settles")
            notes += _power_notes(st, problem)
        return finish(self.name, problem, st, notes)


def _rounds(st: State) -> tuple[list[str], bool]:
    """Mandatory moves then packing, again while packing freed room for a stuck evacuation.
    Returns the notes and whether a VE this plan moved kept a pair from being emptied."""
    notes = _mandatory(st)
    blocked = False
    for _ in range(ROUNDS - 1):
        blocked |= _pack(st)
        if not st.budget_left():
            return notes, blocked
        moves = len(st.moves)
        later = _mandatory(st)
        if len(st.moves) == moves:
            return notes, blocked
        notes.append(f"emptying pairs made room for {len(st.moves) - moves} more mandatory "
                     "move(s)")
        notes += [n for n in later if n not in notes]
    return notes, _pack(st) or blocked


def _mandatory(st: State) -> list[str]:
    """Evacuations and repairs onto the pairs that already carry VEs (and nodes outside any
    pair); while some are left undone, switch on more pairs — one, then two, four, ... — those
    most of the waiting VEs may go to first. Notes: what was done, what is left undone."""
    moves, woken = len(st.moves), 0
    in_use = _in_use(st)
    batch = 1
    while True:
        if in_use.all():
            notes = _mandatory_now(st)
            break
        notes = _restricted(st, in_use)
        waiting = _waiting(st)
        if not waiting.any() or not st.budget_left():
            break
        more = _wake(st, in_use, waiting, batch)
        if not more.any():
            notes = _mandatory_now(st)  # the waiting VEs may go nowhere else: say so
            break
        woken += len(np.unique(st.pair[more]))
        in_use |= more
        batch *= 2
    done = len(st.moves) - moves
    out = [f"{done} evacuation or repair move(s) first"] if done else []
    if woken:
        out.append(f"{woken} powered-down pair(s) switched on for them")
    # the pass's own counts cover only its last round: keep what it says is left undone
    return out + [n for n in notes
                  if not n.startswith("evacuated ") and "repair move(s) come first" not in n]


def _restricted(st: State, in_use: np.ndarray) -> list[str]:
    """``mandatory`` with only the ``in_use`` nodes as targets."""
    maint = st.maint
    # the other nodes count as maintenance (never targets): the state recomputes dst_ok
    # from maint when a node's move budget runs out, so both are set
    st.maint = maint | ~in_use
    st.dst_ok = st.dst_ok & in_use
    try:
        return _mandatory_now(st)
    finally:
        st.maint = maint
        st.dst_ok = _dst_ok(st)


def _waiting(st: State) -> np.ndarray:
    """[V] bool: VEs a mandatory pass would still move (free and not moved yet): on a
    maintenance or forbidden node, crowding an anti-affinity peer, on a node over its limit
    or in a pair that cannot fail over."""
    here = st.placement
    must = st.maint[here] | ~st.allowed[np.arange(len(here)), here]
    must |= anti_crowded(replace(st.p, placement=here))
    over_node = ((st.load - st.limit) * st.inv_limit).max(axis=1) > 1e-9
    over_pair = ((st.pload - st.plim_f) * st.inv_plim).max(axis=1, initial=-np.inf) > 1e-9
    must |= over_node[here] | np.r_[over_pair, False][st.pair[here]]  # -1: outside pairs
    return must & st.free & ~st.moved


def _wake(st: State, in_use: np.ndarray, waiting: np.ndarray, k: int) -> np.ndarray:
    """[N] bool: the nodes of up to ``k`` unused pairs, those the most waiting VEs may go
    to first (none when no unused pair takes any of them)."""
    welcome = st.allowed[waiting].sum(axis=0) * ~in_use
    paired = st.pair >= 0
    per_pair = np.zeros(len(st.plim), dtype=np.int64)
    np.maximum.at(per_pair, st.pair[paired], welcome[paired])
    best = np.argsort(-per_pair, kind="stable")[:k]
    best = best[per_pair[best] > 0]
    return np.isin(st.pair, best) & paired


def _mandatory_now(st: State) -> list[str]:
    """``mandatory`` on the current placement: the evacuation reads anti-affinity crowding
    from ``st.p``, so it is shown where the VEs are now (a VE whose peer has left its pair
    since is not sent away)."""
    st.p = replace(st.p, placement=st.placement.copy())
    return mandatory(st)


def _in_use(st: State) -> np.ndarray:
    """[N] bool: nodes outside any pair, and the nodes of pairs carrying VEs."""
    carried = np.zeros(len(st.plim) + 1, dtype=bool)
    carried[st.pair[st.placement]] = True  # -1 (outside pairs) lands on the spare last slot
    carried[-1] = True
    return carried[st.pair]


def _dst_ok(st: State) -> np.ndarray:
    """Targets as the state defines them: not in maintenance, node move budget left."""
    per_node = st.p.settings.max_moves_per_node
    ok = ~st.maint
    return ok if per_node is None else ok & (st.node_moves < per_node)


def _pack(st: State) -> bool:
    """Empty whole pairs, least loaded first, into the pairs that stay. True when a pair
    that could not be emptied holds a VE this plan has moved already."""
    pairs = st.members
    n_pairs = len(pairs)
    blocked = False
    if n_pairs < 2:
        return blocked
    on = st.pair[st.placement]
    on_pair = np.bincount(on[on >= 0], minlength=n_pairs)
    free_on_pair = np.array([sum(len(st.node_ves[n]) for n in m) for m in pairs])
    # a pair with a VE that cannot leave is kept
    keep = on_pair != free_on_pair
    share = (st.pload * st.inv_plim).max(axis=1)
    dropped = on_pair == 0
    failed = 0
    for p in np.argsort(share, kind="stable"):
        if dropped[p] or keep[p]:
            continue
        if (~dropped).sum() <= 1 or not st.budget_left() or failed >= GIVE_UP:
            break
        here = np.array([v for n in pairs[p] for v in st.node_ves[n]], dtype=np.int64)
        if _empty(st, dropped, int(p), here):
            dropped[p] = True
            failed = 0
        else:
            failed += 1
            blocked |= bool(st.moved[here].any())
    return blocked


def _power_notes(st: State, problem: Problem) -> list[str]:
    """Which pairs carry no VE at the end of the plan."""
    n_pairs = len(st.members)
    if n_pairs < 2:
        return []
    on = st.pair[st.placement]
    empty = np.bincount(on[on >= 0], minlength=n_pairs) == 0
    notes = [f"pair={'+'.join(problem.nodes[n] for n in st.members[p])} can be powered down "
             "(no VEs left)" for p in np.flatnonzero(empty)]
    notes.append(f"{int((~empty).sum())} of {n_pairs} pair(s) carry VEs")
    return notes


def _empty(st: State, dropped: np.ndarray, p: int, vs: np.ndarray) -> bool:
    """Move every VE of pair ``p`` onto the kept pairs, or take the moves back."""
    pairs = st.members
    closed = np.zeros(st.n, dtype=bool)
    for q in np.flatnonzero(dropped):
        closed[pairs[q]] = True
    closed[pairs[p]] = True
    size = (st.dem[vs] * st.inv_cap[st.placement[vs]]).max(axis=1)
    made: list[tuple[int, int]] = []  # (VE, node it was on before this pair's moves)
    names = "+".join(st.p.nodes[n] for n in pairs[p])
    for v in vs[np.argsort(-size, kind="stable")]:
        ds = np.flatnonzero(st.open_targets() & ~closed)
        ds = ds[_headroom(st, int(v), ds)]
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


def _headroom(st: State, v: int, ds: np.ndarray) -> np.ndarray:
    """[D] bool: targets that stay under HEADROOM of their node limit, and of their pair's
    limit when the VE comes from another pair, once ``v`` is on them."""
    dem = st.dem[v]
    ok = (st.load[ds] + dem <= HEADROOM * st.limit[ds] + 1e-9).all(axis=1)
    pd = st.pair[ds]
    other = (pd >= 0) & (pd != st.pair[st.placement[v]])
    if other.any():
        q = pd[other]
        ok[other] &= (st.pload[q] + dem <= HEADROOM * st.plim[q] + 1e-9).all(axis=1)
    return ok
