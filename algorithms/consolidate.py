"""``consolidate``: pack VEs onto fewer units — HA pairs, and nodes outside any pair — so
whole units can be powered down.

What it optimises: the number of units that carry VEs, within the same limits every plan
keeps — ``max_utilisation`` on each node and failover headroom in each pair (the survivor
of a kept pair can still carry it) — with few moves: units are emptied whole, least work
first (on the scale of the largest unit, so a smaller, older node goes before a larger one
as full as it), and VEs on kept units stay where they are. Each unit's VEs go best-fit
decreasing (largest first, each to the kept node it fills most tightly); if any of them fits
nowhere, that unit's moves are taken back and it stays powered. A target fills at most
``Settings.headroom`` (0.9) of its node limit and of its pair's limit, so the next plan does
not start with repairs, and takes at most ``Settings.inflow`` (12) moves per plan (moves
into one node run one at a time). Empty units that could be powered down are listed in the notes.

With a time profile (``Problem.profile``, e.g. the last 24 hours) a target is also sized on
the ``Settings.quantile`` of the SUMMED profile of the VEs it would hold, within the
headroom of its limits (VEs whose peaks do not coincide share room; a pair's failover limit
at the stricter ``Settings.pair_quantile``), and before packing, nodes whose
summed profile is over their limit at that quantile are relieved (``_relieve``): their VEs
that weigh most at the node's busiest steps go to units in use with room, or to the largest
node of an unused unit. The demand statistic then only needs to say what a VE uses now
(e.g. the mean over the last hour): the validator and the repairs hold the plan to it.

What it needs: ``demand``, ``capacity``, ``placement``, ``pair`` and the rules; ``profile``
if given. Units with a VE that cannot leave (pinned, in an affinity group, rules) are kept.
Evacuations and repairs come first, as in ``balance`` (an affinity group as a unit), onto
units that already carry VEs when they can; only for what is left are powered-down units
switched on, one, then two, four, ... at a time, those most of the waiting VEs may go to
first. Emptying a unit can make room for an evacuation that was stuck; evacuating and
packing then run again (at most ``ROUNDS`` times). When a VE the plan already moved keeps a
unit from being emptied (each VE moves once per plan), or a move budget cut the plan short,
the plan is made again on its own result (without the budget) until nothing is left and
each VE goes straight where it settles (``algorithms.settle``), as far as the budget goes,
so a second run on the result has nothing (or only the rest) to do and never sends a VE
back. The moves are then ordered in waves over different units (``algorithms.waves``), so
an executor running several at once is not held up by chains.

Limits: greedy (best-fit decreasing is within 11/9 of the fewest bins for one resource, no
such bound for several); it does not balance the units it keeps — run ``balance`` after.
Budgets can stop it part way: a unit is only counted when it is empty. After ``GIVE_UP``
units in a row could not be emptied it stops trying (the later ones are fuller still). It
knows no power figures: "larger node first" stands in for "more work per idle watt".

Cost in V, N, T (v̄ VEs per unit): per unit tried O(v̄ · N · R) to place its VEs, and with a
profile O(v̄ · N · T · R); at most ``GIVE_UP`` failed units in a row per round. Settling,
when it runs, costs up to two plans more. A plan takes 0.3 s CPU at 200 nodes and 4,000
VEs, 1.7 s at 1,000 and 20,000 (synthetic clusters, no move budget, no profile).
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import numpy as np

from algorithms import groups
from algorithms.balance import mandatory
from algorithms.base import Plan, Problem
from algorithms.common import finish
from algorithms.pairs import check_shapes
from algorithms.rules import anti_crowded
from algorithms.settle import settle
from algorithms.sizing import Sizing
from algorithms.state import Pick, State, inverse
from algorithms.waves import in_waves

ROUNDS = 3  # evacuate-and-pack rounds: a later one runs only when the last changed something
GIVE_UP = 8  # pairs in a row that could not be emptied before packing stops trying
NAMED = 20  # empty units the notes name one by one


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
            sizing = Sizing.of(problem, problem.settings.headroom)

            def run(state: State) -> tuple[list[str], bool]:
                return _rounds(state, sizing)

            notes, blocked = run(st)
            # settle too when the budget cut the plan short: what it left undone may be
            # to empty the units its evacuees just went to
            settled = settle(problem, st, run) if blocked or not st.budget_left() else None
            if settled is not None:
                st = settled
                notes.append("planned again on its own result until nothing was left to do; "
                             "each VE moves once, straight to where it settles")
            notes += _power_notes(st, problem)
        plan = finish(self.name, problem, st, notes)
        if problem.affinity is not None and (np.asarray(problem.affinity)[st.moved] >= 0).any():
            return plan  # an affinity group's moves must stay one right after the other
        unit_of = {name: int(u) for name, u in zip(problem.nodes, st.dom, strict=True)}
        return replace(plan, moves=tuple(in_waves(plan.moves, unit_of)))


def _rounds(st: State, sizing: Sizing | None) -> tuple[list[str], bool]:
    """Mandatory moves then packing, again while packing freed room for a stuck evacuation.
    Returns the notes and whether a VE this plan moved kept a pair from being emptied."""
    notes = _mandatory(st)
    if sizing is not None:
        notes += _relieve(st, sizing)
    blocked = False
    for _ in range(ROUNDS - 1):
        blocked |= _pack(st, sizing)
        if not st.budget_left():
            return notes, blocked
        moves = len(st.moves)
        later = _mandatory(st)
        if len(st.moves) == moves:
            return notes, blocked
        notes.append(f"emptying pairs made room for {len(st.moves) - moves} more mandatory "
                     "move(s)")
        notes += [n for n in later if n not in notes]
    return notes, _pack(st, sizing) or blocked


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
        woken += len(np.unique(units(st)[0][more]))
        in_use |= more
        batch *= 2
    done = len(st.moves) - moves
    out = [f"{done} evacuation or repair move(s) first"] if done else []
    if woken:
        out.append(f"{woken} powered-down pair(s) or node(s) switched on for them")
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
    or in a pair that cannot fail over; and the members of affinity groups that must move."""
    here = st.placement
    must = st.maint[here] | ~st.allowed[np.arange(len(here)), here]
    must |= anti_crowded(replace(st.p, placement=here))
    over_node = ((st.load - st.limit) * st.inv_limit).max(axis=1) > 1e-9
    over_pair = ((st.pload - st.plim_f) * st.inv_plim).max(axis=1, initial=-np.inf) > 1e-9
    must |= over_node[here] | np.r_[over_pair, False][st.pair[here]]  # -1: outside pairs
    return (must & st.free & ~st.moved) | groups.waiting(st)


