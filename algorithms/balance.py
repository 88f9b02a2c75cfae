"""``balance``: a greedy, vectorised rebalancer for clusters of HA pairs.

What it optimises: ``Problem.score`` — the weighted standard deviation of node utilisation
per resource — taking the move that lowers it most, again and again, until no move gains
more than ``min_gain`` or the budget is spent. Among moves whose gain is within 1 % of the
best it takes the cheapest (a switchover inside a pair copies ``move_cost[:, 0]`` bytes, a
migration to another pair ``move_cost[:, 1]``).

Before balancing it makes the mandatory moves, whatever they do to the score: VEs on a
maintenance node or on a node their rules forbid are evacuated, then nodes over
``max_utilisation`` and pairs that could not fail over are relieved, worst first.

Every candidate is checked in numpy: the target stays under ``max_utilisation`` for every
resource, its pair can still fail over (pair total ≤ ``failover_overcommit`` × capacity of
the weaker node; a switchover leaves the pair total as it was), ``allowed[v, n]``,
``movable[v]``, no maintenance target, and the budget (``max_moves``, ``max_bytes``,
``max_moves_per_node``).

What it needs: ``demand``, ``capacity``, ``placement``, ``pair``, ``movable``, ``allowed``,
``move_cost`` and the settings; ``profile`` is ignored.

Limits: greedy, so a good plan, not the best one; on small clusters (up to 32 nodes) a last
local search (``algorithms.shave``) lowers the fullest nodes with moves, swaps and splits
of two nodes' VEs, and up to 16 nodes and 2,000 VEs × nodes the plan is settled (planned
again on its result) so a second run has nothing to do. A VE may move twice but never back to a
node it left: when returning would be the best move, its last move is taken out of the plan
instead (if every later step still fits without it), so a second run on the result rarely
finds anything left to do. Candidates are pruned: VEs on the most utilised nodes per
resource (plus their pair partners as cheap targets) against the least utilised targets that
still have room; when that finds nothing the net widens twice (up to 64 sources and 256
targets per resource), so clusters of up to 64 nodes are searched exhaustively while on larger
ones a move only a full V × N search would find can be missed. One evaluation of the first
net yields up to ``BATCH`` moves on disjoint nodes and pairs (they stay feasible after each
other; each one's gain is re-checked before it is applied). Gains shrink like 1/N, so on
large clusters ``min_gain`` should be small (1e-6 for 1,000 nodes).

Cost in V, N (R resources, v̄ VEs per node, k sources and m targets per resource): O(V·R + N)
to set up, then per evaluation O(N·R) to rank nodes plus O(k·R·v̄ · m·R · R) to score the
candidates — about 0.3 ms per move at 1,000 nodes and 20,000 VEs. Memory O(V·R + N·R)
beyond the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from algorithms import groups
from algorithms.base import Plan, Problem
from algorithms.pairs import check_shapes
from algorithms.rules import anti_crowded
from algorithms.settle import settle
from algorithms.shave import ROUNDS, deep, no_worse, shave, small
from algorithms.state import Pick, State

# (sources, targets) per resource for each widening of the candidate net.
NETS = ((1, 4), (4, 32), (64, 256))
BATCH_NET = (2, 6)  # the first net when balancing: wide enough for a batch of moves
BATCH = 4  # moves on disjoint nodes and pairs taken from one evaluation


class Balance:
    """Greedy balancer: mandatory moves first, then the best-gain (cheapest near-best) move."""

    name: ClassVar[str] = "balance"
    summary: ClassVar[str] = (
        "greedy: evacuate and repair first, then move VEs from the most to the least "
        "utilised nodes, cheapest of the near-best moves, each VE at most once"
    )

    def plan(self, problem: Problem) -> Plan:
        check_shapes(problem)
        st = State(problem)
        notes = _run(st) if problem.n_ves and problem.n_nodes else []
        if st.moves and small(st) and deep(st):
            settled = settle(problem, st, _run, rounds=ROUNDS)
            if settled is not None and no_worse(settled, st):
                st = settled
                notes.append(f"planned again on its own result (up to {ROUNDS} times) and went "
                             "there directly: each VE moves once, straight to where it settles")
        return Plan(
            algorithm=self.name,
            moves=tuple(st.moves),
            score_before=problem.score(),
            score_after=problem.score(st.placement),
            notes=tuple(notes),
        )


@dataclass
class _Mandatory:
    """What one pass of evacuations and repairs did and could not do."""

    evacuated: int = 0
    repaired: int = 0
    over_nodes: int = 0  # at the start of the pass
    over_pairs: int = 0
    stuck: list[str] = field(default_factory=list)  # notes on what is left undone
    budget: bool = False


def _run(st: State) -> list[str]:
    """Mandatory moves, then balancing; retried while balancing makes room for what was stuck."""
    first = _mandatory_pass(st)
    notes = []
    if first.evacuated:
        notes.append(f"evacuated {first.evacuated} VE(s) from maintenance or forbidden nodes "
                     "or a pair shared with an anti-affinity peer first")
    preferred = _prefer(st)
    if preferred:
        notes.append(f"{preferred} VE(s) moved to a node their should rules prefer")
    if first.over_nodes or first.over_pairs:
        what = [f"{first.over_nodes} node(s) over max_utilisation"] if first.over_nodes else []
        what += [f"{first.over_pairs} pair(s) unable to fail over"] if first.over_pairs else []
        notes.append(f"{' and '.join(what)} at the start: {first.repaired} repair move(s) "
                     "come first")
    last, later = first, 0
    balance_notes = _balance(st)
    while last.stuck and st.budget_left():
        moves_before = len(st.moves)
        last = _mandatory_pass(st)
        if len(st.moves) == moves_before:
            break
        later += len(st.moves) - moves_before
        balance_notes = _balance(st)
    if later:
        notes.append(f"balancing made room for {later} more mandatory move(s)")
    shaved = 0
    for _ in range(8):  # the local search and the greedy, until neither finds anything
        step = shave(st)
        if not step:
            break
        shaved += step
        balance_notes = _balance(st)
    if shaved:
        notes.append(f"{shaved} move(s) of a last local search lowered the fullest nodes")
    if st.undone - st.retargeted:
        notes.append(f"{st.undone - st.retargeted} move(s) taken back: the VE was better "
                     "where it started")
    if st.retargeted:
        notes.append(f"{st.retargeted} move(s) replaced by a better target from the VE's "
                     "starting node: each VE moves at most once")
    notes += last.stuck
    if last.budget:
        notes.append(f"move budget ({st.p.settings.max_moves}) spent before every mandatory "
                     "move was made")
    return notes + balance_notes


def mandatory(st: State) -> list[str]:
    """Evacuations and repairs only (for other algorithms that start from a valid cluster);
    notes say what was done and what could not be."""
    out = _mandatory_pass(st)
    notes = [f"evacuated {out.evacuated} VE(s) first"] if out.evacuated else []
    if out.repaired:
        notes.append(f"{out.over_nodes} node(s) over max_utilisation and {out.over_pairs} "
                     f"pair(s) unable to fail over at the start: {out.repaired} repair "
                     "move(s) come first")
    notes += out.stuck[:5]
    if len(out.stuck) > 5:
        notes.append(f"... and {len(out.stuck) - 5} more node(s) or pair(s) left unrepaired")
    if out.budget:
        notes.append(f"move budget ({st.p.settings.max_moves}) spent before every mandatory "
                     "move was made")
    return notes


def _mandatory_pass(st: State) -> _Mandatory:
    out = _Mandatory()
    before = len(st.moves)
    _evacuate(st, out)
    out.evacuated = len(st.moves) - before
    _repair(st, out)
    out.repaired = len(st.moves) - before - out.evacuated
    return out


def _targets(st: State, k: int, vs: np.ndarray, leave: int = -1) -> np.ndarray:
    """The k least utilised targets per weighted resource that could take one of ``vs``.

    A target qualifies when the smallest demand among ``vs`` fits on it and in its pair
    (all qualifying targets when k ≥ N); ``leave`` excludes the members of that pair.
    """
    need = st.dem_t[:, vs].min(axis=1)[:, None]
    fits = st.dst_ok & (st.tab[2] >= need).all(axis=0) & (st.tab[3] >= need).all(axis=0)
    if leave >= 0:
        fits &= st.pair != leave
    if k >= st.n:
        return np.flatnonzero(fits)
    res = np.flatnonzero(st.w > 0) if (st.w > 0).any() else np.arange(st.u.shape[1])
    return np.unique(np.concatenate([st.ranked(-st.u[:, r], fits, k) for r in res]))


def _mandatory(st: State, vs: np.ndarray, *, leave: int = -1) -> Pick | None:
    """Best feasible move of one of ``vs``, widening the targets until one is found.

    ``leave`` is a pair the move must leave (for failover repairs).
    """
    vs = vs[~st.moved[vs]]  # a repair never moves a VE the plan has moved already
    if not len(vs):
        return None
    for k in (4, 64, st.n):
        pick = st.best(vs, _targets(st, k, vs, leave), leave_pair=leave >= 0)
        if pick is not None or k >= st.n:
            return pick
    return None


def _evacuate(st: State, out: _Mandatory) -> None:
    """Move every movable VE off maintenance nodes and nodes its rules forbid."""
    _, notes, out.budget = groups.evacuate(st)  # affinity groups first, each as a unit
    out.stuck += notes
    here = st.placement
    crowded = anti_crowded(st.p)
    must = st.maint[here] | ~st.allowed[np.arange(st.p.n_ves), here] | crowded
    pinned = np.flatnonzero(must & ~np.asarray(st.p.movable, dtype=bool))
    todo = np.flatnonzero(must & st.free)
    stuck: list[str] = []
    # largest first: they are the hardest to place
    size = (st.dem[todo] * st.inv_cap[here[todo]]).max(axis=1)
    for v in todo[np.argsort(-size, kind="stable")]:
        if not st.budget_left():
            out.budget = True
            break
        s = int(st.placement[v])
        pick = _mandatory(st, np.array([v])) if st.src_ok[s] else None
        if pick is None:
            stuck.append(st.p.ves[v])
            continue
        why = ("evacuate maintenance node; " if st.maint[s] else
               "rules forbid this node; " if not st.allowed[v, s] else
               "anti-affinity: another member of its group shares this pair; ")
        st.apply(pick, why)
    if stuck:
        out.stuck.append(f"no room or no allowed node to evacuate: {', '.join(stuck)}")
    if len(pinned):
        names = ", ".join(st.p.ves[v] for v in pinned)
        out.stuck.append(f"pinned VE(s) left on maintenance or forbidden nodes: {names}")


def _repair(st: State, out: _Mandatory) -> None:
    """Relieve nodes over max_utilisation, then pairs that could not fail over, worst first."""
    hopeless_nodes = np.zeros(st.n, dtype=bool)
    hopeless_pairs = np.zeros(len(st.plim), dtype=bool)
    counted = False
    while True:
        node_excess = ((st.load - st.limit) * st.inv_limit).max(axis=1)
        pair_excess = ((st.pload - st.plim_f) * st.inv_plim).max(axis=1, initial=-np.inf)
        over_nodes = (node_excess > 1e-9) & ~hopeless_nodes
        over_pairs = (pair_excess > 1e-9) & ~hopeless_pairs
        if not counted:
            out.over_nodes, out.over_pairs = int(over_nodes.sum()), int(over_pairs.sum())
            counted = True
        if not over_nodes.any() and not over_pairs.any():
            break
        if not st.budget_left():
            out.budget = True
            break
        if over_nodes.any():
            n = int(np.argmax(np.where(over_nodes, node_excess, -np.inf)))
            over_r = st.load[n] > st.limit[n]
            vs = np.array(st.node_ves[n], dtype=np.int64) if st.src_ok[n] else np.zeros(0, int)
            vs = vs[(st.dem[vs][:, over_r] > 0).any(axis=1)] if len(vs) else vs
            pick = _mandatory(st, vs)
            if groups.relieve(st, pick, np.array([n]), "node over max_utilisation; "):
                continue
            if pick is None:
                hopeless_nodes[n] = True
                out.stuck.append(f"{st.p.nodes[n]} stays over max_utilisation: no VE can "
                                 "move off it (room, rules, pins or budget)")
                continue
            st.apply(pick, "node over max_utilisation; ")
        else:
            p = int(np.argmax(np.where(over_pairs, pair_excess, -np.inf)))
            names = "+".join(st.p.nodes[m] for m in st.members[p])
            members = st.members[p][st.src_ok[st.members[p]]]
            vs = np.array([v for m in members for v in st.node_ves[m]], dtype=np.int64)
            pick = _mandatory(st, vs, leave=p)
            if groups.relieve(st, pick, st.members[p], f"pair {names} cannot fail over; ", p):
                continue
            if pick is None:
                hopeless_pairs[p] = True
                out.stuck.append(f"pair {names} still cannot fail over: no VE can move out "
                                 "(room, rules, pins or budget)")
                continue
            st.apply(pick, f"pair {names} cannot fail over; ")


def _prefer(st: State) -> int:
    """Move VEs that sit off their preferred nodes onto one, when that costs the spread no
    more than a move must gain (should rules are soft). Returns how many moved."""
    if st.pref is None:
        return 0
    here = st.placement
    off = np.flatnonzero(st.free & ~st.moved & ~st.pref[np.arange(st.p.n_ves), here]
                         & st.src_ok[here])
    count = 0
    for v in off:
        if not st.budget_left():
            break
        vs = np.array([v])
        ds = np.flatnonzero(st.open_targets())
        if not len(ds):
            break
        g, _ = st.gains(vs, ds)
        i = int(np.argmax(g))
        if g[0, i] == -np.inf or g[0, i] < -st.need(Pick(int(v), int(ds[i]), 0.0)):
            continue
        pick = Pick(int(v), int(ds[i]), float(g[0, i]))
        if not st.affordable(pick):
            continue
        st.apply(pick, "should rule prefers this node; ")
        count += 1
    return count


def _next_moves(st: State) -> list[Pick]:
    """Moves that gain more than min_gain: a batch on disjoint nodes from the first net,
    else the single best move of a wider one."""
    vs, ds = st.net(*BATCH_NET)
    picks = st.best_disjoint(vs, ds, BATCH)
    if picks:
        return picks
    for k_src, k_dst in NETS:
        vs, ds = st.net(k_src, k_dst)
        pick = st.best(vs, ds, worth=True)
        if pick is not None:
            return [pick]
        if k_src >= st.n and k_dst >= st.n:
            break
    return []


def _balance(st: State) -> list[str]:
    """Greedy best-gain moves until no move is worth its cost (``State.needs``) or the
    budget is spent."""
    if not (st.w > 0).any():
        return ["no resource has a weight: nothing to balance"]
    while st.budget_left():
        picks = _next_moves(st)
        if not picks and groups.balance_step(st):  # an affinity group as a unit
            continue
        if not picks:
            return []
        for i, pick in enumerate(picks):
            # the first is exact; later ones were scored before the earlier moves
            if i and (not st.budget_left() or st.gain_now(pick) <= st.need(pick)):
                break
            if not st.affordable(pick):
                if not i:
                    return []  # cannot happen (scoring checks bytes); never loop on it
                break
            st.apply(pick, "")
    picks = _next_moves(st)
    if not picks:
        return []
    return [f"move budget ({st.p.settings.max_moves}) spent; the next move would have "
            f"lowered the spread by {picks[0].gain + st.need(picks[0]):.4f}"]
