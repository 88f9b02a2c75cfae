"""Where each VE is during an interval, migrations included, and the load that makes.

A migration of VE v from ``src`` to ``dst`` over [a, b) keeps v on ``src`` until b and puts
it on ``dst`` from a: while it copies, its load counts on both nodes (as CloudSim reserves
the VM on the target). A VE's share of an interval on a node is the share of the interval's
time it is there, so a node's load is the time-weighted mean over the interval. Moves of one
plan run one after the other (the executor is sequential), so a VE moved twice has two
segments in a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segments:
    """Migrations in flight or scheduled: VE, source, target node, start and end (seconds)."""

    ve: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @staticmethod
    def empty() -> Segments:
        i, f = np.zeros(0, dtype=np.int64), np.zeros(0)
        return Segments(i, i, i, f, f)

    def __len__(self) -> int:
        return len(self.ve)

    def final(self, where: np.ndarray) -> np.ndarray:
        """Placement once every segment has finished."""
        out = where.copy()
        order = np.argsort(self.start, kind="stable")
        out[self.ve[order]] = self.dst[order]  # later segments of one VE win
        return out


def overlap(start: np.ndarray, end: np.ndarray, k0: float, k1: float) -> np.ndarray:
    """Seconds of [start, end) inside [k0, k1)."""
    return np.clip(np.minimum(end, k1) - np.maximum(start, k0), 0.0, k1 - k0)


def presence(
    where: np.ndarray, seg: Segments, k0: float, k1: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows (ve, node, share of [k0, k1)) saying where every VE spends the interval.

    ``where`` is the placement before the segments; every VE has one row per node it
    touches. Shares of one VE add up to 1 plus the time it spends on two nodes at once.
    """
    n_ves = len(where)
    if not len(seg):
        return np.arange(n_ves), where, np.ones(n_ves)
    order = np.lexsort((seg.start, seg.ve))
    v, dst, a, b = seg.ve[order], seg.dst[order], seg.start[order], seg.end[order]
    first_end = np.full(n_ves, np.inf)
    first_end[v[::-1]] = b[::-1]  # the first segment of each VE wins
    next_end = np.full(len(v), np.inf)
    same = v[1:] == v[:-1]
    next_end[:-1][same] = b[1:][same]
    ves = np.concatenate([np.arange(n_ves), v])
    nodes = np.concatenate([where, dst])
    starts = np.concatenate([np.full(n_ves, -np.inf), a])
    ends = np.concatenate([first_end, next_end])
    share = overlap(starts, ends, k0, k1) / (k1 - k0)
    keep = share > 0
    return ves[keep], nodes[keep], share[keep]


def load(
    rows: tuple[np.ndarray, np.ndarray, np.ndarray], demand: np.ndarray, n_nodes: int
) -> np.ndarray:
    """Time-weighted load [N] of a per-VE demand [V] (NaN: not running, counts 0)."""
    ves, nodes, share = rows
    d = np.nan_to_num(demand[ves], nan=0.0)
    return np.bincount(nodes, weights=d * share, minlength=n_nodes)


def occupied(rows: tuple[np.ndarray, np.ndarray, np.ndarray], running: np.ndarray,
             n_nodes: int) -> np.ndarray:
    """[N] bool: a running VE spends part of the interval on the node."""
    ves, nodes, _ = rows
    return np.bincount(nodes, weights=running[ves].astype(np.float64), minlength=n_nodes) > 0


def degraded(seg: Segments, cpu: np.ndarray, share: float, k0: float, k1: float) -> float:
    """Core-seconds lost to migration in [k0, k1): ``share`` of each moving VE's CPU."""
    if not len(seg):
        return 0.0
    secs = overlap(seg.start, seg.end, k0, k1)
    return float(np.sum(share * np.nan_to_num(cpu[seg.ve], nan=0.0) * secs))
