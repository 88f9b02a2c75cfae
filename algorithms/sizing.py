"""Size nodes on the summed time profile of their VEs (statistical multiplexing).

The sum of per-VE high quantiles overstates what a node needs: the VEs' peaks seldom come
at the same time. On the PlanetLab day, groups of 20 VEs reach a p95 of their summed CPU of
0.70 times the sum of their per-VE p95 (bench/bench_simulate.py's trace; see
docs/simulator.md). ``Sizing`` keeps the summed profile [N, T, R] of every node and answers
how much room a node (and its pair, for a VE coming from another pair) has left at the
profile's ``Settings.quantile`` (0.9 by default; a pair at ``Settings.pair_quantile``, 0.99:
the survivor must carry the pair at nearly any time a node fails) once a VE joins it.

Cost: O(V·T·R) to sum the profiles, O(D·T·R) per VE and D candidate targets.
"""

from __future__ import annotations

import math

import numpy as np

from algorithms.base import Problem
from algorithms.common import node_sums
from algorithms.state import State


class Sizing:
    """Summed profiles of the nodes as a plan moves VEs; ``headroom`` is the share of a
    limit a target may fill."""

    def __init__(self, problem: Problem, headroom: float) -> None:
        if problem.profile is None:
            raise ValueError("sizing on profiles needs Problem.profile")
        self.prof = np.asarray(problem.profile, dtype=np.float32)
        steps = self.prof.shape[1]
        settings = problem.settings
        self.kth = min(steps - 1, math.ceil(settings.quantile * (steps - 1)))  # an upper one
        self.pair_kth = min(steps - 1, math.ceil(settings.pair_quantile * (steps - 1)))
        self.headroom = headroom
        self.node = np.zeros((problem.n_nodes, steps, self.prof.shape[2]), dtype=np.float32)

    @staticmethod
    def of(problem: Problem, headroom: float) -> Sizing | None:
        """A Sizing when the problem carries a profile with at least one step, else None."""
        prof = problem.profile
        if prof is None or np.ndim(prof) != 3 or np.shape(prof)[:1] != (problem.n_ves,) \
                or np.shape(prof)[1] == 0:
            return None
        return Sizing(problem, headroom)

    def refresh(self, st: State) -> None:
        """Sum the profiles again for the state's placement."""
        self.node = node_sums(self.prof, st.placement, st.n)

    def move(self, v: int, s: int, d: int) -> None:
        self.node[s] -= self.prof[v]
        self.node[d] += self.prof[v]

    def top(self, summed: np.ndarray, pair: bool = False) -> np.ndarray:
        """[D, R] the quantile (``pair_quantile`` for pairs) over the steps of [D, T, R]
        summed profiles."""
        k = self.pair_kth if pair else self.kth
        return np.partition(summed, k, axis=1)[:, k, :]

    def heaviest(self, st: State, n: int) -> list[int]:
        """The free VEs on node ``n`` the plan has not moved, those that weigh most at the
        node's busiest steps (above the quantile, on its fullest resource) first."""
        vs = np.array([v for v in st.node_ves[n] if not st.moved[v]], dtype=np.int64)
        if not len(vs):
            return []
        summed = self.node[n]
        r = int(np.argmax(self.top(summed[None])[0] * st.inv_cap[n]))
        busy = summed[:, r] >= np.partition(summed[:, r], self.kth)[self.kth]
        weight = self.prof[vs][:, busy, r].mean(axis=1)
        return [int(v) for v in vs[np.argsort(-weight, kind="stable")]]

    def room(self, st: State, v: int, ds: np.ndarray) -> np.ndarray:
        """[D] the least room left, as a share of capacity over the resources, on each target
        once ``v`` joins it, under ``headroom`` × its node limit and, for a VE from another
        pair, × its pair's limit; negative: it does not fit."""
        top = self.top(self.node[ds] + self.prof[v])
        room = ((self.headroom * st.limit[ds] - top) * st.inv_cap[ds]).min(axis=1)
        pd = st.pair[ds]
        other = np.flatnonzero((pd >= 0) & (pd != st.pair[st.placement[v]]))
        if len(other):
            mates = st.partner[ds[other]]
            summed = self.node[ds[other]] + self.node[mates] + self.prof[v]
            over = self.top(summed, pair=True) - self.headroom * st.plim[pd[other]]
            worst = (over * st.inv_cap[ds[other]]).max(axis=1)
            room[other] = np.minimum(room[other], -worst)
        return room
