"""The steps of a plan being built, with the load each one left on its target.

``balance`` never sends a VE back to a node it left; when going back would be its best move,
it takes the VE's last move out of the plan instead. That is safe only if every later step
still fits with the VE staying where it was, which this log can answer in numpy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Step(NamedTuple):
    ve: int
    src: int
    dst: int
    same_pair: bool


class StepLog:
    """Steps in plan order; per step the target, its load after the step, and — when the
    step moved load between pairs — the target's pair and that pair's load after it."""

    def __init__(self, n_resources: int) -> None:
        self.steps: list[Step] = []
        self.last: dict[int, int] = {}  # index of each VE's last step
        self.left: dict[int, list[int]] = {}  # nodes each VE has left, in order
        self._dst = np.zeros(0, dtype=np.int64)
        self._pair = np.zeros(0, dtype=np.int64)
        self._load = np.zeros((0, n_resources))
        self._pload = np.zeros((0, n_resources))

    def __len__(self) -> int:
        return len(self.steps)

    def record(self, step: Step, dst_load: np.ndarray, pair: int, pair_load: np.ndarray | None
               ) -> None:
        """Append a step; ``pair`` is the target's pair when the step changed it, else -1."""
        k = len(self.steps)
        if k == len(self._dst):
            grow = max(64, k)
            self._dst = np.concatenate([self._dst, np.full(grow, -1)])
            self._pair = np.concatenate([self._pair, np.full(grow, -1)])
            self._load = np.vstack([self._load, np.zeros((grow, self._load.shape[1]))])
            self._pload = np.vstack([self._pload, np.zeros((grow, self._load.shape[1]))])
        self._dst[k] = step.dst
        self._load[k] = dst_load
        self._pair[k] = pair
        if pair >= 0 and pair_load is not None:
            self._pload[k] = pair_load
        self.steps.append(step)
        self.last[step.ve] = k
        self.left.setdefault(step.ve, []).append(step.src)

    def last_step(self, ve: int) -> Step | None:
        i = self.last.get(ve)
        return None if i is None else self.steps[i]

    def fits_without_last(self, ve: int, dem: np.ndarray, limit: np.ndarray,
                          pair: int, pair_limit: np.ndarray | None) -> bool:
        """Would every step after ``ve``'s last one still fit with ``ve`` left on that step's
        source (node limit ``limit``; its pair ``pair`` with ``pair_limit`` when the last step
        left the pair)? Only resources the VE uses are checked, like the validator does."""
        i = self.last[ve]
        src = self.steps[i].src
        n = len(self.steps)
        uses = dem > 0
        on_src = self._load[i + 1 : n][self._dst[i + 1 : n] == src] + dem
        if (on_src[:, uses] > limit[uses] * (1 + 1e-9)).any():
            return False
        if pair_limit is None or pair < 0:
            return True
        in_pair = self._pload[i + 1 : n][self._pair[i + 1 : n] == pair] + dem
        return not bool((in_pair[:, uses] > pair_limit[uses] * (1 + 1e-9)).any())

    def drop_last(self, ve: int, dem: np.ndarray, src_pair: int, dst_pair: int) -> int:
        """Remove ``ve``'s last step (the VE is back on its source) and return its index.

        Later steps' recorded loads are corrected: the source keeps the VE's load, the
        target never had it; likewise their pairs when the step changed pairs.
        """
        i = self.last[ve]
        step = self.steps[i]
        n = len(self.steps)
        later = slice(i + 1, n)
        self._load[later][self._dst[later] == step.src] += dem
        self._load[later][self._dst[later] == step.dst] -= dem
        if not step.same_pair:
            for p, sign in ((src_pair, 1.0), (dst_pair, -1.0)):
                if p >= 0:
                    self._pload[later][self._pair[later] == p] += sign * dem
        for arr in (self._dst, self._pair, self._load, self._pload):
            arr[i : n - 1] = arr[i + 1 : n].copy()
        del self.steps[i]
        self.last = {v: (k - 1 if k > i else k) for v, k in self.last.items() if v != ve}
        earlier = [k for k in range(i - 1, -1, -1) if self.steps[k].ve == ve]
        if earlier:
            self.last[ve] = earlier[0]
        self.left[ve].pop()
        return i
