"""A last local search for ``balance`` on small clusters: lower the node peaks, highest first.

What it optimises: the greedy minimises the spread one move at a time; on a small cluster (a
few VEs per node, so one VE is a big step) that can leave the fullest node well above what
is possible. This phase lowers the sorted list of node peaks (a node's peak: its highest
utilisation over the weighted resources) lexicographically. It takes the nodes from the
fullest down and, for the first one that can be relieved, makes the change with a node no
fuller than it that leaves the higher of the two lowest: a single move off it, a swap of one
of its VEs with one of the other node's, or, when the two nodes hold at most ``KMAX`` free
VEs, any split of their VEs between them (all 2^k are scored). Lowering a node below the
fullest makes room that relieves the fullest one later.

A change must lower the higher of its two nodes by a share of its peak of at least
``min_gain`` / N per move (twice that for a migration to another pair: the greedy's rule,
applied to the peak), may raise the spread by at most one switchover's worth (``SPREAD``),
and among changes about as good (``NEAR``) the cheapest in bytes is taken. Every step is
valid: capacity after each move, failover, rules, budget; the moves of a swap or split are
made in an order that keeps every step valid, or the change is skipped and undone; each VE
still moves at most once (a VE the plan moved already has its move replaced).

Limits: up to ``SMALL`` nodes; above ``DEEP_NODES`` nodes or ``DEEP`` VEs × nodes only the
fullest node is relieved.
A local search, so a local optimum: on the bench's clusters of up to 8 nodes and 40 VEs it
ends within a few per cent of the exact optimum (docs/performance.md).

Cost per node tried (A VEs on it, V VEs, N nodes, R resources): O(A·(N + V)·R) for moves and
swaps plus O(2^k·k·R) per split pair; all N nodes are tried once the search is stuck.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from algorithms.state import Pick, State

SMALL = 32  # nodes: clusters up to this size get the phase
TRIES = 16  # candidates checked in full per node before the next node is tried
NEAR = 0.02  # candidates within this share of the best drop compete on cost
KMAX = 12  # two nodes holding at most this many free VEs get every split of them scored
DEEP = 2000  # VEs × nodes up to which every node is relieved in turn and the plan settled
DEEP_NODES = 16  # ... on clusters of up to this many nodes
ROUNDS = 3  # runs of the whole plan on its own result while it still changes (settling)
SPLITS = 3  # best splits per pair of nodes kept as candidates
SPREAD = 1.0  # a change may raise the spread by this many times what a switchover must gain

Cand = tuple[float, float, tuple[tuple[int, int], ...]]  # peak after, bytes, moves (ve, node)


def small(st: State) -> bool:
    """Does the cluster get this phase?"""
    return st.n <= SMALL and bool((st.w > 0).any())


def deep(st: State) -> bool:
    """Does every node get relieved in turn (else only the fullest), and the plan settled?"""
    return st.n <= DEEP_NODES and st.n * st.p.n_ves <= DEEP


def no_worse(new: State, old: State) -> bool:
    """Is ``new`` (a settled plan, cut short by a budget perhaps) at least as good as ``old``:
    its fullest node no fuller, its spread up by less than a switchover must gain?"""
    use = old.w > 0
    return bool(new.u[:, use].max() <= old.u[:, use].max() + 1e-12
                and new.score() <= old.score() + old.need_switch)


def shave(st: State) -> int:
    """Run the phase; returns how many moves it added."""
    if not small(st):
        return 0
    added = 0
    for _ in range(4 * st.p.n_ves + 8):  # each step lowers the sorted peaks: a safety bound
        made = _step(st) if st.budget_left() else 0
        if not made:
            break
        added += made
    return added


def _step(st: State) -> int:
    """Relieve the fullest node that can be; returns how many moves that took (0: none)."""
    use = st.w > 0
    peak = st.u[:, use].max(axis=1)
    for s in np.argsort(-peak, kind="stable")[:None if deep(st) else 1]:
        if peak[s] <= 0:
            break
        made = _relieve(st, int(s), peak, use)
        if made:
            return made
    return 0


def _relieve(st: State, s: int, peak: np.ndarray, use: np.ndarray) -> int:
    """Make the best valid change that lowers node ``s`` and keeps the other node in it below
    ``s``'s old peak by the share a change must gain; False when there is none."""
    if not st.node_ves[s]:
        return 0
    top = float(peak[s])
    lower = np.flatnonzero((peak <= top) & (np.arange(st.n) != s))
    small = np.array([len(st.node_ves[s]) + len(st.node_ves[d]) <= KMAX for d in lower],
                     dtype=bool)
    # no split can beat both nodes at the same utilisation, their load over both capacities
    even = ((st.load[s] + st.load[lower]) / (st.p.capacity[s] + st.p.capacity[lower]))[:, use]
    small &= even.max(axis=1) < top * (1 - st.need_switch)
    mine = np.array(st.node_ves[s], dtype=np.int64)
    big = lower[~small]
    cands = _moves(st, s, mine, big, use, top) + _swaps(st, s, mine, big, use, top)
    home_pair = st.pair[st.home(np.arange(st.p.n_ves))] if small.any() else st.pair
    for d in lower[small]:
        cands += _splits(st, s, int(d), use, top, home_pair)
    return _take(st, cands, top)


