"""The simulated cluster: host types, HA pairs, VM types, migration bandwidth, settings.

A scenario is a TOML file (docs/simulator.md lists every key) or built in code:
``cloudsim(pairs)`` is the setup of Beloglazov & Buyya 2012 (HP ML110 G4 and G5 hosts,
CloudSim's VM types, half of 1 Gbit/s per migration) with hosts grouped two by two into HA
pairs. Node i is host type i mod len(host_types), and nodes 2p and 2p+1 form pair p, so with
the two CloudSim types every pair has one G4 and one G5. With ``ha = false`` the nodes are
in no pair (as CloudSim's hosts): no failover headroom, no standby.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lbvm.config import BalanceConfig, ExecutorConfig, PairConfig, parse_duration, section
from lbvm.errors import ConfigError
from lbvm.sim.power import ML110_G4, ML110_G5, check_table
from lbvm.sim.traces import CLOUDSIM_VM_TYPES, MIB, MIPS_PER_CORE, VmType

SWITCH_OFF = ("node", "pair", "never")
PLACEMENTS = ("pabfd", "trace", "spread")
MEMORY = ("counted", "cloudsim-null")
HOSTS_PER_VM = 800 / 1052  # CloudSim's PlanetLab runner: 800 hosts for 1,052 VMs


@dataclass(frozen=True)
class HostType:
    """A node model: cores of ``mips`` each, memory, and watts at 0..100 % CPU."""

    name: str
    cores: int
    mips: float
    mem_bytes: int
    power: tuple[float, ...]


G4 = HostType("ml110-g4", 2, 1860.0, 4096 * MIB, ML110_G4)
G5 = HostType("ml110-g5", 2, 2660.0, 4096 * MIB, ML110_G5)


@dataclass(frozen=True)
class Cluster:
    """The nodes of a replay, in Problem order. cpus in reference cores (1,000 MIPS)."""

    nodes: tuple[str, ...]
    pairs: tuple[str | None, ...]  # None: the node is in no pair
    cpus: np.ndarray
    mem_bytes: np.ndarray
    core_mips: np.ndarray
    power: np.ndarray  # [N, K] watts at K evenly spaced utilisations

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def pair_configs(self) -> tuple[PairConfig, ...]:
        members: dict[str, list[str]] = {}
        for node, pair in zip(self.nodes, self.pairs, strict=True):
            if pair is not None:
                members.setdefault(pair, []).append(node)
        return tuple(PairConfig(p, (m[0], m[1])) for p, m in members.items())


@dataclass(frozen=True)
class SimScenario:
    """Everything a replay needs besides the trace and the algorithm."""

    name: str = "default"
    host_types: tuple[HostType, ...] = (G4, G5)
    pairs: int | None = None  # None: CloudSim's ratio of hosts per VM, rounded up to pairs
    ha: bool = True  # False: the 2 x pairs nodes are in no pair (CloudSim has no HA)
    vm_types: tuple[VmType, ...] = CLOUDSIM_VM_TYPES
    bandwidth: float = 62.5 * MIB  # bytes/s one migration gets (CloudSim: half of 1 Gbit/s)
    switch_off: str = "node"
    placement: str = "pabfd"
    pdm_share: float = 0.1  # share of a VE's CPU lost while it migrates (CloudSim: 10 %)
    # seconds of history each Problem carries as its profile (0: none), for time-aware
    # algorithms (peak; consolidate sizes a node on its VEs' summed profile)
    profile_window: float = 0.0
    # "cloudsim-null": memory counts for the initial placement only, then every VE asks for
    # 0 bytes (CloudSim's PlanetLab cloudlets); moves still copy the VE's full memory
    memory: str = "counted"
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # concurrency, cooldowns
    nightly_at: str = "02:30"
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.switch_off not in SWITCH_OFF:
            raise ConfigError(f"switch_off {self.switch_off!r}: use {', '.join(SWITCH_OFF)}")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement {self.placement!r}: use {', '.join(PLACEMENTS)}")
        if self.memory not in MEMORY:
            raise ConfigError(f"memory {self.memory!r}: use {', '.join(MEMORY)}")
        if not self.bandwidth > 0:
            raise ConfigError("migration bandwidth must be positive")
        if not 0 <= self.pdm_share <= 1:
            raise ConfigError("pdm_share must be between 0 and 1")
        if self.pairs is not None and self.pairs < 1:
            raise ConfigError("pairs must be at least 1")
        if not 0 <= self.profile_window <= 7 * 86400:
            raise ConfigError("profile_window must be between 0 and 7 days")
        if not self.host_types:
            raise ConfigError("a scenario needs at least one host type")
        hh, _, mm = self.nightly_at.partition(":")
        if not (hh.isdigit() and mm.isdigit() and int(hh) < 24 and int(mm) < 60):
            raise ConfigError(f"nightly_at {self.nightly_at!r} is not HH:MM")

    def n_pairs(self, n_ves: int) -> int:
        return self.pairs or max(1, math.ceil(n_ves * HOSTS_PER_VM / 2))

    def cluster(self, n_ves: int) -> Cluster:
        """``n_pairs`` pairs of nodes named n001a/n001b, ... with alternating host types (with
        ``ha = false`` the same nodes, in no pair)."""
        n = 2 * self.n_pairs(n_ves)
        kinds = [self.host_types[i % len(self.host_types)] for i in range(n)]
        width = max(3, len(str(n // 2)))
        names = tuple(f"n{i // 2 + 1:0{width}d}{'ab'[i % 2]}" for i in range(n))
        k = max(len(h.power) for h in self.host_types)
        table = np.array([np.interp(np.linspace(0, 1, k), np.linspace(0, 1, len(h.power)),
                                    h.power) for h in kinds])
        return Cluster(
            nodes=names,
            pairs=tuple(f"pair{i // 2 + 1:0{width}d}" if self.ha else None for i in range(n)),
            cpus=np.array([h.cores * h.mips / MIPS_PER_CORE for h in kinds]),
            mem_bytes=np.array([float(h.mem_bytes) for h in kinds]),
            core_mips=np.array([h.mips for h in kinds]),
            power=table,
        )


def cloudsim(pairs: int = 400) -> SimScenario:
    """Beloglazov & Buyya 2012 on PlanetLab: 800 hosts as 400 HA pairs (see module doc)."""
    return SimScenario(name=f"cloudsim-{2 * pairs}", pairs=pairs)


# -- TOML ----------------------------------------------------------------------------------

_TOP = {"name", "pairs", "ha", "bandwidth_mib_s", "switch_off", "placement", "pdm_share",
        "nightly_at", "memory", "profile_window", "host_types", "vm_types", "balance",
        "executor"}


def _host_type(raw: Any, where: str) -> HostType:
    keys = {"name", "cores", "mips", "mem_mib", "power"}
    if not isinstance(raw, dict) or set(raw) != keys:
        raise ConfigError(f"{where}: a host type needs exactly {', '.join(sorted(keys))}")
    return HostType(str(raw["name"]), int(raw["cores"]), float(raw["mips"]),
                    int(float(raw["mem_mib"]) * MIB),
                    check_table(tuple(raw["power"]), f"{where}: host type {raw['name']}"))


def _vm_type(raw: Any, where: str) -> VmType:
    if not isinstance(raw, dict) or not {"mips", "mem_mib"} <= set(raw) or set(raw) - {
            "mips", "mem_mib", "disk_mib"}:
        raise ConfigError(f"{where}: a VM type needs mips and mem_mib (and may have disk_mib)")
    return VmType(float(raw["mips"]), int(float(raw["mem_mib"]) * MIB),
                  int(float(raw.get("disk_mib", 0)) * MIB))


def load(path: str | Path) -> SimScenario:
    """Read a scenario TOML file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such scenario file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    where = str(path)
    unknown = set(raw) - _TOP
    if unknown:
        raise ConfigError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {"name": str(raw.get("name", path.stem)), "path": path}
    try:
        if "pairs" in raw:
            values["pairs"] = int(raw["pairs"])
        if "ha" in raw:
            if not isinstance(raw["ha"], bool):
                raise ConfigError(f"{where}: ha must be true or false, not {raw['ha']!r}")
            values["ha"] = raw["ha"]
        if "profile_window" in raw:
            values["profile_window"] = parse_duration(raw["profile_window"],
                                                      f"{where}: profile_window")
        if "bandwidth_mib_s" in raw:
            values["bandwidth"] = float(raw["bandwidth_mib_s"]) * MIB
        for key in ("switch_off", "placement", "nightly_at", "memory"):
            if key in raw:
                values[key] = str(raw[key])
        if "pdm_share" in raw:
            values["pdm_share"] = float(raw["pdm_share"])
        if "host_types" in raw:
            values["host_types"] = tuple(_host_type(h, where) for h in raw["host_types"])
        if "vm_types" in raw:
            values["vm_types"] = tuple(_vm_type(v, where) for v in raw["vm_types"])
        if "balance" in raw:
            values["balance"] = section(raw, "balance", BalanceConfig, where)
        if "executor" in raw:
            values["executor"] = section(raw, "executor", ExecutorConfig, where)
        return SimScenario(**values)
    except ConfigError as exc:
        raise ConfigError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
