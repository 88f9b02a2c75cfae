"""Where the VEs start: the trace's own placement, a plain spread, or CloudSim's PABFD.

``pabfd`` (power-aware best fit decreasing, Beloglazov & Buyya 2012): VEs sorted by
provisioned CPU, largest first (ties in trace order), each to the node whose power rises
least when it takes the VE at its full provisioned size, among nodes where the provisioned
CPU and memory still fit. As in CloudSim, an empty node counts at its idle power, CPU is one
pool per node (per-core limits are not modelled), and HA pairs play no part: the algorithms
repair pairs that could not fail over.
"""

from __future__ import annotations

import numpy as np

from lbvm.errors import ConfigError
from lbvm.sim.power import power
from lbvm.sim.scenario import Cluster
from lbvm.sim.traces import Trace


def initial(trace: Trace, cluster: Cluster, how: str) -> np.ndarray:
    """Node index [V] of every VE at the start of the replay."""
    if how == "trace":
        return from_trace(trace, cluster)
    if how == "spread":
        return np.arange(trace.n_ves, dtype=np.int64) % cluster.n_nodes
    return pabfd(trace.cpu_size, trace.mem_size, cluster, trace.ves)


def from_trace(trace: Trace, cluster: Cluster) -> np.ndarray:
    if trace.nodes is None:
        raise ConfigError("placement 'trace' needs a trace that records nodes (format lbvm)")
    index = {n: i for i, n in enumerate(cluster.nodes)}
    missing = sorted({n for n in trace.nodes if n not in index})
    if missing:
        raise ConfigError(f"the trace places VEs on node(s) outside the cluster: "
                          f"{', '.join(missing[:5])}")
    return np.array([index[n] for n in trace.nodes], dtype=np.int64)


def pabfd(
    cpu: np.ndarray, mem: np.ndarray, cluster: Cluster, names: tuple[str, ...]
) -> np.ndarray:
    """PABFD over all nodes at once per VE (one numpy pass over N per VE, at setup only)."""
    order = np.argsort(-cpu, kind="stable")
    cpu_used = np.zeros(cluster.n_nodes)
    mem_used = np.zeros(cluster.n_nodes)
    now = power(cluster.power, cpu_used / cluster.cpus)
    out = np.empty(len(cpu), dtype=np.int64)
    for v in order:
        fits = (cpu_used + cpu[v] <= cluster.cpus + 1e-9) & (
            mem_used + mem[v] <= cluster.mem_bytes)
        if not fits.any():
            raise ConfigError(f"VE {names[v]} ({cpu[v]:.2f} cores, {mem[v] / 2**20:.0f} MiB) "
                              "fits on no node: the cluster is too small for the trace")
        after = power(cluster.power, (cpu_used + cpu[v]) / cluster.cpus)
        rise = np.where(fits, after - now, np.inf)
        n = int(np.argmin(rise))
        out[v] = n
        cpu_used[n] += cpu[v]
        mem_used[n] += mem[v]
        now[n] = after[n]
    return out