def _moves(st: State, s: int, mine: np.ndarray, lower: np.ndarray, use: np.ndarray,
           top: float) -> list[Cand]:
    """Single moves of one of ``mine`` off ``s`` onto one of ``lower`` that lower ``s``."""
    ds = lower[st.open_targets()[lower]]
    if not len(ds):
        return []
    u, inv, dem = st.u[:, use], st.inv_cap[:, use], st.dem[:, use]
    new_s = (u[s] - dem[mine] * inv[s]).max(axis=1)[:, None]
    new_d = (u[ds][None] + dem[mine][:, None] * inv[ds][None]).max(axis=2)
    after = np.maximum(new_s, new_d)
    cost = _cost(st, mine, ds)
    ok = (after <= top * (1 - st.needs(mine, ds))) & _room(st, st.dem[mine], s, ds)
    a, b = np.nonzero(ok)
    ok[a, b] &= _calm(st, s, ds[b], st.load[s] - st.dem[mine[a]], st.load[ds[b]] + st.dem[mine[a]])
    out: list[Cand] = []
    for f in _shortlist(after, cost, ok, top):
        i, j = divmod(f, len(ds))
        out.append((float(after[i, j]), float(cost[i, j]), ((int(mine[i]), int(ds[j])),)))
    return out


def _swaps(st: State, s: int, mine: np.ndarray, lower: np.ndarray, use: np.ndarray,
           top: float) -> list[Cand]:
    """Exchanges of one of ``mine`` (on ``s``) with a VE on one of ``lower`` that lower ``s``."""
    on = np.zeros(st.n, dtype=bool)
    on[lower] = True
    others = np.flatnonzero(st.free & on[st.placement] & st.dst_ok[st.placement])
    if not len(others):
        return []
    u, inv, dem = st.u[:, use], st.inv_cap[:, use], st.dem[:, use]
    y = st.placement[others]
    new_s = (u[s] - dem[mine][:, None] * inv[s] + dem[others][None] * inv[s]).max(axis=2)
    new_y = (u[y][None] - (dem[others] * inv[y])[None] + dem[mine][:, None] * inv[y][None]
             ).max(axis=2)
    after = np.maximum(new_s, new_y)
    need = top * (st.needs(mine, y) + st.needs(others, np.full(1, s)).T)
    i, j = np.nonzero(after <= top - need)
    # both nodes (and pairs) hold the exchange, and one of its two moves fits first
    room_n, room_p = np.maximum(st.tab[2].T, 0), np.maximum(st.tab[3].T, 0)
    v, w, d = mine[i], others[j], y[j]
    net = st.dem[v] - st.dem[w]  # [K, R]: d gains it, s loses it
    cross = ~((st.pair[d] == st.pair[s]) & (st.pair[s] >= 0))
    ok = (net <= room_n[d]).all(axis=1) & (-net <= room_n[s]).all(axis=1)
    ok &= ~cross | ((net <= room_p[d]).all(axis=1) & (-net <= room_p[s]).all(axis=1))
    first = (st.dem[v] <= room_n[d]).all(axis=1) & (~cross | (st.dem[v] <= room_p[d]).all(axis=1))
    back = (st.dem[w] <= room_n[s]).all(axis=1) & (~cross | (st.dem[w] <= room_p[s]).all(axis=1))
    ok &= first | back
    ok &= _calm(st, s, d, st.load[s] - net, st.load[d] + net)
    cost = (_cost(st, mine, y) + _cost(st, others, np.full(1, s)).T)[i, j]
    return [(float(after[i[k], j[k]]), float(cost[k]), ((int(v[k]), int(d[k])), (int(w[k]), s)))
            for k in _shortlist(after[i, j], cost, ok, top)]


