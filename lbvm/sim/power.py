"""Node power from SPECpower-style tables, and energy over a replay.

A table gives the watts at evenly spaced CPU utilisations from 0 % to 100 % (11 points in
SPECpower, 2 for a plain idle-to-max line); between points power is linear, as in CloudSim's
``PowerModelSpecPower``. Utilisation above 100 % draws the 100 % figure. A node switched off
(see docs/simulator.md: no VE on it for a whole interval) draws 0 W.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from lbvm.errors import ConfigError

JOULES_PER_KWH = 3.6e6

# HP ProLiant ML110 G4 (Xeon 3040) and G5 (Xeon 3075), SPECpower, W at 0, 10, ..., 100 %.
ML110_G4 = (86.0, 89.4, 92.6, 96.0, 99.5, 102.0, 106.0, 108.0, 112.0, 114.0, 117.0)
ML110_G5 = (93.7, 97.0, 101.0, 105.0, 110.0, 116.0, 121.0, 125.0, 129.0, 133.0, 135.0)


def check_table(table: tuple[float, ...], where: str) -> tuple[float, ...]:
    """Return the table if it has at least two non-negative, non-decreasing points."""
    values = tuple(float(w) for w in table)
    if len(values) < 2:
        raise ConfigError(f"{where}: a power table needs at least 2 points (0 % and 100 %)")
    if min(values) < 0 or any(b < a for a, b in pairwise(values)):
        raise ConfigError(f"{where}: power must be non-negative and not fall with load")
    return values


def power(table: np.ndarray, util: np.ndarray) -> np.ndarray:
    """Watts [..., N] for CPU utilisation [..., N] with per-node tables [N, K]."""
    k = table.shape[1] - 1
    x = np.clip(util, 0.0, 1.0) * k
    i = np.minimum(np.floor(x).astype(np.int64), k - 1)
    frac = x - i
    nodes = np.arange(table.shape[0])
    low = table[nodes, i]
    high = table[nodes, i + 1]
    return low + frac * (high - low)


def energy_kwh(watts: np.ndarray, interval: float) -> float:
    """Energy of a [T, N] power series held for ``interval`` seconds per step."""
    return float(np.sum(watts) * interval / JOULES_PER_KWH)
