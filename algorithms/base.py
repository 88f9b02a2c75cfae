"""The one contract every placement algorithm implements: a Problem in, a Plan out.

Shapes: V VEs, N nodes, R resources, T time steps. Arrays are numpy; the dataclasses are
frozen so an algorithm cannot change the problem it was given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

MoveKind = Literal["switchover", "migrate"]


@dataclass(frozen=True)
class Settings:
    """Limits and knobs shared by every algorithm and the validator.

    max_utilisation[R]: a node's load may not exceed this share of its capacity.
    failover_overcommit[R]: the survivor of a pair may carry the pair's whole load up to
      this multiple of its own capacity (1.0 = no overcommit).
    weights[R]: how much each resource's imbalance counts in the score.
    max_moves / max_bytes: migration budget per plan (None = unlimited).
    max_moves_per_node: moves touching one node (as source or target) per plan.
    min_gain: a move is worth making when its score drop times the number of nodes is at
      least this (a move's gain shrinks like 1/N, so the rule means the same at any size);
      algorithms may ask more of a costlier migration to another pair.
    quantile / pair_quantile: with a time profile, ``consolidate`` sizes a target on this
      quantile of its VEs' summed profile over the steps, and a pair's failover limit on
      ``pair_quantile`` (the survivor must carry the pair at nearly any time).
    headroom: ``consolidate`` fills a target up to this share of its node and pair limits.
    inflow: moves ``consolidate`` sends into one node per plan (they run one at a time).
    """

    max_utilisation: np.ndarray
    failover_overcommit: np.ndarray
    weights: np.ndarray
    max_moves: int | None = 20
    max_bytes: int | None = None
    max_moves_per_node: int | None = None
    min_gain: float = 0.02
    quantile: float = 0.9
    pair_quantile: float = 0.99
    headroom: float = 0.9
    inflow: int = 12


@dataclass(frozen=True)
class Problem:
    """A snapshot of the cluster, ready for numpy.

    demand[V, R]      a statistic of each VE's recent use (p95 by default), in resource units
    capacity[N, R]    each node's capacity, same units
    placement[V]      index of the node each VE is on
    pair[N]           index of each node's HA pair (-1: not in a pair)
    movable[V]        False for pinned VEs
    allowed[V, N]     where each VE may go (host rules, maintenance)
    move_cost[V, 2]   bytes to copy: [:, 0] switchover inside the pair, [:, 1] migrate to
                      another pair
    profile[V, T, R]  optional time profile of demand (for time-aware algorithms)
    maintenance[N]    nodes to evacuate; never targets
    preferred[V, N]   should-rules: where each VE would rather be (a soft preference; the
                      must-rules are ``allowed``)
    affinity[V]       group id (-1: none); VEs of one group must share a node
    anti_affinity[V]  group id (-1: none); VEs of one group must be on different pairs, so
                      one failing pair never takes down the whole group
    failcnt[V]        growth of the beancounter failure counters over the window
    degraded[N]       the node's HA pair cannot fail over now (a node offline, unclean or in
                      standby, replication not Connected, split brain): it takes no new VEs
    replicated[V]     the VE's replicated storage (DRBD) is Connected and UpToDate on both
                      sides with no resync, so a switchover to its partner is safe
    """

    ves: tuple[str, ...]
    nodes: tuple[str, ...]
    resources: tuple[str, ...]
    demand: np.ndarray
    capacity: np.ndarray
    placement: np.ndarray
    pair: np.ndarray
    movable: np.ndarray
    allowed: np.ndarray
    move_cost: np.ndarray
    settings: Settings
    profile: np.ndarray | None = None
    maintenance: np.ndarray | None = None
    preferred: np.ndarray | None = None
    affinity: np.ndarray | None = None
    anti_affinity: np.ndarray | None = None
    failcnt: np.ndarray | None = None
    degraded: np.ndarray | None = None
    replicated: np.ndarray | None = None

    @property
    def n_ves(self) -> int:
        return len(self.ves)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def placement_after(self, moves: Iterable[Move]) -> np.ndarray:
        """The placement [V] once ``moves`` are made, in order."""
        where = self.placement.copy()
        index = {v: i for i, v in enumerate(self.ves)}
        nodes = {n: i for i, n in enumerate(self.nodes)}
        for m in moves:
            where[index[m.ve]] = nodes[m.dst]
        return where

    def load(self, placement: np.ndarray | None = None) -> np.ndarray:
        """Per-node load [N, R] for a placement (default: the current one)."""
        where = self.placement if placement is None else placement
        out = np.zeros((self.n_nodes, len(self.resources)))
        np.add.at(out, where, self.demand)
        return out

    def utilisation(self, placement: np.ndarray | None = None) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.load(placement) / self.capacity
        return np.nan_to_num(u, nan=0.0, posinf=0.0)

    def score(self, placement: np.ndarray | None = None) -> float:
        """Weighted standard deviation of node utilisation: lower is more even."""
        u = self.utilisation(placement)
        return float(np.sum(self.settings.weights * u.std(axis=0)))


@dataclass(frozen=True)
class Move:
    ve: str
    src: str
    dst: str
    kind: MoveKind
    reason: str = ""
    bytes: int = 0


@dataclass(frozen=True)
class Plan:
    algorithm: str
    moves: tuple[Move, ...]
    score_before: float
    score_after: float
    notes: tuple[str, ...] = field(default_factory=tuple)


@runtime_checkable
class Algorithm(Protocol):
    """What the ``lbvm.algorithms`` entry point must name: a class with these members."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def plan(self, problem: Problem) -> Plan: ...