def _room(st: State, dem: np.ndarray, s: int, ds: np.ndarray) -> np.ndarray:
    """[A, D] does each demand [A, R] moved from node ``s`` fit on each of ``ds`` and, across
    pairs, in its pair? A prescreen: a move is checked in full before it is made."""
    room_n, room_p = st.tab[2][:, ds].T[None], st.tab[3][:, ds].T[None]
    same = ((st.pair[ds] == st.pair[s]) & (st.pair[s] >= 0))[None]
    add = dem[:, None]
    return (add <= room_n).all(axis=2) & (same | (add <= room_p).all(axis=2))


def _splits(st: State, s: int, d: int, use: np.ndarray, top: float, home_pair: np.ndarray
            ) -> list[Cand]:
    """The best few ways to share the free VEs of nodes ``s`` and ``d`` between them (every
    split is scored) that lower ``s``; each a list of moves. ``home_pair`` [V]: the pair
    each VE started the plan in (what prices its move)."""
    vs = np.array(st.node_ves[s] + st.node_ves[d], dtype=np.int64)
    k = len(vs)
    on_s = st.placement[vs] == s
    bits = _bits(k)  # [2^k, k]: True = the VE ends on s
    dem = st.dem[vs]
    load_s = (st.load[s] - dem[on_s].sum(axis=0)) + bits @ dem
    load_d = (st.load[d] - dem[~on_s].sum(axis=0)) + ~bits @ dem
    fits = ((load_s <= st.limit[s] * (1 + 1e-9)) | (load_s <= st.load[s])).all(axis=1)
    fits &= ((load_d <= st.limit[d] * (1 + 1e-9)) | (load_d <= st.load[d])).all(axis=1)
    ps, pd = int(st.pair[s]), int(st.pair[d])
    if ps != pd or ps < 0:
        for p, node, load in ((ps, s, load_s), (pd, d, load_d)):
            if p >= 0:
                total = st.pload[p] + load - st.load[node]
                fits &= ((total <= st.plim[p] * (1 + 1e-9)) | (total <= st.pload[p])).all(axis=1)
    fits &= ~(bits & ~st.allowed[vs, s]).any(axis=1) & ~(~bits & ~st.allowed[vs, d]).any(axis=1)
    after = np.maximum((load_s[:, use] * st.inv_cap[s, use]).max(axis=1),
                       (load_d[:, use] * st.inv_cap[d, use]).max(axis=1))
    moved = bits != on_s
    to = np.where(on_s, d, s)
    same = (home_pair[vs] == st.pair[to]) & (home_pair[vs] >= 0)
    need = np.where(same, st.need_switch, st.need_migrate)
    cost = np.where(same, st.cost[vs, 0], st.cost[vs, 1])
    ok = fits & moved.any(axis=1) & (after <= top - top * (moved @ need))
    ok[ok] = _calm(st, s, np.full(int(ok.sum()), d), load_s[ok], load_d[ok])
    bytes_ = moved @ cost
    out: list[Cand] = []
    for i in _shortlist(after, bytes_, ok, top, SPLITS):
        m = np.flatnonzero(moved[i])
        out.append((float(after[i]), float(bytes_[i]), tuple((int(vs[j]), int(to[j])) for j in m)))
    return out


