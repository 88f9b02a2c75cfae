"""``optimal``: the exact reference — a mixed-integer programme solved by HiGHS.

What it optimises: the maximum utilisation over nodes and weighted resources, then (by a
small penalty) the number of moves and placements off preferred nodes; subject to capacity
(``max_utilisation``), failover headroom of every pair (``failover_overcommit``), pins,
affinity groups (one unit: every member's row equals its leader's, on a node every member's
rules allow, a pinned member's node if it has one; a group with no such node stays), must
rules and maintenance (``allowed``), anti-affinity (one member of a group per pair), and
the budget (moves, bytes, moves per node). The solver stops at ``NODE_LIMIT``
branch-and-bound nodes (deterministic), ``TIME_LIMIT`` seconds, or a relative gap of
``GAP``; the notes report status, objective, bound and gap. A solution that beats the
current placement by less than ``CHURN`` (and ``min_gain`` / N) plans nothing, so running
it again on its own result plans nothing.

The target placement is then turned into an ordered plan: repeatedly the largest pending
move that keeps capacity, failover and the rules after the step (checked like the
validator; a group's members move one right after the other, as ``algorithms.groups``
does); when no pending move can go next, the notes say so and the plan is the valid prefix.

What it needs: ``demand``, ``capacity``, ``placement``, ``pair``, the rules and settings;
``scipy`` (HiGHS). Limits: V·N binary variables, so for small clusters (refused above
``MAX_CELLS`` with a note); a VE that must move and cannot is infeasible (noted, no moves).

Cost in V, N: the programme has V·N + 1 variables and V + N·R + P·R rows (+ budget and
anti-affinity rows, and (M - 1)·N rows per affinity group of M); solving is exponential in
the worst case, bounded by ``TIME_LIMIT``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from algorithms import groups
from algorithms.base import Plan, Problem
from algorithms.common import finish
from algorithms.pairs import check_shapes, node_limit, pair_limit
from algorithms.rules import domains, group_ids, group_members, preferred, targets_allowed
from algorithms.state import Pick, State

TIME_LIMIT = 60.0  # seconds for HiGHS (a safety net: the node limit stops it first)
NODE_LIMIT = 3000  # branch-and-bound nodes: a deterministic limit, unlike time
GAP = 5e-3  # relative MIP gap at which HiGHS stops
CHURN = 0.01  # a placement must beat the current one by this share to be planned
MAX_CELLS = 400  # V × N above which the exact model is refused (40 VEs on 8 nodes fit)
MOVE_PENALTY = 1e-4  # objective cost of one move (utilisation units)
SLACK = 1e-6  # rows are kept this far inside their limits (solver tolerance)


class Optimal:
    """Exact min-max utilisation placement (MILP, HiGHS) with a move budget."""

    name: ClassVar[str] = "optimal"
    max_cells: ClassVar[int] = MAX_CELLS  # tests size their clusters by this
    summary: ClassVar[str] = (
        "exact: MILP (HiGHS) minimising the highest node utilisation under capacity, "
        "failover, rules and budget; for small clusters and as a quality reference"
    )

    def plan(self, problem: Problem) -> Plan:
        check_shapes(problem)
        st = State(problem)
        if not (problem.n_ves and problem.n_nodes):
            return finish(self.name, problem, st, [])
        if problem.n_ves * problem.n_nodes > MAX_CELLS:
            return finish(self.name, problem, st, [
                f"{problem.n_ves} VEs × {problem.n_nodes} nodes is above {MAX_CELLS} cells: "
                "too large for the exact model, nothing planned"])
        target, notes = solve(problem)
        if target is not None:
            notes += order(st, target)
        return finish(self.name, problem, st, notes)


def solve(problem: Problem) -> tuple[np.ndarray | None, list[str]]:
    """The optimal placement [V] (None when there is none worth taking) and notes."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix, csr_matrix, vstack

    v_n, n_n = problem.n_ves, problem.n_nodes
    s = problem.settings
    home = np.asarray(problem.placement, dtype=np.int64)
    dem = np.asarray(problem.demand, dtype=float)
    cap = np.asarray(problem.capacity, dtype=float)
    nv = v_n * n_n
    col = np.arange(nv).reshape(v_n, n_n)
    at_home = np.zeros((v_n, n_n), dtype=bool)
    at_home[np.arange(v_n), home] = True
    allowed = targets_allowed(problem)
    stay, units, notes = group_bounds(problem, allowed)
    ub = allowed.astype(float)
    ub[stay] = at_home[stay]
    lb = np.where(stay[:, None] & at_home, 1.0, 0.0)
    rows: list[csr_matrix] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []

    def add(mat: coo_matrix | csr_matrix, low: np.ndarray | list[float],
            high: np.ndarray | list[float]) -> None:
        rows.append(csr_matrix(mat))
        lo.append(np.asarray(low, dtype=float))
        hi.append(np.asarray(high, dtype=float))

    vv, nn = np.nonzero(np.ones((v_n, n_n), dtype=bool))
    flat = col[vv, nn]
    # each VE on exactly one node
    add(coo_matrix((np.ones(nv), (vv, flat)), shape=(v_n, nv + 1)), np.ones(v_n), np.ones(v_n))
    # an affinity group is one unit: each member's row equals its leader's
    for mem in units:
        m = len(mem) - 1
        eq = np.arange(m * n_n)
        data = np.r_[np.ones(m * n_n), -np.ones(m * n_n)]
        ci = np.r_[col[mem[1:]].ravel(), np.tile(col[mem[0]], m)]
        add(coo_matrix((data, (np.r_[eq, eq], ci)), shape=(m * n_n, nv + 1)), np.zeros(m * n_n),
            np.zeros(m * n_n))
    fixed = np.zeros((n_n, dem.shape[1]))
    np.add.at(fixed, home[stay], dem[stay])
    limit = np.maximum(node_limit(problem), fixed)  # a node held over by pins stays possible
    w = np.asarray(s.weights, dtype=float) > 0
    for r in range(dem.shape[1]):
        scale = np.where(limit[:, r] > 0, 1.0 / np.where(limit[:, r] > 0, limit[:, r], 1), 0)
        add(coo_matrix((dem[vv, r] * scale[nn], (nn, flat)), shape=(n_n, nv + 1)),
            np.full(n_n, -np.inf), np.where(limit[:, r] > 0, 1.0 - SLACK, 0.0))
        if w[r]:
            inv = np.where(cap[:, r] > 0, 1.0 / np.where(cap[:, r] > 0, cap[:, r], 1), 0)
            data = np.r_[dem[vv, r] * inv[nn], -np.ones(n_n)]
            ri = np.r_[nn, np.arange(n_n)]
            ci = np.r_[flat, np.full(n_n, nv)]
            add(coo_matrix((data, (ri, ci)), shape=(n_n, nv + 1)), np.full(n_n, -np.inf),
                np.zeros(n_n))
    pair = np.asarray(problem.pair, dtype=np.int64)
    plim = pair_limit(problem)
    paired = pair[nn] >= 0
    for r in range(dem.shape[1]):
        if not len(plim):
            break
        pfixed = np.zeros(len(plim))
        np.add.at(pfixed, pair[home[stay]][pair[home[stay]] >= 0],
                  dem[stay][pair[home[stay]] >= 0, r])
        lim = np.maximum(plim[:, r], pfixed)
        fin = np.isfinite(lim) & (lim > 0)
        scale = np.where(fin, 1.0 / np.where(fin, lim, 1), 0)
        add(coo_matrix((dem[vv, r][paired] * scale[pair[nn][paired]],
                        (pair[nn][paired], flat[paired])), shape=(len(plim), nv + 1)),
            np.full(len(plim), -np.inf), np.where(fin, 1.0 - SLACK, np.inf))
    moving = ~at_home.ravel()
    if s.max_moves is not None:
        add(csr_matrix(np.r_[moving, 0.0][None, :]), [-np.inf], [float(s.max_moves)])
    if s.max_bytes is not None:
        same = (pair[home][vv] == pair[nn]) & (pair[nn] >= 0)
        cost = np.where(same, problem.move_cost[vv, 0], problem.move_cost[vv, 1]) * moving
        add(csr_matrix(np.r_[cost / max(s.max_bytes, 1), 0.0][None, :]), [-np.inf], [1.0])
    if s.max_moves_per_node is not None:
        sign = np.where(at_home.ravel(), -1.0, 1.0)
        base = np.bincount(home, minlength=n_n)
        add(coo_matrix((sign, (nn, flat)), shape=(n_n, nv + 1)), np.full(n_n, -np.inf),
            s.max_moves_per_node - base)
    anti = group_ids(problem.anti_affinity, v_n)
    if (anti >= 0).any():
        dom = domains(pair)
        n_dom = int(dom.max()) + 1
        n_rows = int(anti.max() + 1) * n_dom
        pinned = np.zeros(n_rows)
        kept = stay & (anti >= 0)
        np.add.at(pinned, anti[kept] * n_dom + dom[home[kept]], 1)
        g = anti[vv] >= 0
        key = anti[vv][g] * n_dom + dom[nn][g]
        add(coo_matrix((np.ones(int(g.sum())), (key, flat[g])), shape=(n_rows, nv + 1)),
            np.full(n_rows, -np.inf), np.maximum(pinned, 1))
    pref = preferred(problem)
    c = np.r_[MOVE_PENALTY * moving, 1.0]
    if pref is not None:
        c[:nv] += 0.5 * MOVE_PENALTY * ~pref.ravel()
    integrality = np.r_[np.ones(nv), 0.0]
    bounds = Bounds(np.r_[lb.ravel(), 0.0], np.r_[ub.ravel(), np.inf])
    res = milp(c, integrality=integrality, bounds=bounds,
               constraints=LinearConstraint(vstack(rows), np.concatenate(lo),
                                            np.concatenate(hi)),
               options={"time_limit": TIME_LIMIT, "node_limit": NODE_LIMIT,
                        "mip_rel_gap": GAP})
    if res.x is None:
        return None, [*notes,
                      f"milp: no feasible placement ({res.message.strip()}); nothing planned"]
    x = res.x[:nv].reshape(v_n, n_n)
    target = np.argmax(x, axis=1)
    z = float(res.x[nv])
    gap = getattr(res, "mip_gap", float("nan"))
    bound = getattr(res, "mip_dual_bound", float("nan"))
    status = "optimal" if res.status == 0 else f"stopped ({res.message.strip()})"
    notes += [f"milp: {status}, max utilisation {z:.4f}, objective {res.fun:.6f}, bound "
             f"{bound:.6f}, gap {gap:.2%}"]
    now = current_objective(problem, c, home, w, stay, units)
    if now is not None and now <= float(res.fun) * (1 + CHURN) + s.min_gain / max(n_n, 1):
        return None, [*notes, "the current placement is as good: nothing planned"]
    return target, notes


