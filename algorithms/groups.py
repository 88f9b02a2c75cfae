"""Affinity groups moved as a unit by the algorithms built on ``State``.

A group of two or more VEs (``Problem.affinity``) runs on one node. Single-VE moves never
take a member (``State.free`` is False for them); a group move takes every member not on the
target yet, one right after the other, to that one node — the validator's unit. The group's
summed demand must fit there and in the target's pair (capacity is then also met after each
member's move, as demands only add up), every member's must rules must allow the target,
and no member may bring an anti-affinity peer into a pair. A pinned member pins the group: it
may only gather on the pinned member's node. Each group moves at most once per plan, and
only whole within the move budget (count, bytes, moves per node).

Mandatory group moves (``evacuate``: a member on a maintenance or forbidden node, crowding an
anti-affinity peer, or the group split; ``relieve``: off a node over max_utilisation or out of
a pair that cannot fail over) ignore should rules. Balancing (``balance_step``) moves a group
when the spread drops by at least what each member's move must gain, and never lifts the
target above the fullest node.

Cost per group (M members, D targets, R resources): O(M·D·R) to score every target at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from algorithms.rules import anti_crowded
from algorithms.state import Pick

if TYPE_CHECKING:
    from algorithms.state import State

K_SRC, K_DST = 16, 64  # balancing: groups on the most utilised nodes, the least utilised targets


def names(st: State, g: int) -> str:
    return ", ".join(st.p.ves[v] for v in st.groups[g])


def score(st: State, g: int, ds: np.ndarray, *, leave: int = -1, pref: bool = False
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Score drop [D] of gathering group ``g`` on each of ``ds`` (-inf: not possible), the
    bytes [D] it copies and the moves [D] it takes. ``leave``: a pair the group must leave;
    ``pref``: honour should rules (every member's)."""
    mem = st.groups[g]
    n_d = len(ds)
    where = st.placement[mem]
    on = where[:, None] == ds[None, :]  # [M, D] member already on the target
    k = len(mem) - on.sum(axis=0)
    ok = (k > 0) & st.dst_ok[ds] & st.allowed[mem][:, ds].all(axis=0)
    pinned = ~np.asarray(st.p.movable, dtype=bool)[mem]
    ok &= ~(pinned[:, None] & ~on).any(axis=0)
    if st.moved[mem].any():
        ok[:] = False
    if leave >= 0:
        ok &= st.pair[ds] != leave
    if pref and st.use_pref and st.pref is not None:
        ok &= st.pref[mem][:, ds].all(axis=0)
    cap = st.p.settings.max_moves
    if cap is not None:
        ok &= len(st.moves) + k <= cap
    pd = st.pair[ds]
    inpair = (st.pair[where][:, None] == pd[None, :]) & (pd >= 0)[None, :]
    dem = st.dem[mem]
    moved = dem.sum(axis=0)[None, :] - on.T.astype(float) @ dem  # [D, R] arriving
    arriving = dem.sum(axis=0)[None, :] - inpair.T.astype(float) @ dem  # from other pairs
    ok &= ((moved <= st.tab[2][:, ds].T) | (moved <= 0)).all(axis=1)
    ok &= ((arriving <= st.tab[3][:, ds].T) | (arriving <= 0)).all(axis=1)
    cost = ((~on & inpair).T.astype(float) @ st.cost[mem, 0]
            + (~on & ~inpair).T.astype(float) @ st.cost[mem, 1])
    ok &= cost <= st.bytes_left()
    _budget_per_node(st, where, ds, k, ok)
    _anti(st, mem, where, ds, ok)
    # the spread after: every source loses its members, the target gains what arrives
    srcs, at = np.unique(where, return_inverse=True)
    lose = np.zeros((len(srcs), dem.shape[1]))
    np.add.at(lose, at, dem)
    u_new = (st.load[srcs] - lose) * st.inv_cap[srcs]
    d1 = u_new - st.u[srcs]
    d2 = u_new * u_new - st.u[srcs] ** 2
    corr1, corr2 = np.zeros((n_d, dem.shape[1])), np.zeros((n_d, dem.shape[1]))
    hit = np.searchsorted(srcs, ds)
    is_src = (hit < len(srcs)) & (srcs[np.minimum(hit, len(srcs) - 1)] == ds)
    corr1[is_src], corr2[is_src] = d1[hit[is_src]], d2[hit[is_src]]
    b = moved * st.inv_cap[ds]
    s1 = st.s1 + d1.sum(axis=0) - corr1 + b
    s2 = st.s2 + d2.sum(axis=0) - corr2 + b * (b + 2.0 * st.u[ds])
    var = np.maximum(s2 / st.n - (s1 / st.n) ** 2, 0.0)
    gain = st.now - np.sqrt(var) @ st.w
    return np.where(ok, gain, -np.inf), cost, k


