"""The working state of a greedy placement: loads, utilisation, pair room, budget, and the
numpy scoring of candidate moves against ``Problem.score``.

Shapes: V VEs, N nodes, R resources; a candidate block is A VEs × D targets. Scoring a block
costs O(A·D·R) with the spread of each candidate derived from the running sums of
utilisation and its square (no recomputation over all nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from algorithms.base import Move, Problem
from algorithms.pairs import maintenance, node_limit, pair_limit, pair_load, partner
from algorithms.rules import (
    anti_counts,
    domains,
    group_ids,
    group_members,
    locked,
    preferred,
    targets_allowed,
)
from algorithms.steplog import Step, StepLog

NEAR_BEST = 0.01  # moves within 1 % of the best gain compete on cost
MIGRATE_FACTOR = 2.0  # a migration to another pair must gain this many times min_gain


@dataclass(frozen=True)
class Pick:
    ve: int
    dst: int
    gain: float


class State:
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
        self.allowed = targets_allowed(p)
        self.all_allowed = bool(self.allowed.all())
        self.pref = preferred(p)
        self.use_pref = self.pref is not None  # honour should rules (mandatory moves relax it)
        # scale-free stopping rule: gain × N ≥ min_gain (× MIGRATE_FACTOR across pairs)
        self.need_switch = s.min_gain / max(p.n_nodes, 1)
        self.need_migrate = self.need_switch * MIGRATE_FACTOR
        self.anti = group_ids(p.anti_affinity, p.n_ves)
        self.dom = domains(self.pair)
        n_dom = int(self.dom.max(initial=-1)) + 1
        self.acnt = anti_counts(self.anti, self.dom[self.placement], n_dom)
        self.cost = np.asarray(p.move_cost, dtype=float)
        self.load = p.load(self.placement)
        self.limit = node_limit(p)
        self.u = self.load * self.inv_cap
        self.plim = pair_limit(p)
        self.pload = pair_load(self.pair, self.load)
        self._proom = np.vstack([self.plim - self.pload, np.full((1, self.dem.shape[1]), np.inf)])
        self.n = p.n_nodes
        self.members = members(self.pair, len(self.plim))
        # per-node table [4, R, N]: 1/capacity, utilisation, room on the node, room in its pair
        self.tab = np.empty((4, self.dem.shape[1], self.n))
        self.tab[0] = self.inv_cap.T
        self.open = np.ones(self.n, dtype=bool)
        self._refresh(np.arange(self.n))
        self.s1 = self.u.sum(axis=0)
        self.s2 = (self.u * self.u).sum(axis=0)
        self.now = self.score()
        finite = np.isfinite(self.plim)
        self.inv_limit = inverse(self.limit)
        self.plim_f = np.where(finite, self.plim, 0.0)
        self.inv_plim = np.where(finite, inverse(self.plim), 0.0)
        self.maint = maintenance(p)
        self.free = ~locked(p)  # pinned VEs and affinity groups' members are not
        self.aff = group_ids(p.affinity, p.n_ves)  # moved by algorithms.groups
        self.groups = group_members(self.aff)
        self.moved = np.zeros(p.n_ves, dtype=bool)
        self.log = StepLog(self.dem.shape[1])
        self.undone = 0
        self.retargeted = 0
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
        home = self.home(vs)
        ok &= self.dst_ok[ds][None, :]
        ok[~self.src_ok[home] & ~self.moved[vs]] = False
        ok[~self.free[vs]] = False  # a group member moves only with its group
        for i in np.flatnonzero(self.moved[vs]):
            # a VE moves at most once per plan: a moved VE may go elsewhere only by having its
            # move replaced (taken back, then one move from where it started, at the end)
            ok[i] &= self.can_undo(int(vs[i]), int(home[i]))
        if self.use_pref and self.pref is not None:
            ok &= self.pref[vs][:, ds]  # VEs with a preference go only where they prefer
        grouped = np.flatnonzero(self.anti[vs] >= 0)
        if len(grouped):
            crowd = self.acnt[self.anti[vs[grouped]]][:, self.dom[ds]]
            crowd -= self.dom[src[grouped]][:, None] == self.dom[ds][None, :]
            ok[grouped] &= crowd == 0
        if leave_pair:
            ok &= ~same
        ph = self.pair[home][:, None]
        kind_same = (ph == pd[None, :]) & (ph >= 0)
        cost = np.where(kind_same, self.cost[vs, 0][:, None], self.cost[vs, 1][:, None])
        cost[ds[None, :] == home[:, None]] = 0.0  # taking a move back copies nothing
        if self.p.settings.max_bytes is not None:
            ok &= cost <= self.bytes_left() + self.spent_on(vs)[:, None]
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
             worth: bool = False) -> Pick | None:
        """Best feasible move of one of ``vs`` to one of ``ds``; None when none qualifies.

        ``worth=False`` is for mandatory moves: any feasible move counts, even one that
        raises the score. ``worth=True`` keeps only moves that gain what their kind needs
        (``needs``); the pick's gain is then the gain beyond that.
        """
        if not len(vs) or not len(ds):
            return None
        g, cost = self.gains(vs, ds, leave_pair)
        if not worth:
            return choose(g, cost, vs, ds, -np.inf)
        return choose(g - self.needs(vs, ds) - self.over_peak(vs, ds), cost, vs, ds, 0.0)

    def best_disjoint(self, vs: np.ndarray, ds: np.ndarray, most: int) -> list[Pick]:
        """Up to ``most`` moves worth their cost touching different nodes and pairs, best first.

        Moves on disjoint nodes and pairs stay feasible after each other; only their gain
        shifts a little (the cluster mean moves), so callers re-check it before applying.
        """
        if not len(vs) or not len(ds):
            return []
        g, cost = self.gains(vs, ds)
        g -= self.needs(vs, ds) + self.over_peak(vs, ds)
        src = self.placement[vs]
        ps, pd = self.pair[src], self.pair[ds]
        picks: list[Pick] = []
        while len(picks) < most:
            pick = choose(g, cost, vs, ds, 0.0)
            if pick is None:
                break
            picks.append(pick)
            s, d = int(self.placement[pick.ve]), pick.dst
            # -2 matches nothing: a node outside any pair (-1) must not block the others
            p1, p2 = (p if p >= 0 else -2 for p in (self.pair[s], self.pair[d]))
            g[(src == s) | (src == d) | (ps == p1) | (ps == p2)] = -np.inf
            g[:, (ds == s) | (ds == d) | (pd == p1) | (pd == p2)] = -np.inf
        return picks

    def over_peak(self, vs: np.ndarray, ds: np.ndarray) -> np.ndarray:
        """[A, D] inf where the move would lift its target above the fullest node's current
        peak (over the weighted resources), else 0: balancing never raises the maximum."""
        use = self.w > 0
        top = float(self.u[:, use].max()) if use.any() and self.n else 0.0
        share = self.dem[vs][:, use][:, None, :] * self.inv_cap[ds][:, use][None, :, :]
        new = (self.u[ds][:, use][None, :, :] + share).max(axis=2, initial=0.0)
        return np.where(new > top + 1e-12, np.inf, 0.0)

    def home(self, vs: np.ndarray) -> np.ndarray:
        """[A] node each VE was on before the plan moved it (its current node if unmoved)."""
        out = self.placement[vs].copy()
        for i in np.flatnonzero(self.moved[vs]):
            out[i] = self.log.steps[self.log.last[int(vs[i])]].src
        return out

    def spent_on(self, vs: np.ndarray) -> np.ndarray:
        """[A] bytes the plan already spends on each VE's move (0 if unmoved)."""
        out = np.zeros(len(vs))
        for i in np.flatnonzero(self.moved[vs]):
            step = self.log.steps[self.log.last[int(vs[i])]]
            out[i] = self.cost[step.ve, 0 if step.same_pair else 1]
        return out

    def needs(self, vs: np.ndarray, ds: np.ndarray) -> np.ndarray:
        """[A, D] least gain a move must bring: more for a migration than a switchover."""
        ps = self.pair[self.home(vs)][:, None]
        same = (ps == self.pair[ds][None, :]) & (ps >= 0)
        return np.where(same, self.need_switch, self.need_migrate)

    def affordable(self, pick: Pick) -> bool:
        """Does the byte budget still cover ``pick`` (a replaced move frees its bytes)?"""
        vs = np.array([pick.ve])
        cost = float(self.cost[pick.ve, 0 if self.same_pair(pick) else 1])
        return cost <= self.bytes_left() + float(self.spent_on(vs)[0])

    def need(self, pick: Pick) -> float:
        return self.need_switch if self.same_pair(pick) else self.need_migrate

    def same_pair(self, pick: Pick) -> bool:
        p = self.pair[self.home(np.array([pick.ve]))[0]]
        return bool(p >= 0 and p == self.pair[pick.dst])

    def gain_now(self, pick: Pick) -> float:
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
        if self.anti[v] >= 0:
            self.acnt[self.anti[v], self.dom[s]] -= 1
            self.acnt[self.anti[v], self.dom[d]] += 1
        self.placement[v] = d
        if self.free[v]:
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

    def apply(self, pick: Pick, why: str) -> None:
        """Make the move. A VE the plan moved already has that move taken back instead (it
        returns to where it started) and, unless that is where it goes, moves once from there
        at the end of the plan: each VE moves at most once."""
        v, d = pick.ve, pick.dst
        if self.moved[v]:
            home = self.log.steps[self.log.last[v]].src
            self._undo(v)
            if d == home:
                return
            self.retargeted += 1
        before = self.now
        dem = self.dem[v]
        u_src = self.u[int(self.placement[v])].copy()
        s, same = self._relocate(v, d)
        cost = float(self.cost[v, 0 if same else 1])
        self.bytes_used += cost
        self.moved[v] = True
        self._count_node_moves([s, d], 1)
        p = int(self.pair[d]) if not same else -1
        self.log.record(Step(v, s, d, same), self.load[d], p, self.pload[p] if p >= 0 else None)
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

    def can_undo(self, v: int, x: int) -> bool:
        """Could VE ``v`` return to ``x`` by dropping its last move (x → here) from the plan?"""
        step = self.log.last_step(v)
        if step is None or step.src != x or self.placement[v] != step.dst:
            return False
        if self.anti[v] >= 0:
            # no later step may have brought a peer of its anti-affinity group into x's pair
            later = self.log.steps[self.log.last[v] + 1:]
            if any(self.anti[t.ve] == self.anti[v] and self.dom[t.dst] == self.dom[x]
                   for t in later):
                return False
        p = int(self.pair[x])
        plim = None if step.same_pair or p < 0 else self.plim[p]
        return self.log.fits_without_last(v, self.dem[v], self.limit[x], p, plim)

    def _undo(self, v: int) -> None:
        """Take back VE ``v``'s last move: it returns where it was, the move leaves the plan."""
        step = self.log.steps[self.log.last[v]]
        self._relocate(v, step.src)
        i = self.log.drop_last(v, self.dem[v], int(self.pair[step.src]), int(self.pair[step.dst]))
        del self.moves[i]
        self.moved[v] = v in self.log.last
        self.bytes_used -= float(self.cost[v, 0 if step.same_pair else 1])
        self._count_node_moves([step.src, step.dst], -1)
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


def choose(g: np.ndarray, cost: np.ndarray, vs: np.ndarray, ds: np.ndarray, floor: float
            ) -> Pick | None:
    """The cheapest move among those within NEAR_BEST of the best gain (above ``floor``)."""
    i = int(np.argmax(g))
    top = float(g.flat[i])
    if top == -np.inf or top <= floor:
        return None
    near = g >= top - NEAR_BEST * abs(top)
    i = int(np.argmin(np.where(near, cost, np.inf)))
    vi, di = divmod(i, len(ds))
    return Pick(int(vs[vi]), int(ds[di]), float(g.flat[i]))


def inverse(x: np.ndarray) -> np.ndarray:
    """1/x, with a huge factor where x ≤ 0 so any load there counts as far over."""
    return np.where(x > 0, 1.0 / np.where(x > 0, x, 1.0), 1e18)


def members(pair: np.ndarray, n_pairs: int) -> list[np.ndarray]:
    """Node indices of each pair."""
    order = np.argsort(pair, kind="stable")
    cuts = np.searchsorted(pair[order], np.arange(n_pairs + 1))
    return [order[cuts[i] : cuts[i + 1]] for i in range(n_pairs)]
