"""``sandpiper``: relieve hotspots the way Sandpiper does (Wood et al., NSDI 2007).

What it optimises: no node stays hot. A node is hot when in at least ``K_OF`` of the last
``N_STEPS`` steps of its summed profile some resource exceeds ``HOT_SHARE`` ×
max_utilisation, or when a one-step forecast (the linear trend of those steps) does. Hot
nodes are relieved in order of their volume ``1/((1-cpu)(1-mem)(1-net))`` (a resource the
problem lacks counts as 0; utilisation capped at 0.99); from a hot node the VE with the
highest volume-to-size ratio (volume of its own demand on that node / its memory) leaves
first, to the least-volume node that can take it and stays cool, until the node is cool.

What it needs: ``profile[V, T, R]`` (without one the demand is a single step: k-of-n
becomes "over the level now"), ``capacity``, ``placement``, ``pair``, the rules. Moves are
checked like every plan (capacity on ``demand``, failover, rules, budget); evacuations and
repairs come first, as in ``balance``, and are tried again after its moves while those made
room for one (``algorithms.rerun``). Each VE moves at most once; up to a million VEs × nodes
the plan is settled (planned again on its own result and made straight to where
that settles, kept when no more nodes are hot), so a second run on the result plans nothing.

Limits: it only reacts to hot nodes, so a cluster without one gets no moves even when it is
uneven (use ``balance``); the forecast is a straight line through a few steps.

Cost in V, N, T (R resources, v̄ VEs per node, H hot nodes): O(V·T·R) to sum the profiles,
O(N·N_STEPS·R) to find hot nodes, then per hot node O(v̄·N·R) to place its VEs.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from algorithms.base import Plan, Problem
from algorithms.common import inverse_capacity, node_sums, profile_of
from algorithms.rerun import settled_plan
from algorithms.state import Pick, State

HOT_SHARE = 0.85  # hot level: this share of max_utilisation
K_OF, N_STEPS = 3, 5  # hot when K_OF of the last N_STEPS steps are over the level
VOLUME_RESOURCES = ("cpu", "mem", "net")
CAP = 0.99  # utilisation is capped here in the volume


class Sandpiper:
    """Hotspot relief: k-of-n detection with a trend forecast, volume-to-size ordering."""

    name: ClassVar[str] = "sandpiper"
    summary: ClassVar[str] = (
        "hotspots: a node over the level in k of the last n steps (or by forecast) sheds its "
        "highest volume-to-size VEs to the least-volume nodes that stay cool"
    )

    def plan(self, problem: Problem) -> Plan:
        return settled_plan(self.name, problem, _relieve,
                            lambda new, old: _hot(new, problem) <= _hot(old, problem))


def _hot(st: State, problem: Problem) -> int:
    """How many nodes are hot in ``st``'s placement."""
    util = node_sums(profile_of(problem), st.placement, st.n) * inverse_capacity(problem)[:, None]
    level = (HOT_SHARE * np.asarray(problem.settings.max_utilisation)).astype(np.float32)
    return int(hot(util, level).sum())


def hot(util: np.ndarray, level: np.ndarray) -> np.ndarray:
    """[N] bool: k-of-n over ``level`` [R] in the last steps of ``util`` [N, T, R], or a
    linear-trend forecast of the next step over it."""
    n = min(N_STEPS, util.shape[1])
    last = util[:, -n:, :]
    over = (last > level).any(axis=2).sum(axis=1) >= min(K_OF, n)
    if n < 2:
        return over
    x = np.arange(n, dtype=np.float32) - (n - 1) / 2
    slope = np.einsum("t,ntr->nr", x, last) / float((x * x).sum())
    forecast = last.mean(axis=1) + slope * (n - (n - 1) / 2)
    return over | (forecast > level).any(axis=1)


def volume(u: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Sandpiper's volume 1/Π(1-u) over the ``use`` resources, u capped at 0.99."""
    return 1.0 / np.prod(1.0 - np.clip(u[..., use], 0.0, CAP), axis=-1)


def _relieve(st: State, problem: Problem) -> list[str]:
    prof = profile_of(problem)
    inv = inverse_capacity(problem)
    util = node_sums(prof, st.placement, st.n) * inv[:, None, :]
    level = (HOT_SHARE * np.asarray(problem.settings.max_utilisation)).astype(np.float32)
    use = np.array([r in VOLUME_RESOURCES for r in problem.resources])
    if not use.any():
        use[:] = True
    mem = problem.resources.index("mem") if "mem" in problem.resources else None
    is_hot = hot(util, level)
    start = int(is_hot.sum())
    count, stuck = 0, np.zeros(st.n, dtype=bool)
    while st.budget_left():
        todo = is_hot & ~stuck & st.src_ok
        if not todo.any():
            break
        vol = volume(st.u, use)
        s = int(np.argmax(np.where(todo, vol, -np.inf)))
        vs = np.array(st.node_ves[s], dtype=np.int64)
        moved = False
        if len(vs):
            size = st.dem[vs, mem] if mem is not None else np.ones(len(vs))
            vsr = volume(st.dem[vs] * st.inv_cap[s], use) / np.maximum(size, 1.0)
            for v in vs[np.argsort(-vsr, kind="stable")]:
                d = _target(st, prof, util, inv, level, int(v), use)
                if d is None:
                    continue
                st.apply(Pick(int(v), d, 0.0), f"{problem.nodes[s]} is hot (k-of-n or "
                                                f"forecast over {level.max():.2f}); ")
                util[s] -= prof[v] * inv[s]
                util[d] += prof[v] * inv[d]
                is_hot[[s, d]] = hot(util[[s, d]], level)
                count, moved = count + 1, True
                break
        if not moved:
            stuck[s] = True
    left = int(is_hot.sum())
    if not start:
        return []
    return [f"{start} hot node(s) at the start, {left} left after {count} move(s)"]


def _target(st: State, prof: np.ndarray, util: np.ndarray, inv: np.ndarray,
            level: np.ndarray, v: int, use: np.ndarray) -> int | None:
    """The least-volume node that can take ``v`` and stays cool with it."""
    ds = np.flatnonzero(st.open_targets())
    if not len(ds):
        return None
    g, _ = st.gains(np.array([v]), ds)
    ds = ds[g[0] > -np.inf]
    if not len(ds):
        return None
    after = st.u[ds] + st.dem[v] * st.inv_cap[ds]
    order = np.argsort(volume(after, use), kind="stable")
    for d in ds[order[:16]]:
        if not hot((util[d] + prof[v] * inv[d])[None], level)[0]:
            return int(d)
    return None