def group_bounds(problem: Problem, allowed: np.ndarray
                 ) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
    """Narrow ``allowed`` [V, N] (in place) for affinity groups: every member's targets are
    those all members may take, only a pinned member's node if one is pinned. Returns [V]
    bool of the VEs that stay (pinned, or in a group no node can take whole), the groups
    that move as one unit, and notes on the groups that stay but should move."""
    pinned = ~np.asarray(problem.movable, dtype=bool)
    home = np.asarray(problem.placement, dtype=np.int64)
    stay = pinned.copy()
    units: list[np.ndarray] = []
    notes: list[str] = []
    for mem in group_members(group_ids(problem.affinity, problem.n_ves)):
        if len(mem) < 2:
            continue
        common = allowed[mem].all(axis=0)
        pins = np.unique(home[mem[pinned[mem]]])
        if len(pins):
            only = np.zeros_like(common)
            only[pins[0]] = len(pins) == 1
            common &= only
        if common.any():
            allowed[mem] = common
            units.append(mem)
            continue
        stay[mem] = True
        if len(np.unique(home[mem])) > 1 or not allowed[mem, home[mem]].all():
            notes.append(f"affinity group of {', '.join(problem.ves[v] for v in mem)}: no "
                         "node can take the whole group (rules or pins); it stays where it is")
    return stay, units, notes