def _budget_per_node(st: State, where: np.ndarray, ds: np.ndarray, k: np.ndarray,
                     ok: np.ndarray) -> None:
    """Clear ``ok`` where a node would take part in more than max_moves_per_node moves."""
    per = st.p.settings.max_moves_per_node
    if per is None:
        return
    ok &= st.node_moves[ds] + k <= per
    srcs, count = np.unique(where, return_counts=True)
    over = srcs[st.node_moves[srcs] + count > per]
    ok &= (len(over) == 0) | ((len(over) == 1) & (ds == (over[0] if len(over) else -1)))


def _anti(st: State, mem: np.ndarray, where: np.ndarray, ds: np.ndarray, ok: np.ndarray
          ) -> None:
    """Clear ``ok`` where a member would join an anti-affinity peer's pair."""
    for a in np.unique(st.anti[mem][st.anti[mem] >= 0]):
        mine = st.anti[mem] == a
        dom_d = st.dom[ds]
        here = (st.dom[where[mine]][:, None] == dom_d[None, :]).sum(axis=0)
        after = st.acnt[a, dom_d] - here + int(mine.sum())
        crosses = here < int(mine.sum())  # some member of this anti group changes pair
        ok &= ~(crosses & (after > 1))


def move(st: State, g: int, d: int, why: str) -> None:
    """Gather group ``g`` on node ``d``: its members' moves, one right after the other."""
    unit = f"affinity group of {names(st, g)} moves as a unit; "
    why = why if why.startswith(unit) else unit + why
    for v in st.groups[g]:
        if st.placement[v] != d:
            st.apply(Pick(int(v), d, 0.0), why)


def gather(st: State, v: int, d: int, why: str) -> bool:
    """Move the group of member ``v`` to ``d`` as a unit if it may go there now (for
    ``algorithms.settle``, which replays a plan VE by VE); False when it may not."""
    g = next(i for i, mem in enumerate(st.groups) if v in mem)
    gain, _, _ = score(st, g, np.array([d]))
    if gain[0] == -np.inf:
        return False
    move(st, g, d, why)
    return True


def _best(st: State, g: int, ds: np.ndarray, **kw: object) -> tuple[int, float]:
    """(target, gain) of the best gathering of ``g`` on one of ``ds``; target -1 if none.
    The least utilised targets with room for the group and its members' partners are tried
    first, then all of ``ds``."""
    for cand in (_near(st, g, ds), ds):
        if not len(cand):
            continue
        gain, cost, _ = score(st, g, cand, **kw)  # type: ignore[arg-type]
        i = int(np.argmax(gain))
        if gain[i] > -np.inf:
            near = gain >= gain[i] - 0.01 * abs(gain[i])
            i = int(np.argmin(np.where(near, cost, np.inf)))
            return int(cand[i]), float(gain[i])
        if len(cand) == len(ds):
            break
    return -1, -np.inf


def _near(st: State, g: int, ds: np.ndarray) -> np.ndarray:
    """Of ``ds``: the K_DST least utilised per weighted resource with room on the node for
    the whole group, and the partners of its members' nodes."""
    if len(ds) <= K_DST:
        return ds
    mask = np.zeros(st.n, dtype=bool)
    mask[ds] = True
    need = st.dem[st.groups[g]].sum(axis=0)[:, None]
    room = mask & (st.tab[2] >= need).all(axis=0)
    use = np.flatnonzero(st.w > 0) if (st.w > 0).any() else np.arange(st.u.shape[1])
    mates = st.partner[st.placement[st.groups[g]]]
    mates = mates[(mates >= 0)]
    picked = [st.ranked(-st.u[:, r], room, K_DST) for r in use]
    return np.unique(np.concatenate([*picked, mates[mask[mates]]]))


def must_move(st: State) -> np.ndarray:
    """[G] bool: groups a member of which is on a maintenance or forbidden node or crowds an
    anti-affinity peer, or whose members are on more than one node."""
    out = np.zeros(len(st.groups), dtype=bool)
    if not len(st.groups):
        return out
    here = st.placement
    bad = st.maint[here] | ~st.allowed[np.arange(len(here)), here] | anti_crowded(st.p)
    for g, mem in enumerate(st.groups):
        if len(mem):
            out[g] = bool(bad[mem].any()) or bool((here[mem] != here[mem[0]]).any())
    return out