def _wake(st: State, in_use: np.ndarray, waiting: np.ndarray, k: int) -> np.ndarray:
    """[N] bool: the nodes of up to ``k`` unused units, those the most waiting VEs may go
    to first (none when no unused unit takes any of them)."""
    welcome = st.allowed[waiting].sum(axis=0) * ~in_use
    unit, groups = units(st)
    per_unit = np.zeros(len(groups), dtype=np.int64)
    np.maximum.at(per_unit, unit, welcome)
    best = np.argsort(-per_unit, kind="stable")[:k]
    best = best[per_unit[best] > 0]
    return np.isin(unit, best)


def _mandatory_now(st: State) -> list[str]:
    """``mandatory`` on the current placement: the evacuation reads anti-affinity crowding
    from ``st.p``, so it is shown where the VEs are now (a VE whose peer has left its pair
    since is not sent away)."""
    st.p = replace(st.p, placement=st.placement.copy())
    return mandatory(st)


def _in_use(st: State) -> np.ndarray:
    """[N] bool: the nodes of units (pairs, nodes outside pairs) carrying VEs."""
    unit, groups = units(st)
    carried = np.zeros(len(groups), dtype=bool)
    carried[unit[st.placement]] = True
    return carried[unit]


def _dst_ok(st: State) -> np.ndarray:
    """Targets as the state defines them: not in maintenance, node move budget left."""
    per_node = st.p.settings.max_moves_per_node
    ok = ~st.maint
    return ok if per_node is None else ok & (st.node_moves < per_node)


def units(st: State) -> tuple[np.ndarray, list[np.ndarray]]:
    """[N] unit of each node and the nodes of each unit: a unit is an HA pair, or a node in
    no pair on its own (the failure domains); a unit is powered down whole."""
    lone = np.flatnonzero(st.pair < 0)
    return st.dom, [*st.members, *(np.array([n]) for n in lone)]