def current_objective(problem: Problem, c: np.ndarray, home: np.ndarray, w: np.ndarray,
                      stay: np.ndarray, units: list[np.ndarray]) -> float | None:
    """The programme's objective at the current placement (None when that is infeasible:
    something must move)."""
    allowed = targets_allowed(problem)[np.arange(problem.n_ves), home]
    if not allowed[~stay].all() or any((home[m] != home[m[0]]).any() for m in units):
        return None
    u = problem.utilisation()
    if (problem.load() > node_limit(problem) * (1 + 1e-9)).any():
        return None
    z = float(u[:, w].max()) if w.any() else 0.0
    pref = preferred(problem)
    extra = 0.0
    if pref is not None:
        col = np.arange(problem.n_ves) * problem.n_nodes + home
        extra = float(c[col].sum())
    return z + extra


def order(st: State, target: np.ndarray) -> list[str]:
    """Apply the moves to ``target`` in an order that keeps every step valid; an affinity
    group's moves come one right after the other."""
    size = (st.dem * st.inv_cap[st.placement]).max(axis=1)
    # pending units: a VE (group -1) or a group (its first member stands for it)
    pending = [(int(v), -1) for v in np.flatnonzero((target != st.placement) & st.free)]
    pending += [(int(mem[0]), g) for g, mem in enumerate(st.groups)
                if len(mem) and (target[mem] != st.placement[mem]).any()]
    pending.sort(key=lambda u: -(size[st.groups[u[1]]].sum() if u[1] >= 0 else size[u[0]]))
    while pending:
        for v, g in pending:
            d = int(target[v])
            if g >= 0:
                ok = groups.score(st, g, np.array([d]))[0][0] > -np.inf
            else:
                ok = st.gains(np.array([v]), np.array([d]))[0][0, 0] > -np.inf
            if not ok:
                continue
            if g >= 0:
                groups.move(st, g, d, "optimal placement; ")
            else:
                st.apply(Pick(v, d, 0.0), "optimal placement; ")
            pending.remove((v, g))
            break
        else:
            names = ", ".join(st.p.ves[v] for v, _ in pending[:5])
            return [f"no order keeps every step valid for {len(pending)} remaining move(s) "
                    f"({names}): the plan is the valid prefix"]
    return []
