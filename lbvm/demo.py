"""A simulated cluster for `lbm demo`: real /proc files, real agent, real store, real plan.

Nothing here is faked past the /proc files: each node's tree is written in the OpenVZ
kernel's formats, `lblog` collects it into the spool, the monitor ingests, plans, validates
and executes on the `simulate` backend, exactly as it would on a cluster.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lbvm.errors import LbvmError
from lbvm.fakeproc import HZ, FakeVe, write_node

GIB = 1 << 30
MARKER = ".lbvm-demo"
INTERVAL = 300.0  # seconds between collection rounds, as the cron job runs


@dataclass(frozen=True)
class DemoNode:
    name: str
    pair: str
    cpus: int
    mem_bytes: int


@dataclass(frozen=True)
class DemoVe:
    ve: str
    node: str
    cpu: float  # mean cores used
    mem_bytes: int
    mem_limit_bytes: int


@dataclass(frozen=True)
class DemoCluster:
    nodes: tuple[DemoNode, ...]
    ves: tuple[DemoVe, ...]


def generate(pairs: int = 4, ves: int = 80, seed: int = 2008) -> DemoCluster:
    """An unevenly loaded cluster: the first node of the first pairs is crowded.

    Node sizes alternate between 16 cores / 64 GiB and 24 cores / 96 GiB per pair. VEs are
    placed with a skew so the crowded nodes start near their limits and their pairs cannot
    fail over, while the rest idle: the situation LBVM exists to repair.
    """
    if pairs < 2 or ves < 2 * pairs:
        raise LbvmError("the demo needs at least 2 pairs and 2 VEs per pair")
    rng = np.random.default_rng(seed)
    nodes = []
    for p in range(pairs):
        cpus, size = (16, 64 * GIB) if p % 2 == 0 else (24, 96 * GIB)
        for side in "ab":
            nodes.append(DemoNode(f"vz{p + 1}{side}", f"pair{p + 1}", cpus, size))
    n = len(nodes)
    # Skewed home nodes: half of the VEs crowd onto the 'a' node of the first two pairs.
    weights = np.ones(n)
    weights[0] = weights[2] = n * 0.9
    weights /= weights.sum()
    homes = rng.choice(n, size=ves, p=weights)
    mem = rng.choice([1, 2, 2, 4, 4, 6, 8], size=ves).astype(float) * GIB
    cpu = np.round(rng.gamma(2.0, 0.3, size=ves), 2) + 0.05
    # Keep every node physically able to hold what it has (the demo starts imbalanced,
    # not impossible): cap each node's memory at 97 % by moving the overflow to the
    # emptiest node.
    cap = np.array([nd.mem_bytes for nd in nodes], dtype=float)
    for i in np.argsort(-mem, kind="stable"):
        load = np.bincount(homes, weights=mem, minlength=n)
        if load[homes[i]] > 0.97 * cap[homes[i]]:
            homes[i] = int(np.argmin(load / cap))
    out = tuple(
        DemoVe(
            ve=str(101 + i),
            node=nodes[homes[i]].name,
            cpu=float(cpu[i]),
            mem_bytes=int(mem[i]),
            mem_limit_bytes=int(mem[i] * 1.5),
        )
        for i in range(ves)
    )
    return DemoCluster(tuple(nodes), out)


def prepare_dir(path: Path) -> Path:
    """Create the demo folder, replacing an earlier demo's but never anything else."""
    path = Path(path)
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            raise LbvmError(f"{path} exists and was not made by `lbm demo`; choose --dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("made by lbm demo; safe to delete\n")
    return path


def write_config(path: Path, cluster: DemoCluster) -> Path:
    pairs: dict[str, list[str]] = {}
    for nd in cluster.nodes:
        pairs.setdefault(nd.pair, []).append(nd.name)
    lines = [
        "# Written by `lbm demo`: a simulated cluster, balanced on the simulate backend.",
        'database = "sqlite:///lbvm.db"',
        'spool = "spool"',
        "",
    ]
    for name, members in pairs.items():
        lines += ["[[pairs]]", f'name = "{name}"', f'nodes = ["{members[0]}", "{members[1]}"]', ""]
    lines += [
        "[balance]",
        'window = "1h"',
        'stale_after = "7d"   # the demo store stays usable for a week',
        "max_moves = 40",
        "",
        "[executor]",
        'backend = "simulate"',
        "",
    ]
    cfg = path / "lbvm.toml"
    cfg.write_text("\n".join(lines))
    return cfg


class Workload:
    """The cluster's VEs at work: writes every node's /proc for one collection round.

    CPU counters accumulate from each VE's mean use with noise, so the rates the monitor
    derives are what the generator meant; memory wanders a few per cent round to round.
    A VE moved by LBVM shows up on its new node in the next round, as on a real cluster.
    """

    def __init__(self, cluster: DemoCluster, root: Path, *, seed: int = 7) -> None:
        self.cluster, self.root = cluster, root
        self.rng = np.random.default_rng(seed)
        v = len(cluster.ves)
        self.jiffies = self.rng.integers(10_000, 10_000_000, size=v).astype(np.int64)
        self.uptime = self.rng.uniform(86_400, 90 * 86_400, size=v)
        self.cpu = np.array([ve.cpu for ve in cluster.ves])
        self.mem = np.array([ve.mem_bytes for ve in cluster.ves], dtype=float)
        self.node_of = np.array([ve.node for ve in cluster.ves])
        self.busy = {nd.name: 10_000_000 for nd in cluster.nodes}
        self.rounds = 0

    def place(self, placement: Mapping[str, str]) -> None:
        """Where each VE runs from now on (VE id -> node)."""
        ids = [ve.ve for ve in self.cluster.ves]
        self.node_of = np.array([placement.get(ve, n) for ve, n in zip(ids, self.node_of,
                                                                        strict=True)])

    def step(self) -> Iterator[tuple[DemoNode, Path]]:
        """Advance five minutes and write each node's /proc; yield (node, proc root)."""
        hz, user_hz = HZ, 100  # vestat counts kernel jiffies, /proc/stat USER_HZ
        v = len(self.cluster.ves)
        if self.rounds:
            used = self.cpu * self.rng.uniform(0.7, 1.3, size=v)
            self.jiffies += (used * hz * INTERVAL).astype(np.int64)
            self.uptime += INTERVAL
        self.rounds += 1
        now_mem = self.mem * self.rng.uniform(0.9, 1.0, size=v)
        for nd in self.cluster.nodes:
            idx = np.flatnonzero(self.node_of == nd.name)
            ves = [
                FakeVe(
                    ve=self.cluster.ves[i].ve,
                    cpu_jiffies=int(self.jiffies[i]),
                    uptime_s=float(self.uptime[i]),
                    mem_bytes=int(now_mem[i]) // 4096 * 4096,
                    mem_limit_bytes=self.cluster.ves[i].mem_limit_bytes,
                )
                for i in idx
            ]
            node_cpu = float(self.cpu[idx].sum())
            self.busy[nd.name] += int(node_cpu * user_hz * INTERVAL)
            idle = int(max(nd.cpus - node_cpu, 0.0) * user_hz * INTERVAL * self.rounds)
            proc = self.root / "nodes" / nd.name
            write_node(
                proc,
                ves=ves,
                cpus=nd.cpus,
                mem_bytes=nd.mem_bytes,
                busy_jiffies=self.busy[nd.name],
                idle_jiffies=10_000_000 + idle,
                load=(node_cpu, node_cpu * 0.95, node_cpu * 0.9),
                # minor 0: this node's VE area, minor 1: its partner's, mirrored by DRBD
                drbd=[("Primary", "Secondary"), ("Secondary", "Primary")],
            )
            yield nd, proc