def _pack(st: State, sizing: Sizing | None) -> bool:
    """Empty whole units, least loaded first, into the units that stay. True when a unit
    that could not be emptied holds a VE this plan has moved already."""
    unit, groups = units(st)
    n_units = len(groups)
    blocked = False
    if n_units < 2:
        return blocked
    if sizing is not None:
        sizing.refresh(st)
    on = unit[st.placement]
    on_unit = np.bincount(on, minlength=n_units)
    free_on_unit = np.array([sum(len(st.node_ves[n]) for n in m) for m in groups])
    # a unit with a VE that cannot leave is kept
    keep = on_unit != free_on_unit
    load = np.zeros((n_units, st.load.shape[1]))
    np.add.at(load, unit, st.load)
    limit = np.zeros_like(load)
    np.add.at(limit, unit, st.limit)
    limit[:len(st.members)] = np.minimum(limit[:len(st.members)], st.plim_f)
    # least work first (on the scale of the largest unit): for the same share of its
    # limit, a smaller unit (older, weaker nodes) is emptied before a larger one
    scale = inverse(limit.max(axis=0, initial=0.0))
    work = (load * scale).max(axis=1, initial=0.0)
    dropped = on_unit == 0
    failed = 0
    for p in np.argsort(work, kind="stable"):
        if dropped[p] or keep[p]:
            continue
        if (~dropped).sum() <= 1 or not st.budget_left() or failed >= GIVE_UP:
            break
        here = np.array([v for n in groups[p] for v in st.node_ves[n]], dtype=np.int64)
        if _empty(st, sizing, groups, dropped, int(p), here):
            dropped[p] = True
            failed = 0
        else:
            failed += 1
            blocked |= bool(st.moved[here].any())
    return blocked


def _relieve(st: State, sizing: Sizing) -> list[str]:
    """Nodes whose VEs' summed profile is over the node's limit at the sizing quantile (or
    whose pair's is over the pair's limit): move their VEs that weigh most at the node's
    busiest steps onto units in use with room, or switch on the largest unused unit, until
    they are back under the headroom of the limit."""
    sizing.refresh(st)
    top = sizing.top(sizing.node)
    over = ((top - st.limit) * st.inv_cap).max(axis=1) > 1e-9
    unit_over = np.zeros(len(st.plim), dtype=bool)
    if len(st.members):
        pair_top = sizing.top(np.stack([sizing.node[m].sum(axis=0) for m in st.members]),
                              pair=True)
        unit_over = ((pair_top - st.plim) * st.inv_plim).max(axis=1) > 1e-9
        over |= np.r_[unit_over, False][st.pair]
    done = left = 0
    for n in np.flatnonzero(over):
        whole_pair = st.pair[n] >= 0 and unit_over[st.pair[n]]
        for v in sizing.heaviest(st, int(n)):
            if not st.budget_left() or _relieved(st, sizing, int(n), whole_pair):
                break
            d = _place(st, sizing, v, st.members[st.pair[n]] if whole_pair else np.array([n]))
            if d is None:
                left += 1
                break
            sizing.move(v, int(n), d)
            st.apply(Pick(v, d, 0.0), f"relieve {st.p.nodes[n]}: its VEs' summed profile is "
                                      "over the limit; ")
            done += 1
    out = [f"{done} move(s) relieve nodes whose VEs' summed profile is over the limit"] \
        if done else []
    return out + ([f"{left} node(s) over the limit on their summed profile had no room to "
                   "go to"] if left else [])


def _relieved(st: State, sizing: Sizing, n: int, whole_pair: bool) -> bool:
    """Is node ``n`` (and its pair when ``whole_pair``) back under the headroom of its
    limit?"""
    top = sizing.top(sizing.node[n][None])[0]
    if ((top - sizing.headroom * st.limit[n]) * st.inv_cap[n]).max() > 1e-9:
        return False
    if not whole_pair:
        return True
    p = st.pair[n]
    top = sizing.top(sizing.node[st.members[p]].sum(axis=0)[None], pair=True)[0]
    return bool(((top - sizing.headroom * st.plim[p]) * st.inv_plim[p]).max() <= 1e-9)


def _place(st: State, sizing: Sizing, v: int, leave: np.ndarray) -> int | None:
    """Where ``v`` goes to relieve nodes ``leave``: the node in use it fills most tightly
    (within the headroom on its summed profile), else the largest node of an unused unit where it
    fits; None when there is none."""
    in_use = _in_use(st)
    base = st.open_targets()
    base[leave] = False
    for waking in (False, True):
        ds = np.flatnonzero(base & (in_use != waking))
        ds = ds[_headroom(st, v, ds)]
        if len(ds):
            g, cost = st.gains(np.array([v]), ds)
            ds = ds[(g[0] > -np.inf) & (cost[0] <= st.bytes_left())]
        if not len(ds):
            continue
        room = sizing.room(st, v, ds)
        ds, room = ds[room >= -1e-9], room[room >= -1e-9]
        if not len(ds):
            continue
        if waking:  # the largest node: the most work per idle watt
            return int(ds[np.argmax((st.limit[ds] / st.limit.max(axis=0)).sum(axis=1))])
        return int(ds[np.argmin(room)])
    return None


