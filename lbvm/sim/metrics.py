"""The figures a replay is judged by, from its per-interval arrays (pure numpy).

- ``slatah``: share of active node-intervals with some resource above 100 % of capacity
  (SLA Time per Active Host, Beloglazov & Buyya 2012: the time a host cannot give its VMs
  what they ask for, over the time hosts are on).
- ``over_threshold``: the same above ``balance.max_utilisation``.
- ``pdm``: core-seconds lost to migrations (``pdm_share`` of a moving VE's CPU while it
  moves) over the core-seconds asked for (Performance Degradation due to Migration).
- ``sla``: slatah × pdm, CloudSim's combined SLA violation figure.
- ``std_cpu``/``std_mem``: standard deviation of utilisation across all nodes (off nodes
  count 0), averaged over the intervals.
- ``failover_violations``: pair-intervals where the pair's load did not fit on its weaker
  node within ``failover_overcommit``; ``failover_share`` over all pair-intervals.
- ``energy_kwh`` from the power model; ``migrations``, ``switchovers``, ``bytes_moved``.
- ``energy_standby_kwh``: the same with the standby node of every pair in use switched on
  (an HA pair's standby must run to mirror its partner and take over), whatever
  ``switch_off`` says; equal to ``energy_kwh`` under ``switch_off = "pair"``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from lbvm.sim.power import energy_kwh, power
from lbvm.sim.replay import ReplayResult

# The keys of Metrics.as_dict(), in order: --format json and the docs rely on them.
KEYS = (
    "algorithm", "steps", "nodes", "ves", "plans", "refused", "busy_skips", "migrations",
    "switchovers", "bytes_moved", "energy_kwh", "energy_standby_kwh", "slatah",
    "over_threshold", "pdm", "sla", "failover_violations", "failover_share", "std_cpu",
    "std_mem", "active_nodes",
)  # fmt: skip


@dataclass(frozen=True)
class Metrics:
    algorithm: str
    steps: int
    nodes: int
    ves: int
    plans: int
    refused: int
    busy_skips: int
    migrations: int
    switchovers: int
    bytes_moved: int
    energy_kwh: float
    energy_standby_kwh: float
    slatah: float
    over_threshold: float
    pdm: float
    sla: float
    failover_violations: int
    failover_share: float
    std_cpu: float
    std_mem: float
    active_nodes: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def share_over(util: np.ndarray, limit: np.ndarray | float, active: np.ndarray) -> float:
    """Share of active node-intervals [T, N] where util [T, N, R] exceeds ``limit`` [R]."""
    over = (util > np.asarray(limit) * (1 + 1e-9)).any(axis=2) & active
    on = int(active.sum())
    return float(over.sum() / on) if on else 0.0


def pdm(degraded: np.ndarray, requested: np.ndarray) -> float:
    asked = float(np.sum(requested))
    return float(np.sum(degraded) / asked) if asked > 0 else 0.0


def spread(util: np.ndarray) -> np.ndarray:
    """Standard deviation across nodes [T, R] of utilisation [T, N, R]."""
    return util.std(axis=1)


def standby_on(active: np.ndarray, pairs: tuple[str | None, ...]) -> np.ndarray:
    """[T, N] nodes on when both nodes of every pair with an active node are on (a node in
    no pair, None, is on when it is active)."""
    pair_idx = pd.factorize(pd.Series(pairs, dtype=object))[0]
    paired = pair_idx >= 0
    member = np.zeros((len(pairs), int(pair_idx.max(initial=-1)) + 1))
    member[np.flatnonzero(paired), pair_idx[paired]] = 1.0
    used = (active.astype(np.float64) @ member) > 0
    used = np.concatenate([used, np.zeros((len(active), 1), dtype=bool)], axis=1)
    return used[:, pair_idx] | active  # -1 (in no pair) reads the last column: False


def summarise(r: ReplayResult) -> Metrics:
    limit = np.array([r.scenario.balance.max_utilisation[k] for k in ("cpu", "mem")])
    slatah = share_over(r.util, 1.0, r.active)
    degradation = pdm(r.degraded, r.requested)
    std = spread(r.util).mean(axis=0) if len(r.util) else np.zeros(2)
    short = int(r.pair_short.sum())
    return Metrics(
        algorithm=r.algorithm,
        steps=int(r.util.shape[0]),
        nodes=r.cluster.n_nodes,
        ves=r.trace.n_ves,
        plans=r.plans,
        refused=r.refused,
        busy_skips=r.busy_skips,
        migrations=int(r.moves.sum()),
        switchovers=int(r.switchovers.sum()),
        bytes_moved=int(r.bytes.sum()),
        energy_kwh=energy_kwh(r.watts, r.trace.interval),
        energy_standby_kwh=energy_kwh(
            np.where(standby_on(r.active, r.cluster.pairs),
                     power(r.cluster.power, r.util[:, :, 0]), 0.0), r.trace.interval),
        slatah=slatah,
        over_threshold=share_over(r.util, limit, r.active),
        pdm=degradation,
        sla=slatah * degradation,
        failover_violations=short,
        failover_share=float(short / r.pair_short.size) if r.pair_short.size else 0.0,
        std_cpu=float(std[0]),
        std_mem=float(std[1]),
        active_nodes=float(r.active.sum(axis=1).mean()) if len(r.active) else 0.0,
    )
