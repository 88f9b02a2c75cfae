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

Limits: greedy, so a good plan, not the best one. A VE may move twice but never back to a
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

from algorithms.base import Move, Plan, Problem
from algorithms.pairs import check_shapes, maintenance, node_limit, pair_limit, pair_load, partner

# (sources, targets) per resource for each widening of the candidate net.
NETS = ((1, 4), (4, 32), (64, 256))
BATCH_NET = (2, 6)  # the first net when balancing: wide enough for a batch of moves
BATCH = 4  # moves on disjoint nodes and pairs taken from one evaluation
NEAR_BEST = 0.01  # moves within 1 % of the best gain compete on cost


@dataclass(frozen=True)
class _Pick:
    ve: int
    dst: int
    gain: float


class _State:
    """The cluster as the plan changes it: loads, utilisation, pair loads, budget."""

    def __init__(self, problem: Problem) -> None:
        p, s = problem, problem.settings
        self.p = p
        self.dem = np.asarray(p.demand, dtype=float)
        self.dem_t = np.ascontiguousarray(self.dem.T)
        cap = np.asarray(p.capacity, dtype=float)
        with np.errstate(divide="ignore"):
            self.inv_cap = np.where(cap > 0, 1.0 / np.where(cap > 0, cap, 1.0), 0.0)
        self.w = np.asarray(s.weights, dtype=float)
        self.w_n = self.w / np.sqrt(max(p.n_nodes, 1))  # std = sqrt(n·var) / sqrt(n)
        self.placement = np.array(p.placement, dtype=np.int64)
        self.pair = np.asarray(p.pair, dtype=np.int64)
        self.partner = partner(self.pair)
        self.allowed = np.asarray(p.allowed, dtype=bool)
        self.all_allowed = bool(self.allowed.all())
        self.cost = np.asarray(p.move_cost, dtype=float)
        self.load = p.load(self.placement)
        self.limit = node_limit(p)
        self.u = self.load * self.inv_cap
        self.plim = pair_limit(p)
        self.pload = pair_load(self.pair, self.load)
        self._proom = np.vstack([self.plim - self.pload, np.full((1, self.dem.shape[1]), np.inf)])
        self.n = p.n_nodes
        self.members = _members(self.pair, len(self.plim))
        # per-node table [4, R, N]: 1/capacity, utilisation, room on the node, room in its pair
        self.tab = np.empty((4, self.dem.shape[1], self.n))
        self.tab[0] = self.inv_cap.T
        self.open = np.ones(self.n, dtype=bool)
        self._refresh(np.arange(self.n))
        self.s1 = self.u.sum(axis=0)
        self.s2 = (self.u * self.u).sum(axis=0)
        self.now = self.score()
        finite = np.isfinite(self.plim)
        self.inv_limit = _inverse(self.limit)
        self.plim_f = np.where(finite, self.plim, 0.0)
        self.inv_plim = np.where(finite, _inverse(self.plim), 0.0)
        self.maint = maintenance(p)
        self.free = np.asarray(p.movable, dtype=bool).copy()
        self.moved = np.zeros(p.n_ves, dtype=bool)
        self.left: dict[int, list[int]] = {}  # nodes each VE has left in this plan
        self.last: dict[int, int] = {}  # index of each moved VE's last step
        self.steps: list[tuple[int, int, int, bool]] = []  # (ve, src, dst, switchover)
        r = self.dem.shape[1]
        self.h_dst = np.zeros(0, dtype=np.int64)  # per step: target, its load after the step,
        self.h_load = np.zeros((0, r))  # and the target's pair with its load when the
        self.h_ppair = np.zeros(0, dtype=np.int64)  # step changed the pair (else -1)
        self.h_pload = np.zeros((0, r))
        self.undone = 0
        self.node_ves: list[list[int]] = [[] for _ in range(self.n)]
        for v in np.flatnonzero(self.free):
            self.node_ves[self.placement[v]].append(int(v))
        self.n_free = np.array([len(x) for x in self.node_ves], dtype=np.int64)
        self.node_moves = np.zeros(self.n, dtype=np.int64)
        self.src_ok = np.ones(self.n, dtype=bool)
        self.dst_ok = ~self.maint
        self.moves: list[Move] = []
        self.bytes_used = 0.0

    # -- the objective ---------------------------------------------------------------

    def score(self) -> float:
        mean = self.s1 / self.n
        return float(np.sum(self.w * np.sqrt(np.maximum(self.s2 / self.n - mean * mean, 0.0))))

    # -- budget --------------------------------------------------------------------------

    def budget_left(self) -> bool:
        cap = self.p.settings.max_moves
        return cap is None or len(self.moves) < cap

    def bytes_left(self) -> float:
        cap = self.p.settings.max_bytes
        return np.inf if cap is None else cap - self.bytes_used

    # -- candidate scoring -----------------------------------------------------------------

    def gains(self, vs: np.ndarray, ds: np.ndarray, leave_pair: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        """Score drop [A, D] of moving each of ``vs`` to each of ``ds`` (-inf: infeasible),
        and the bytes [A, D] each move would copy."""
        src = self.placement[vs]
        pd = self.pair[ds]
        same = (self.pair[src][:, None] == pd[None, :]) & (pd >= 0)[None, :]
        ok = src[:, None] != ds[None, :]
        if not self.all_allowed:
            ok &= self.allowed[vs[:, None], ds[None, :]]
        for i in np.flatnonzero(self.moved[vs]):
            # never back to a node the VE has left, unless that takes its last move back
            v = int(vs[i])
            back = np.isin(ds, self.left[v])
            x = self.steps[self.last[v]][1]
            if back.any() and x in ds and self.can_undo(v, x):
                back &= ds != x
            ok[i] &= ~back
        if leave_pair:
            ok &= ~same
        cost = np.where(same, self.cost[vs, 0][:, None], self.cost[vs, 1][:, None])
        if self.p.settings.max_bytes is not None:
            ok &= cost <= self.bytes_left()
        # everything below is [R, A, D] (resource, VE, target): reductions run over axis 0
        dem = self.dem_t[:, vs]
        t = self.tab[:, :, ds]
        fit = np.all(dem[None, :, :, None] <= t[2:, :, None, :], axis=1)
        ok &= fit[0] & (same | fit[1])
        a = dem * self.tab[0][:, src]
        b = dem[:, :, None] * t[0][:, None, :]
        s1 = self.s1[:, None, None] + b - a[:, :, None]
        sq = (a * (a - 2.0 * self.tab[1][:, src]))[:, :, None] + b * (b + 2.0 * t[1][:, None, :])
        var = self.s2[:, None, None] + sq
        var -= s1 * s1 / self.n
        std = np.sqrt(np.maximum(var, 0.0, out=var), out=var)
        loss = (self.w_n @ std.reshape(len(self.w), -1)).reshape(ok.shape)
        return np.where(ok, self.now - loss, -np.inf), cost

    def best(self, vs: np.ndarray, ds: np.ndarray, *, leave_pair: bool = False,
             min_gain: float | None = None) -> _Pick | None:
        """Best feasible move of one of ``vs`` to one of ``ds``; None when none qualifies.

        ``min_gain=None`` is for mandatory moves: any feasible move counts, even one that
        raises the score.
        """
        if not len(vs) or not len(ds):
            return None
        g, cost = self.gains(vs, ds, leave_pair)
        floor = -np.inf if min_gain is None else min_gain
        return _choose(g, cost, vs, ds, floor)

    def best_disjoint(self, vs: np.ndarray, ds: np.ndarray, min_gain: float, most: int
                      ) -> list[_Pick]:
        """Up to ``most`` good moves touching different nodes and pairs, best first.

        Moves on disjoint nodes and pairs stay feasible after each other; only their gain
        shifts a little (the cluster mean moves), so callers re-check it before applying.
        """
        if not len(vs) or not len(ds):
            return []
        g, cost = self.gains(vs, ds)
        src = self.placement[vs]
        ps, pd = self.pair[src], self.pair[ds]
        picks: list[_Pick] = []
        while len(picks) < most:
            pick = _choose(g, cost, vs, ds, min_gain)
            if pick is None:
                break
            picks.append(pick)
            s, d = int(self.placement[pick.ve]), pick.dst
            # -2 matches nothing: a node outside any pair (-1) must not block the others
            p1, p2 = (p if p >= 0 else -2 for p in (self.pair[s], self.pair[d]))
            g[(src == s) | (src == d) | (ps == p1) | (ps == p2)] = -np.inf
            g[:, (ds == s) | (ds == d) | (pd == p1) | (pd == p2)] = -np.inf
        return picks

    def same_pair(self, pick: _Pick) -> bool:
        p = self.pair[self.placement[pick.ve]]
        return bool(p >= 0 and p == self.pair[pick.dst])

    def gain_now(self, pick: _Pick) -> float:
        """Exact score drop of ``pick`` in the current state."""
        s, d = int(self.placement[pick.ve]), pick.dst
        dem = self.dem[pick.ve]
        a, b = dem * self.inv_cap[s], dem * self.inv_cap[d]
        s1 = self.s1 - a + b
        s2 = self.s2 + a * (a - 2.0 * self.u[s]) + b * (b + 2.0 * self.u[d])
        var = np.maximum(s2 - s1 * s1 / self.n, 0.0)
        return self.now - float(self.w_n @ np.sqrt(var))

    def open_targets(self) -> np.ndarray:
        """[N] bool: allowed targets with room left on the node and in its pair."""
        return self.dst_ok & self.open

    def _refresh(self, nodes: np.ndarray) -> None:
        """Refresh the table and ``open`` (room on the node and in its pair) for these nodes."""
        block = np.stack([
            self.u[nodes],
            self.limit[nodes] * (1 + 1e-9) - self.load[nodes],
            self._proom[self.pair[nodes]] + 1e-9,
        ])
        self.tab[1:, :, nodes] = block.transpose(0, 2, 1)
        self.open[nodes] = (block[1:] > 2e-9 * self.limit[nodes]).all(axis=(0, 2))

    # -- applying a move ---------------------------------------------------------------------

    def _relocate(self, v: int, d: int) -> tuple[int, bool]:
        """Move VE ``v`` to node ``d`` in the state; returns its old node and whether the
        move stays inside one pair."""
        s = int(self.placement[v])
        dem = self.dem[v]
        u_src, u_dst = self.u[s].copy(), self.u[d].copy()
        self.load[s] -= dem
        self.load[d] += dem
        self.u[s] = self.load[s] * self.inv_cap[s]
        self.u[d] = self.load[d] * self.inv_cap[d]
        self.s1 += self.u[s] - u_src + self.u[d] - u_dst
        self.s2 += self.u[s] ** 2 - u_src**2 + self.u[d] ** 2 - u_dst**2
        ps, pd = self.pair[s], self.pair[d]
        same = bool(ps >= 0 and ps == pd)
        touched = [np.array([s, d])]
        if not same:
            for p, sign in ((ps, -1.0), (pd, 1.0)):
                if p >= 0:
                    self.pload[p] += sign * dem
                    self._proom[p] = self.plim[p] - self.pload[p]
                    touched.append(self.members[p])
        self._refresh(np.concatenate(touched))
        self.placement[v] = d
        self.node_ves[s].remove(v)
        self.node_ves[d].append(v)
        self.n_free[s] -= 1
        self.n_free[d] += 1
        self.now = self.score()
        return s, same

    def _count_node_moves(self, nodes: list[int], step: int) -> None:
        self.node_moves[nodes] += step
        per_node = self.p.settings.max_moves_per_node
        if per_node is not None:
            room = self.node_moves < per_node
            self.src_ok = room
            self.dst_ok = room & ~self.maint

    def apply(self, pick: _Pick, why: str) -> None:
        """Make the move; a VE returning to the node its last move left takes that move back."""
        v, d = pick.ve, pick.dst
        if d in self.left.get(v, ()):
            self._undo(v)
            return
        before = self.now
        dem = self.dem[v]
        u_src = self.u[int(self.placement[v])].copy()
        s, same = self._relocate(v, d)
        cost = float(self.cost[v, 0 if same else 1])
        self.bytes_used += cost
        self.moved[v] = True
        self.left.setdefault(v, []).append(s)
        self._count_node_moves([s, d], 1)
        self._record(v, s, d, same)
        r = int(np.argmax(self.w * dem * self.inv_cap[s]))
        names = self.p.nodes
        detail = f"{self.p.resources[r]} {u_src[r]:.2f}→{self.u[s, r]:.2f} on {names[s]}"
        self.moves.append(
            Move(
                ve=self.p.ves[v],
                src=names[s],
                dst=names[d],
                kind="switchover" if same else "migrate",
                reason=f"{why}{detail}; spread {before:.3f}→{self.now:.3f}",
                bytes=int(cost),
            )
        )

    # -- history, to take a move back ---------------------------------------------------------

    def _record(self, v: int, s: int, d: int, same: bool) -> None:
        """Remember the step and the load it left on its target (node and, if it changed, pair)."""
        k = len(self.steps)
        if k == len(self.h_dst):
            grow = max(64, k)
            self.h_dst = np.concatenate([self.h_dst, np.full(grow, -1)])
            self.h_ppair = np.concatenate([self.h_ppair, np.full(grow, -1)])
            self.h_load = np.vstack([self.h_load, np.zeros((grow, self.dem.shape[1]))])
            self.h_pload = np.vstack([self.h_pload, np.zeros((grow, self.dem.shape[1]))])
        p = int(self.pair[d])
        self.h_dst[k] = d
        self.h_load[k] = self.load[d]
        self.h_ppair[k] = p if (p >= 0 and not same) else -1
        if self.h_ppair[k] >= 0:
            self.h_pload[k] = self.pload[p]
        self.steps.append((v, s, d, same))
        self.last[v] = k

    def can_undo(self, v: int, x: int) -> bool:
        """Could VE ``v`` return to ``x`` by dropping its last move (x → here) from the plan?

        Only if every later step that put load on ``x`` (or migrated into its pair, when
        the dropped move left the pair) still fits with ``v`` staying on ``x`` all along.
        """
        i = self.last.get(v)
        if i is None:
            return False
        _, s, d, same = self.steps[i]
        if s != x or self.placement[v] != d:
            return False
        n = len(self.steps)
        dem = self.dem[v]
        rises = dem > 0
        on_x = self.h_load[i + 1 : n][self.h_dst[i + 1 : n] == x] + dem
        if (on_x[:, rises] > self.limit[x, rises] * (1 + 1e-9)).any():
            return False
        p = int(self.pair[x])
        if same or p < 0:
            return True
        in_p = self.h_pload[i + 1 : n][self.h_ppair[i + 1 : n] == p] + dem
        return not (in_p[:, rises] > self.plim[p, rises] * (1 + 1e-9)).any()

    def _undo(self, v: int) -> None:
        """Take back VE ``v``'s last move: it returns where it was, the move leaves the plan."""
        i = self.last[v]
        _, x, y, same = self.steps[i]
        self._relocate(v, x)
        dem = self.dem[v]
        n = len(self.steps)
        later = slice(i + 1, n)
        self.h_load[later][self.h_dst[later] == x] += dem
        self.h_load[later][self.h_dst[later] == y] -= dem
        if not same:
            for p, sign in ((int(self.pair[x]), 1.0), (int(self.pair[y]), -1.0)):
                if p >= 0:
                    self.h_pload[later][self.h_ppair[later] == p] += sign * dem
        for arr in (self.h_dst, self.h_ppair, self.h_load, self.h_pload):
            arr[i : n - 1] = arr[i + 1 : n].copy()
        del self.steps[i], self.moves[i]
        self.last = {u: (k - 1 if k > i else k) for u, k in self.last.items() if u != v}
        earlier = [k for k in range(i - 1, -1, -1) if self.steps[k][0] == v]
        if earlier:
            self.last[v] = earlier[0]
        else:
            self.moved[v] = False
        self.left[v].pop()
        self.bytes_used -= float(self.cost[v, 0 if same else 1])
        self._count_node_moves([x, y], -1)
        self.undone += 1

    # -- node ranking -----------------------------------------------------------------------

    def ranked(self, key: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
        """Indices of the (at most) k nodes with the largest ``key`` among ``mask``."""
        n = len(key)
        if k >= n:
            return np.flatnonzero(mask)
        if k == 1:
            i = int(np.argmax(np.where(mask, key, -np.inf)))
            return np.array([i]) if mask[i] else np.zeros(0, dtype=np.int64)
        top = np.argpartition(np.where(mask, key, -np.inf), n - k)[n - k :]
        return top[mask[top]]

    def net(self, k_src: int, k_dst: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidate VEs (on the most utilised nodes) and targets (the least utilised)."""
        srcs, dsts = [], []
        src_mask = self.src_ok & (self.n_free > 0)
        open_ = self.open_targets()
        for r in np.flatnonzero(self.w > 0):
            srcs.append(self.ranked(self.u[:, r], src_mask, k_src))
            dsts.append(self.ranked(-self.u[:, r], open_, k_dst))
        src = np.unique(np.concatenate(srcs)) if srcs else np.zeros(0, dtype=np.int64)
        mates = self.partner[src]
        mates = mates[(mates >= 0)]
        mates = mates[self.dst_ok[mates]]
        dst = np.unique(np.concatenate([*dsts, mates])) if dsts else mates
        ves = [v for s in src for v in self.node_ves[s]]
        return np.array(ves, dtype=np.int64), dst


def _choose(g: np.ndarray, cost: np.ndarray, vs: np.ndarray, ds: np.ndarray, floor: float
            ) -> _Pick | None:
    """The cheapest move among those within NEAR_BEST of the best gain (above ``floor``)."""
    i = int(np.argmax(g))
    top = float(g.flat[i])
    if top == -np.inf or top <= floor:
        return None
    near = g >= top - NEAR_BEST * abs(top)
    i = int(np.argmin(np.where(near, cost, np.inf)))
    vi, di = divmod(i, len(ds))
    return _Pick(int(vs[vi]), int(ds[di]), float(g.flat[i]))


def _inverse(x: np.ndarray) -> np.ndarray:
    """1/x, with a huge factor where x ≤ 0 so any load there counts as far over."""
    return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 1e18)


def _members(pair: np.ndarray, n_pairs: int) -> list[np.ndarray]:
    """Node indices of each pair."""
    order = np.argsort(pair, kind="stable")
    cuts = np.searchsorted(pair[order], np.arange(n_pairs + 1))
    return [order[cuts[i] : cuts[i + 1]] for i in range(n_pairs)]


class Balance:
    """Greedy balancer: mandatory moves first, then the best-gain (cheapest near-best) move."""

    name: ClassVar[str] = "balance"
    summary: ClassVar[str] = (
        "greedy: evacuate and repair first, then move VEs from the most to the least "
        "utilised nodes, cheapest of the near-best moves, each VE at most once"
    )

    def plan(self, problem: Problem) -> Plan:
        check_shapes(problem)
        st = _State(problem)
        notes = _run(st) if problem.n_ves and problem.n_nodes else []
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


def _run(st: _State) -> list[str]:
    """Mandatory moves, then balancing; retried while balancing makes room for what was stuck."""
    first = _mandatory_pass(st)
    notes = []
    if first.evacuated:
        notes.append(f"evacuated {first.evacuated} VE(s) from maintenance or forbidden nodes "
                     "first")
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
    if st.undone:
        notes.append(f"{st.undone} move(s) taken back: the VE was better where it started")
    notes += last.stuck
    if last.budget:
        notes.append(f"move budget ({st.p.settings.max_moves}) spent before every mandatory "
                     "move was made")
    return notes + balance_notes


def _mandatory_pass(st: _State) -> _Mandatory:
    out = _Mandatory()
    before = len(st.moves)
    _evacuate(st, out)
    out.evacuated = len(st.moves) - before
    _repair(st, out)
    out.repaired = len(st.moves) - before - out.evacuated
    return out


def _targets(st: _State, k: int, vs: np.ndarray, leave: int = -1) -> np.ndarray:
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


def _mandatory(st: _State, vs: np.ndarray, *, leave: int = -1) -> _Pick | None:
    """Best feasible move of one of ``vs``, widening the targets until one is found.

    ``leave`` is a pair the move must leave (for failover repairs).
    """
    if not len(vs):
        return None
    for k in (4, 64, st.n):
        pick = st.best(vs, _targets(st, k, vs, leave), leave_pair=leave >= 0)
        if pick is not None or k >= st.n:
            return pick
    return None


def _evacuate(st: _State, out: _Mandatory) -> None:
    """Move every movable VE off maintenance nodes and nodes its rules forbid."""
    here = st.placement
    must = st.maint[here] | ~st.allowed[np.arange(st.p.n_ves), here]
    pinned = np.flatnonzero(must & ~st.free)
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
        why = "evacuate maintenance node; " if st.maint[s] else "rules forbid this node; "
        st.apply(pick, why)
    if stuck:
        out.stuck.append(f"no room or no allowed node to evacuate: {', '.join(stuck)}")
    if len(pinned):
        names = ", ".join(st.p.ves[v] for v in pinned)
        out.stuck.append(f"pinned VE(s) left on maintenance or forbidden nodes: {names}")


def _repair(st: _State, out: _Mandatory) -> None:
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
            if pick is None:
                hopeless_pairs[p] = True
                out.stuck.append(f"pair {names} still cannot fail over: no VE can move out "
                                 "(room, rules, pins or budget)")
                continue
            st.apply(pick, f"pair {names} cannot fail over; ")


def _next_moves(st: _State) -> list[_Pick]:
    """Moves that gain more than min_gain: a batch on disjoint nodes from the first net,
    else the single best move of a wider one."""
    min_gain = st.p.settings.min_gain
    vs, ds = st.net(*BATCH_NET)
    picks = st.best_disjoint(vs, ds, min_gain, BATCH)
    if picks:
        return picks
    for k_src, k_dst in NETS:
        vs, ds = st.net(k_src, k_dst)
        pick = st.best(vs, ds, min_gain=min_gain)
        if pick is not None:
            return [pick]
        if k_src >= st.n and k_dst >= st.n:
            break
    return []


def _balance(st: _State) -> list[str]:
    """Greedy best-gain moves until nothing gains more than min_gain or the budget is spent."""
    if not (st.w > 0).any():
        return ["no resource has a weight: nothing to balance"]
    min_gain = st.p.settings.min_gain
    while st.budget_left():
        picks = _next_moves(st)
        if not picks:
            return []
        for i, pick in enumerate(picks):
            # the first is exact; later ones were scored before the earlier moves
            if not st.budget_left() or (i and st.gain_now(pick) <= min_gain):
                break
            if st.cost[pick.ve, 0 if st.same_pair(pick) else 1] > st.bytes_left():
                break
            st.apply(pick, "")
    picks = _next_moves(st)
    if not picks:
        return []
    return [f"move budget ({st.p.settings.max_moves}) spent; the next move would have "
            f"lowered the spread by {picks[0].gain:.4f}"]