def _power_notes(st: State, problem: Problem) -> list[str]:
    """Which units carry no VE at the end of the plan."""
    unit, groups = units(st)
    n_pairs = len(st.members)
    if len(groups) < 2:
        return []
    empty = np.bincount(unit[st.placement], minlength=len(groups)) == 0
    names = [f"{'pair' if p < n_pairs else 'node'}="
             f"{'+'.join(problem.nodes[n] for n in groups[p])}" for p in np.flatnonzero(empty)]
    notes = [f"{name} can be powered down (no VEs left)" for name in names[:NAMED]]
    if len(names) > NAMED:
        notes.append(f"{len(names) - NAMED} more pair(s) or node(s) can be powered down")
    if n_pairs:
        notes.append(f"{int((~empty[:n_pairs]).sum())} of {n_pairs} pair(s) carry VEs")
    if len(groups) > n_pairs:
        notes.append(f"{int((~empty[n_pairs:]).sum())} of {len(groups) - n_pairs} node(s) "
                     "outside pairs carry VEs")
    return notes


def _empty(st: State, sizing: Sizing | None, groups: list[np.ndarray], dropped: np.ndarray,
           p: int, vs: np.ndarray) -> bool:
    """Move every VE of unit ``p`` onto the kept units, or take the moves back."""
    closed = np.zeros(st.n, dtype=bool)
    for q in np.flatnonzero(dropped):
        closed[groups[q]] = True
    closed[groups[p]] = True
    size = (st.dem[vs] * st.inv_cap[st.placement[vs]]).max(axis=1)
    made: list[tuple[int, int]] = []  # (VE, node it was on before this unit's moves)
    names = "+".join(st.p.nodes[n] for n in groups[p])
    what = "pair" if len(groups[p]) > 1 else "node"
    for v in vs[np.argsort(-size, kind="stable")]:
        ds = np.flatnonzero(st.open_targets() & ~closed)
        ds = ds[_headroom(st, int(v), ds)]
        ok = np.zeros(0, dtype=bool)
        if len(ds) and st.budget_left():
            g, cost = st.gains(np.array([v]), ds)
            ok = (g[0] > -np.inf) & (cost[0] <= st.bytes_left())
        room = None
        if ok.any() and sizing is not None:
            ds = ds[ok]
            room = sizing.room(st, int(v), ds)
            ok = room >= -1e-9
        if not ok.any():
            for u, back in reversed(made):  # newest first: each is the last step of its VE
                if sizing is not None:
                    sizing.move(u, int(st.placement[u]), back)
                st.apply(Pick(u, back, 0.0), "")
            return False
        ds = ds[ok]
        if room is None:
            # best fit: the target left with the least room (after the VE) on its tightest
            # resource
            room = ((st.limit[ds] - st.load[ds] - st.dem[v]) * st.inv_cap[ds]).min(axis=1)
        else:
            room = room[ok]
        d = int(ds[np.argmin(room)])
        made.append((int(v), int(st.placement[v])))
        if sizing is not None:
            sizing.move(int(v), int(st.placement[v]), d)
        st.apply(Pick(int(v), d, 0.0), f"empty {what} {names} to power it down; ")
    return True


def _headroom(st: State, v: int, ds: np.ndarray) -> np.ndarray:
    """[D] bool: targets that stay under the headroom of their node limit, and of their
    pair's limit when the VE comes from another pair, once ``v`` is on them, and have taken
    fewer than ``inflow`` moves in this plan (the executor copies VEs into a node one at a
    time: a plan sending 200 small VEs to one node would run for an hour)."""
    dem = st.dem[v]
    headroom = st.p.settings.headroom
    ok = (st.load[ds] + dem <= headroom * st.limit[ds] + 1e-9).all(axis=1)
    ok &= st.node_moves[ds] < st.p.settings.inflow
    pd = st.pair[ds]
    other = (pd >= 0) & (pd != st.pair[st.placement[v]])
    if other.any():
        q = pd[other]
        ok[other] &= (st.pload[q] + dem <= headroom * st.plim[q] + 1e-9).all(axis=1)
    return ok
