"""HA pairs and limits in numpy, shared by the algorithms and the validator.

A pair can fail over when its whole load fits on its weaker node:
``pair total ≤ failover_overcommit × min(capacity of its nodes)``, per resource. A switchover
inside the pair leaves the pair total unchanged; a move to another pair shifts it.
"""

from __future__ import annotations

import numpy as np

from algorithms.base import Problem


def n_pairs(pair: np.ndarray) -> int:
    """Number of pair indices in use (pair indices run 0..P-1; -1 is 'no pair')."""
    return int(pair.max()) + 1 if len(pair) and pair.max() >= 0 else 0


def pair_load(pair: np.ndarray, load: np.ndarray) -> np.ndarray:
    """Total load [P, R] of each pair from per-node load [N, R]."""
    out = np.zeros((n_pairs(pair), load.shape[1]))
    paired = pair >= 0
    np.add.at(out, pair[paired], load[paired])
    return out


def pair_limit(problem: Problem) -> np.ndarray:
    """Load [P, R] each pair may carry and still fail over (inf for an unused pair index)."""
    pair = problem.pair
    weakest = np.full((n_pairs(pair), problem.capacity.shape[1]), np.inf)
    paired = pair >= 0
    np.minimum.at(weakest, pair[paired], problem.capacity[paired])
    return weakest * problem.settings.failover_overcommit


def node_limit(problem: Problem) -> np.ndarray:
    """Load [N, R] each node may carry: max_utilisation × capacity."""
    return problem.capacity * problem.settings.max_utilisation


def partner(pair: np.ndarray) -> np.ndarray:
    """Index [N] of the other node of each node's pair, -1 when there is none."""
    out = np.full(len(pair), -1, dtype=np.int64)
    idx = np.flatnonzero(pair >= 0)
    if not len(idx):
        return out
    idx = idx[np.argsort(pair[idx], kind="stable")]
    counts = np.bincount(pair[idx])
    first = np.searchsorted(pair[idx], np.flatnonzero(counts == 2))
    a, b = idx[first], idx[first + 1]
    out[a], out[b] = b, a
    return out


def maintenance(problem: Problem) -> np.ndarray:
    """[N] bool: nodes to evacuate (all False when the problem has none)."""
    if problem.maintenance is None:
        return np.zeros(problem.n_nodes, dtype=bool)
    return np.asarray(problem.maintenance, dtype=bool)


def check_shapes(problem: Problem) -> None:
    """Raise ValueError naming the first array whose shape disagrees with V, N, R."""
    v, n, r = problem.n_ves, problem.n_nodes, len(problem.resources)
    s = problem.settings
    expected = {
        "demand": (problem.demand, (v, r)),
        "capacity": (problem.capacity, (n, r)),
        "placement": (problem.placement, (v,)),
        "pair": (problem.pair, (n,)),
        "movable": (problem.movable, (v,)),
        "allowed": (problem.allowed, (v, n)),
        "move_cost": (problem.move_cost, (v, 2)),
        "settings.max_utilisation": (s.max_utilisation, (r,)),
        "settings.failover_overcommit": (s.failover_overcommit, (r,)),
        "settings.weights": (s.weights, (r,)),
    }
    if problem.maintenance is not None:
        expected["maintenance"] = (problem.maintenance, (n,))
    for name, (arr, shape) in expected.items():
        if np.shape(arr) != shape:
            raise ValueError(f"problem.{name} has shape {np.shape(arr)}, expected {shape}")
    if v and (problem.placement.min() < 0 or problem.placement.max() >= n):
        raise ValueError("problem.placement holds a node index outside 0..N-1")
