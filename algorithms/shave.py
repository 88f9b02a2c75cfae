"""A last local search for ``balance`` on small clusters: lower the highest node utilisation.

The greedy minimises the spread one move at a time; on a small cluster that can leave the
fullest node a few per cent above what is possible, and a single move can no longer help
while exchanging two VEs can. This phase tries, for the fullest node, every single move off
it and every swap of one of its VEs with a VE on another node, and takes the change that
lowers that node's peak most, provided both nodes end below its old peak by at least what a
migration must gain and at least ``FLOOR`` of its peak (twice that for a swap), and every
step is valid (capacity, failover, rules, budget; each VE still moves at most once: a VE the
plan moved already has its move replaced). It stops when the fullest node cannot be relieved.

Cost per step (A VEs on the fullest node, V VEs, R resources): O(A·V·R) for the swaps.
"""

from __future__ import annotations

import numpy as np

from algorithms.state import Pick, State

SMALL = 32  # nodes: clusters up to this size get the phase
FLOOR = 0.02  # least relative drop of the fullest node's peak a move must bring (a swap twice)
EPS = 1e-12


def shave(st: State) -> int:
    """Run the phase; returns how many moves it added."""
    if st.n > SMALL or not (st.w > 0).any():
        return 0
    use = st.w > 0
    added = 0
    while st.budget_left():
        before = len(st.moves)
        if not _step(st, use):
            break
        added += len(st.moves) - before
    return added


def _step(st: State, use: np.ndarray) -> bool:
    u = st.u[:, use]
    peak = u.max(axis=1)
    s = int(np.argmax(peak))
    top = float(peak[s])
    need = max(st.need_migrate, FLOOR * top)  # what a move must gain; a swap twice that
    mine = np.array(st.node_ves[s], dtype=np.int64)
    if not len(mine):
        return False
    a = st.dem[:, use] * st.inv_cap[:, use][st.placement]  # each VE's share where it is
    cap_s = st.inv_cap[s, use]
    # single moves off s
    ds = np.flatnonzero(st.open_targets() & (np.arange(st.n) != s))
    best, choice = top - need, None
    if len(ds):
        g, _ = st.gains(mine, ds)
        new_s = (u[s][None, :] - a[mine]).max(axis=1)
        share_d = st.dem[mine][:, use][:, None, :] * st.inv_cap[ds][:, use][None, :, :]
        new_d = (u[ds][None, :, :] + share_d).max(axis=2)
        worst = np.maximum(new_s[:, None], new_d)
        worst[g == -np.inf] = np.inf  # infeasible
        i = int(np.argmin(worst))
        if worst.flat[i] < best:
            best, choice = float(worst.flat[i]), ("move", int(mine[i // len(ds)]),
                                                   int(ds[i % len(ds)]))
    # swaps of one of s's VEs with one on another node
    others = np.array([v for v in np.flatnonzero(st.free)
                       if st.placement[v] != s and st.dst_ok[st.placement[v]]], dtype=np.int64)
    if len(others):
        d = st.placement[others]
        back = st.dem[others][:, use] * cap_s  # each other VE's share on s
        new_s = (u[s][None, None, :] - a[mine][:, None, :] + back[None, :, :]).max(axis=2)
        there = st.dem[mine][:, use][:, None, :] * st.inv_cap[d][:, use][None, :, :]
        new_d = (u[d][None, :, :] - a[others][None, :, :] + there).max(axis=2)
        worst = np.maximum(new_s, new_d)
        order = np.argsort(worst, axis=None, kind="stable")
        for i in order[:32]:
            if worst.flat[i] >= min(best, top - 2 * need):
                break
            v, w = int(mine[i // len(others)]), int(others[i % len(others)])
            if _swap(st, v, w):
                return True
    if choice is None:
        return False
    _, ve, dst = choice
    st.apply(Pick(ve, dst, 0.0), f"lower the fullest node's peak {top:.3f}; ")
    return True


def _swap(st: State, v: int, w: int) -> bool:
    """Exchange VEs v and w, in whichever order keeps every step valid; False (and nothing
    changed) when neither order does."""
    s, d = int(st.placement[v]), int(st.placement[w])
    cap = st.p.settings.max_moves
    if cap is not None and len(st.moves) + 2 > cap:
        return False
    prior = {v: s, w: d}
    for first, second in (((v, d), (w, s)), ((w, s), (v, d))):
        g, _ = st.gains(np.array([first[0]]), np.array([first[1]]))
        if g[0, 0] == -np.inf:
            continue
        st.apply(Pick(first[0], first[1], 0.0), "swap to lower the fullest node's peak; ")
        g, _ = st.gains(np.array([second[0]]), np.array([second[1]]))
        if g[0, 0] > -np.inf:
            st.apply(Pick(second[0], second[1], 0.0), "swap to lower the fullest node's "
                                                      "peak; ")
            return True
        st.apply(Pick(first[0], prior[first[0]], 0.0), "")  # put it back where it was
    return False