def waiting(st: State) -> np.ndarray:
    """[V] bool: members of the groups a mandatory pass would still move (``must_move``, not
    moved yet); a group with a pinned member is left out, as it gathers only where that
    member is."""
    out = np.zeros(len(st.placement), dtype=bool)
    pinned = ~np.asarray(st.p.movable, dtype=bool)
    for g in np.flatnonzero(must_move(st) & ~_moved(st)):
        mem = st.groups[g]
        out[mem] = not pinned[mem].any()
    return out


def evacuate(st: State) -> tuple[int, list[str], bool]:
    """Make the mandatory group moves, biggest group first. Returns the moves made, notes on
    the groups that stay, and whether the move budget ran out."""
    todo = np.flatnonzero(must_move(st) & ~_moved(st))
    if not len(todo):
        return 0, [], False
    before = len(st.moves)
    first = st.placement[[st.groups[g][0] for g in todo]]
    size = np.array([(st.dem[st.groups[g]].sum(axis=0) * st.inv_cap[n]).max()
                     for g, n in zip(todo, first, strict=True)])
    stuck: list[str] = []
    budget = False
    for g in todo[np.argsort(-size, kind="stable")]:
        if not st.budget_left():
            budget = True
            break
        d, _ = _best(st, int(g), np.flatnonzero(st.dst_ok))
        if d < 0:
            stuck.append(names(st, int(g)))
            continue
        split = len(np.unique(st.placement[st.groups[g]])) > 1
        move(st, int(g), d, "the group is split; " if split else "a member must leave its "
             "node (maintenance, rules or anti-affinity); ")
    notes = [f"affinity group of {n}: no node can take the whole group (room, rules, pins "
             "or budget); it stays where it is" for n in stuck]
    return len(st.moves) - before, notes, budget


def relieve(st: State, pick: Pick | None, nodes: np.ndarray, why: str, leave: int = -1
            ) -> bool:
    """Move a group off ``nodes`` instead of ``pick`` (the best single-VE repair) when that
    gains more; True when a group moved (``pick`` is then not made)."""
    if not len(st.groups):
        return False
    best_g, best_d, best = -1, -1, -np.inf if pick is None else pick.gain
    ds = np.flatnonzero(st.dst_ok)
    for g in _on(st, nodes):
        d, gain = _best(st, int(g), ds, leave=leave)
        if d >= 0 and gain > best:
            best_g, best_d, best = int(g), d, gain
    if best_g < 0:
        return False
    move(st, best_g, best_d, why)
    return True


def balance_step(st: State) -> bool:
    """Make the group move that lowers the spread most beyond what its member moves must
    gain, among groups on the most utilised nodes; False when none is worth it."""
    if not len(st.groups) or not st.budget_left():
        return False
    use = np.flatnonzero(st.w > 0)
    srcs = np.unique(np.concatenate([st.ranked(st.u[:, r], st.src_ok, K_SRC) for r in use]))
    ds = np.unique(np.concatenate([st.ranked(-st.u[:, r], st.open_targets(), K_DST)
                                   for r in use]))
    if not len(ds):
        return False
    top = float(st.u[:, use].max())
    best_g, best_d, best = -1, -1, 0.0
    for g in _on(st, srcs):
        mem = st.groups[g]
        gain, _, _ = score(st, int(g), ds, pref=True)
        where = st.placement[mem]
        home, pd = st.pair[where][:, None], st.pair[ds][None, :]
        need = np.where(where[:, None] == ds[None, :], 0.0,
                        np.where((home == pd) & (pd >= 0), st.need_switch, st.need_migrate)
                        ).sum(axis=0)
        lifted = (st.u[ds][:, use] + st.dem[mem].sum(axis=0)[use] * st.inv_cap[ds][:, use]
                  ).max(axis=1) > top + 1e-12
        net = np.where(lifted, -np.inf, gain - need)
        i = int(np.argmax(net))
        if net[i] > best:
            best_g, best_d, best = int(g), int(ds[i]), float(net[i])
    if best_g < 0:
        return False
    move(st, best_g, best_d, "")
    return True


def _moved(st: State) -> np.ndarray:
    """[G] bool: groups this plan has moved already (or that are empty ids)."""
    has = st.aff >= 0
    size = np.bincount(st.aff[has], minlength=len(st.groups))
    return (size == 0) | (np.bincount(st.aff[has & st.moved], minlength=len(st.groups)) > 0)


def _on(st: State, nodes: np.ndarray) -> np.ndarray:
    """Ids of the groups not moved yet with a member on one of ``nodes``."""
    here = np.isin(st.placement, nodes) & (st.aff >= 0)
    ids = np.unique(st.aff[here])
    return ids[~_moved(st)[ids]]