def _calm(st: State, s: int, ds: np.ndarray, load_s: np.ndarray, load_d: np.ndarray
          ) -> np.ndarray:
    """[K] does each change (node ``s`` and ``ds`` [K] left with loads [K, R]) keep the
    spread (``Problem.score``, what the greedy lowers) within ``SPREAD`` steps of what it is?"""
    new_s, new_d = load_s * st.inv_cap[s], load_d * st.inv_cap[ds]
    s1 = st.s1 - st.u[s] - st.u[ds] + new_s + new_d
    s2 = st.s2 - st.u[s] ** 2 - st.u[ds] ** 2 + new_s**2 + new_d**2
    std = np.sqrt(np.maximum(s2 / st.n - (s1 / st.n) ** 2, 0.0))
    return std @ st.w <= st.now + SPREAD * st.need_switch


def _shortlist(after: np.ndarray, cost: np.ndarray, ok: np.ndarray, top: float,
               k: int = TRIES) -> list[int]:
    """Flat indices of a few candidates among ``ok``: the k cheapest of those about as good
    as the best (within ``NEAR`` of its drop), then the k that leave the lowest peak."""
    idx = np.flatnonzero(ok)
    if not len(idx):
        return []
    a, c = after.ravel()[idx], cost.ravel()[idx]
    near = a <= top - (1 - NEAR) * (top - a.min())
    cheap = idx[near][np.argsort(c[near], kind="stable")[:k]]
    low = idx[np.argsort(a, kind="stable")[:k]]
    return list(dict.fromkeys(int(i) for i in np.concatenate([cheap, low])))


@cache
def _bits(k: int) -> np.ndarray:
    """[2^k, k] every subset of k items, as rows of flags."""
    return ((np.arange(2**k)[:, None] >> np.arange(k)[None, :]) & 1).astype(bool)


def _take(st: State, cands: list[Cand], top: float) -> int:
    """Try the candidates, those about as good as the best cheapest first, then by peak
    after; make the first one whose moves can all be made validly in some order."""
    if not cands:
        return 0
    best = min(c[0] for c in cands)
    near = top - (1 - NEAR) * (top - best)
    order = sorted(cands, key=lambda c: (c[0] > near, c[1] if c[0] <= near else c[0], c[2]))
    why = f"lower a node's peak {top:.3f}; "
    for _, _, moves in order[:TRIES]:
        if _make(st, list(moves), why):
            return len(moves)
    return 0


def _make(st: State, moves: list[tuple[int, int]], why: str) -> bool:
    """Make the moves, each as soon as it is valid; False (and nothing changed) when some
    cannot be made or the budget does not cover them."""
    cap = st.p.settings.max_moves
    if cap is not None and len(st.moves) + len(moves) > cap:
        return False
    prior = [(v, int(st.placement[v])) for v, _ in moves]
    counts = st.undone, st.retargeted
    done: list[int] = []
    todo = moves
    while todo:
        rest = []
        for v, d in todo:
            g, _ = st.gains(np.array([v]), np.array([d]))
            if g[0, 0] > -np.inf and st.affordable(Pick(v, d, 0.0)):
                st.apply(Pick(v, d, 0.0), why if len(moves) == 1 else "exchange to " + why)
                done.append(v)
            else:
                rest.append((v, d))
        if len(rest) == len(todo):
            for v, x in reversed(prior):  # put back what moved, in reverse
                if v in done:
                    st.apply(Pick(v, x, 0.0), "")
            st.undone, st.retargeted = counts
            return False
        todo = rest
    return True


def _cost(st: State, vs: np.ndarray, ds: np.ndarray) -> np.ndarray:
    """[A, D] bytes moving each of ``vs`` to each of ``ds`` copies."""
    ps = st.pair[st.home(vs)][:, None]
    same = (ps == st.pair[ds][None, :]) & (ps >= 0)
    return np.where(same, st.cost[vs, 0][:, None], st.cost[vs, 1][:, None])


