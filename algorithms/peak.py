"""``peak``: separate VEs whose busy hours coincide, by the peak of each node's summed profile.

What it optimises: the peak over time (and over weighted resources) of each node's summed
utilisation profile, hottest nodes first. A scalar statistic such as p95 cannot see that two
VEs peak at the same hour; the sum of their profiles can. A move is taken when it lowers
``max(peak of source, peak of target)`` below the source's peak by at least ``min_gain``
(twice that for a migration to another pair), so the sorted vector of node peaks falls
strictly with every move and the loop ends.

What it needs: ``profile[V, T, R]`` (e.g. 288 five-minute steps or 24 hourly p95s; without
one the demand is a single step and ``peak`` balances the most utilised node), ``capacity``,
``placement``, ``pair`` and the rules. Capacity and failover are checked on ``demand`` like
every plan (the validator's contract); evacuations and repairs come first, as in
``balance``, and are tried again after its moves while those made room for one
(``algorithms.rerun``). Each VE moves at most once (a better target replaces its move). Up
to a million VEs × nodes the plan is settled: planned again on its own result and
made straight to where that settles, kept when its hottest node is no hotter, so a second
run on the result plans nothing.

Limits: greedy on the ``K_HOT`` hottest nodes against the ``M_DST`` coolest targets per
round, so a move to a warm node that only a full N × N search would find can be missed; the
profile is held in float32.

Cost in V, N, T (R resources, v̄ VEs per node): O(V·T·R) to sum the node profiles once, then
per round O(K_HOT · v̄ · M_DST · T · R) to score candidates and O(T·R) to update the two
nodes of a move; memory O(N·T·R) beyond the profile. Settling a small cluster's plan runs
it up to three times more.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from algorithms.base import Plan, Problem
from algorithms.common import inverse_capacity, node_sums, profile_of
from algorithms.rerun import settled_plan
from algorithms.state import Pick, State

K_HOT = 8  # hottest nodes tried per round
M_DST = 16  # coolest targets they are tried against


class Peak:
    """Lower the hottest nodes' peak of the summed time profile."""

    name: ClassVar[str] = "peak"
    summary: ClassVar[str] = (
        "time-aware: moves VEs off the nodes whose summed profile peaks highest, so VEs "
        "whose peaks coincide are separated"
    )

    def plan(self, problem: Problem) -> Plan:
        return settled_plan(self.name, problem, _flatten,
                            lambda new, old: _peak(new, problem) <= _peak(old, problem) + 1e-6)


def _peak(st: State, problem: Problem) -> float:
    """The hottest node's peak of the summed profile in ``st``'s placement."""
    use = st.w > 0
    prof = profile_of(problem)[:, :, use]
    util = node_sums(prof, st.placement, st.n) * inverse_capacity(problem)[:, None, use]
    return float(util.max(initial=0.0))


def _flatten(st: State, problem: Problem) -> list[str]:
    use = st.w > 0
    if not use.any():
        return ["no resource has a weight: nothing to balance"]
    prof = profile_of(problem)
    if not use.all():
        prof = prof[:, :, use]
    inv = inverse_capacity(problem)[:, use]
    util = node_sums(prof, st.placement, st.n) * inv[:, None, :]
    pk = util.max(axis=(1, 2))
    before = float(pk.max())
    stuck = np.zeros(st.n, dtype=bool)
    moved_since_reset = False
    count = 0
    while st.budget_left():
        hot = (~stuck & st.src_ok & (st.n_free > 0) & (pk > pk.mean())).astype(bool)
        if not hot.any():
            if not moved_since_reset:
                break
            stuck[:], moved_since_reset = False, False  # a last pass over every node
            continue
        srcs = st.ranked(pk, hot, K_HOT)
        srcs = srcs[np.argsort(-pk[srcs], kind="stable")]
        cool = st.ranked(-pk, st.open_targets(), M_DST)
        taken = np.zeros(st.n, dtype=bool)
        for s in srcs:
            if not st.budget_left():
                break
            ds = cool[(cool != s) & ~taken[cool]]
            pick = _best(st, prof, util, pk, inv, int(s), ds)
            if pick is None:
                stuck[s] = True
                continue
            v, d = pick.ve, pick.dst
            new = pk[s] - pick.gain - float(st.need(pick))
            st.apply(pick, f"summed-profile peak {pk[s]:.2f}→{new:.2f} on "
                           f"{problem.nodes[s]}; ")
            util[s] -= prof[v] * inv[s]
            util[d] += prof[v] * inv[d]
            pk[[s, d]] = util[[s, d]].max(axis=(1, 2))
            taken[d] = True
            stuck[d] = False
            moved_since_reset = True
            count += 1
    if not count:
        return []
    return [f"peak of the summed profile: hottest node {before:.2f} → {float(pk.max()):.2f} "
            f"in {count} move(s)"]


def _best(st: State, prof: np.ndarray, util: np.ndarray, pk: np.ndarray, inv: np.ndarray,
          s: int, ds: np.ndarray) -> Pick | None:
    """The move off ``s`` that lowers its peak most (beyond what the move must gain)."""
    vs = np.array(st.node_ves[s], dtype=np.int64)
    if not len(vs) or not len(ds):
        return None
    g, _ = st.gains(vs, ds)
    feasible = g > -np.inf
    if not feasible.any():
        return None
    keep = feasible.any(axis=1)
    vs, feasible = vs[keep], feasible[keep]
    p = prof[vs]  # [A, T, R]
    src_new = (util[s][None] - p * inv[s]).max(axis=(1, 2))
    dst_new = (util[ds][None] + p[:, None] * inv[ds][None, :, None, :]).max(axis=(2, 3))
    gain = pk[s] - np.maximum(src_new[:, None], dst_new) - st.needs(vs, ds)
    gain[~feasible] = -np.inf
    i = int(np.argmax(gain))
    a, d = divmod(i, len(ds))
    if not gain[a, d] > 0:
        return None
    return Pick(int(vs[a]), int(ds[d]), float(gain[a, d]))
