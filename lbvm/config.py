"""LBVM's configuration: every setting and its default declared once, validated on load.

The file is TOML (``lbvm.toml``); relative paths in it are relative to the file's folder.
See share/lbvm.toml.example for every key with its default.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from algorithms.base import Settings
from lbvm.errors import ConfigError

RESOURCES = ("cpu", "mem")
# The planning Problem's time profile: one step per hour (the grain of the hourly rollups),
# each the hour's p95 of every resource. "auto" builds one for PROFILE_ALGORITHMS only.
PROFILE_STEP = 3600.0
PROFILES = ("auto", "hourly", "none")
PROFILE_ALGORITHMS = ("peak", "consolidate")
MAX_PROFILE_WINDOW = 7 * 86400.0
AUTOMATION = ("report", "recommend", "automatic")
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DURATION_KEYS = frozenset(
    {"window", "profile_window", "timeout", "stale_after", "check_every", "lease_ttl",
     "misfire_grace", "hook_timeout", "locate_timeout", "pause", "cooldown", "failed_cooldown",
     "db_retry_max", "step_timeout", "command_timeout", "wait_timeout", "poll_every",
     "clock_skew_max"}
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | int | float, key: str = "duration") -> float:
    """'90s', '5m', '24h', '14d' or a number of seconds -> seconds."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text)
    m = _DURATION.match(str(text))
    if not m:
        raise ConfigError(f"{key}: {text!r} is not a duration such as 90s, 5m, 24h or 14d")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class PairConfig:
    name: str
    nodes: tuple[str, str]


@dataclass(frozen=True)
class NodeConfig:
    """Optional per-node overrides of the capacity the node reports itself."""

    name: str
    cpus: float | None = None
    mem_bytes: int | None = None


RULE_KINDS = ("must", "should")
GROUP_KINDS = ("affinity", "anti-affinity")


@dataclass(frozen=True)
class RuleConfig:
    """A placement rule: VEs matching the globs ``ves`` go to ``nodes`` or ``pairs``.

    kind "must" limits where they may run; "should" is a preference the algorithms weigh.
    ``name`` (default "rules[i]") is how errors and logs name the rule.
    """

    name: str
    ves: tuple[str, ...]
    nodes: tuple[str, ...] = ()
    pairs: tuple[str, ...] = ()
    kind: str = "must"


@dataclass(frozen=True)
class GroupConfig:
    """VEs matching the globs ``ves`` share a node (affinity) or never share an HA pair
    (anti-affinity)."""

    name: str
    kind: str
    ves: tuple[str, ...]


@dataclass(frozen=True)
class BalanceConfig:
    algorithm: str = "balance"
    window: float = 24 * 3600.0
    statistic: str = "p95"  # p95 | p99 | max | mean
    max_utilisation: dict[str, float] = field(default_factory=lambda: {"cpu": 0.9, "mem": 0.9})
    failover_overcommit: dict[str, float] = field(
        default_factory=lambda: {"cpu": 1.5, "mem": 1.0}
    )
    weights: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "mem": 1.0})
    max_moves: int | None = 20
    max_bytes: int | None = None
    max_moves_per_node: int | None = None
    min_gain: float = 0.02  # a move must lower the score by min_gain / N (N nodes)
    stale_after: float = 900.0
    profile: str = "auto"  # auto | hourly | none: the Problem's time profile (PROFILES)
    profile_window: float = 24 * 3600.0  # the profile's last hours, one step each

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ConfigError(f"[balance].profile: {self.profile!r} is not one of "
                              f"{', '.join(PROFILES)}")
        if not PROFILE_STEP <= self.profile_window <= MAX_PROFILE_WINDOW:
            raise ConfigError(f"[balance].profile_window: {self.profile_window:.0f}s is not "
                              "between 1h and 7d")

    @property
    def profile_steps(self) -> int:
        """Hours in the profile: the hour ``now`` is in and those before it."""
        return math.ceil(self.profile_window / PROFILE_STEP - 1e-9)

    def wants_profile(self, algorithm: str | None = None) -> bool:
        """Does a plan with ``algorithm`` (default: this section's) get a time profile?"""
        if self.profile == "auto":
            return (algorithm or self.algorithm) in PROFILE_ALGORITHMS
        return self.profile == "hourly"


@dataclass(frozen=True)
class ConsolidateConfig:
    """``consolidate``'s sizing: a target is sized on the ``quantile`` of its VEs' summed
    time profile (a pair's failover on ``pair_quantile``), keeps ``headroom`` of its limits
    and takes at most ``inflow`` moves per plan. Defaults: algorithms.base.Settings."""

    quantile: float = Settings.quantile
    pair_quantile: float = Settings.pair_quantile
    headroom: float = Settings.headroom
    inflow: int = Settings.inflow


def consolidate_from(data: Any, where: str) -> ConsolidateConfig:
    """ConsolidateConfig from a table (the config's [consolidate], a scenario's settings);
    errors name ``where`` and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    known = {f.name for f in fields(ConsolidateConfig)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("quantile", "pair_quantile", "headroom"):
        value = data.get(key, 0.5)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ConfigError(f"{where}.{key}: {value!r} is not a number in (0, 1]")
    inflow = data.get("inflow", 1)
    if isinstance(inflow, bool) or not isinstance(inflow, int) or inflow < 1:
        raise ConfigError(f"{where}.inflow: {inflow!r} is not a whole number >= 1")
    base = ConsolidateConfig()
    return ConsolidateConfig(
        quantile=float(data.get("quantile", base.quantile)),
        pair_quantile=float(data.get("pair_quantile", base.pair_quantile)),
        headroom=float(data.get("headroom", base.headroom)),
        inflow=int(inflow) if "inflow" in data else base.inflow,
    )


@dataclass(frozen=True)
class ExecutorConfig:
    backend: str = "simulate"  # simulate | command
    command: tuple[str, ...] = ("vzmigrate", "--online", "{dst}", "{ve}")
    timeout: float = 3600.0
    output_tail: int = 4000
    max_parallel: int = 1  # moves running at once, in the whole cluster
    max_per_node: int = 1  # moves running at once that touch one node
    pause: float = 0.0  # wait between the end of one move and the start of the next
    cooldown: float = 3600.0  # a VE moved is not moved again by a plan before this passes
    failed_cooldown: float = 6 * 3600.0  # the same after a failed or unverified move

    def __post_init__(self) -> None:
        for key in ("max_parallel", "max_per_node"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"[executor].{key} must be a whole number >= 1, not {value!r}")
        for key in ("pause", "cooldown", "failed_cooldown"):
            if getattr(self, key) < 0:
                raise ConfigError(f"[executor].{key} must not be negative")


@dataclass(frozen=True)
class MonitorConfig:
    """`lbm monitor`: its schedule, automation level, lease and site hook."""

    check_every: float = 300.0
    nightly_at: str = "02:30"  # local time, HH:MM
    automation: str = "report"  # report | recommend | automatic
    lease_ttl: float = 60.0
    misfire_grace: float = 3600.0  # a nightly run missed by less than this still runs
    hook: tuple[str, ...] = ()  # site hook argv; the event arrives as JSON on stdin
    hook_timeout: float = 30.0
    locate_timeout: float = 60.0
    threshold: int = 3  # 1 (mandatory moves only) .. 5 (any move gaining over min_gain)
    db_retry_max: float = 300.0  # longest wait between retries while the store is away

    def __post_init__(self) -> None:
        if (not isinstance(self.threshold, int) or isinstance(self.threshold, bool)
                or not 1 <= self.threshold <= 5):
            raise ConfigError(f"[monitor].threshold: {self.threshold!r} is not 1, 2, 3, 4 or 5")
        if self.automation not in AUTOMATION:
            raise ConfigError(f"[monitor].automation: {self.automation!r} is not one of "
                              f"{', '.join(AUTOMATION)}")
        if not _HHMM.match(self.nightly_at):
            raise ConfigError(f"[monitor].nightly_at: {self.nightly_at!r} is not HH:MM")
        for key in ("check_every", "lease_ttl", "hook_timeout", "locate_timeout", "db_retry_max"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"[monitor].{key} must be positive")

    @property
    def nightly_time(self) -> tuple[int, int]:
        hour, minute = self.nightly_at.split(":")
        return int(hour), int(minute)


SSH = ("ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10")


@dataclass(frozen=True)
class StoreConfig:
    """How long samples are kept, and when a node's clock is too far off."""

    raw_days: float = 14.0  # raw 5-minute samples
    rollup_days: float = 365.0  # hourly rollups (mean, p95, max)
    clock_skew_max: float = 120.0  # warn when a node's clock is further off than this
    ingest_jobs: int | None = None  # parsing processes (None: 2 for large spools)


@dataclass(frozen=True)
class HaConfig:
    """HA-pair state reported by lblog: older than ``stale_after`` (default: the balance
    section's) counts as unknown."""

    stale_after: float | None = None


@dataclass(frozen=True)
class SwitchoverConfig:
    """The OpenVZ live switchover inside a pair (checkpoint, move resource, restore).

    manager: whose command moves the cluster resource (pacemaker, rgmanager, heartbeat).
    drbd_check: how the mirror is checked: drbdadm (DRBD 9), proc (DRBD 8), none.
    local: nodes that are this host, whose commands run without ssh (empty: this host's
    short name). fallback: the backend for moves to another pair.
    """

    dumpdir: str = "/vz/dump"
    manager: str = "pacemaker"
    drbd_check: str = "drbdadm"
    step_timeout: float = 600.0
    ssh: tuple[str, ...] = SSH
    local: tuple[str, ...] = ()
    output_tail: int = 4000
    fallback: str = "simulate"


@dataclass(frozen=True)
class RollingConfig:
    """`lbm maintenance rolling`: timeouts of the operator's command and of the wait for the
    node and its DRBD resources to come back."""

    command_timeout: float = 3600.0
    wait_timeout: float = 1800.0
    poll_every: float = 30.0
    ssh: tuple[str, ...] = SSH
    local: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    database: str = "sqlite:///lbvm.db"
    spool: Path = Path("/var/spool/lbvm")
    pairs: tuple[PairConfig, ...] = ()
    nodes: tuple[NodeConfig, ...] = ()
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    consolidate: ConsolidateConfig = field(default_factory=ConsolidateConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ha: HaConfig = field(default_factory=HaConfig)
    switchover: SwitchoverConfig = field(default_factory=SwitchoverConfig)
    rolling: RollingConfig = field(default_factory=RollingConfig)
    rules: tuple[RuleConfig, ...] = ()
    groups: tuple[GroupConfig, ...] = ()

    def pair_of(self) -> dict[str, str]:
        """node name -> pair name."""
        return {n: p.name for p in self.pairs for n in p.nodes}


def section(raw: dict[str, Any], name: str, cls: type, where: str) -> Any:
    """Read table ``name`` of ``raw`` into dataclass ``cls``: unknown keys, bad types and
    bad durations raise ConfigError naming ``where`` and the key."""
    data = raw.get(name, {})
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
    out = cls()
    for key, value in data.items():
        default = getattr(out, key)
        if isinstance(default, dict):
            if not isinstance(value, dict) or set(value) - set(RESOURCES):
                raise ConfigError(f"{where}: [{name}].{key} must map {RESOURCES} to numbers")
            value = {**default, **{k: float(v) for k, v in value.items()}}
        elif key in _DURATION_KEYS:
            value = parse_duration(value, f"{where}: [{name}].{key}")
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where}: [{name}].{key} must be a list of strings")
            value = tuple(value)
        try:
            out = replace(out, **{key: value})
        except ConfigError as exc:  # a section's own check: say which file
            raise ConfigError(f"{where}: {exc}") from None
    return out


def _pairs(raw: dict[str, Any], where: str) -> tuple[PairConfig, ...]:
    pairs = []
    seen: set[str] = set()
    for i, item in enumerate(raw.get("pairs", [])):
        if not isinstance(item, dict) or not isinstance(item.get("nodes"), list):
            raise ConfigError(f"{where}: pairs[{i}] needs nodes = [\"a\", \"b\"]")
        unknown = set(item) - {"name", "nodes"}
        if unknown:  # e.g. a top-level key written after [[pairs]] lands here
            raise ConfigError(f"{where}: unknown key(s) in pairs[{i}]: {sorted(unknown)}")
        members = item["nodes"]
        if len(members) != 2 or not all(isinstance(n, str) for n in members):
            raise ConfigError(f"{where}: pairs[{i}].nodes must name exactly two nodes")
        for n in members:
            if n in seen:
                raise ConfigError(f"{where}: node {n!r} is in more than one pair")
            seen.add(n)
        pairs.append(PairConfig(str(item.get("name", f"pair{i + 1}")), (members[0], members[1])))
    return tuple(pairs)


def _nodes(raw: dict[str, Any], where: str) -> tuple[NodeConfig, ...]:
    out = []
    for i, item in enumerate(raw.get("nodes", [])):
        if not isinstance(item, dict) or "name" not in item:
            raise ConfigError(f"{where}: nodes[{i}] needs a name")
        unknown = set(item) - {"name", "cpus", "mem_bytes"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) in nodes[{i}]: {sorted(unknown)}")
        out.append(NodeConfig(item["name"], item.get("cpus"), item.get("mem_bytes")))
    return tuple(out)


def _strings(item: dict[str, Any], key: str, where: str, *, required: bool = False
             ) -> tuple[str, ...]:
    value = item.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}.{key} must be a list of names")
    if required and not value:
        raise ConfigError(f"{where}.{key} must name at least one VE (globs such as web-*)")
    return tuple(value)


def _table(item: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(item) - allowed
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return item


def _rules(raw: dict[str, Any], where: str, pairs: tuple[PairConfig, ...]
           ) -> tuple[RuleConfig, ...]:
    items = raw.get("rules", [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}: rules must be an array of tables ([[rules]])")
    nodes = {n for p in pairs for n in p.nodes}
    pair_names = {p.name for p in pairs}
    out = []
    for i, item in enumerate(items):
        key = f"{where}: rules[{i}]"
        item = _table(item, key, {"name", "ves", "nodes", "pairs", "kind"})
        name = item.get("name", f"rules[{i}]")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.name must be a non-empty string")
        kind = item.get("kind", "must")
        if kind not in RULE_KINDS:
            raise ConfigError(f"{key}.kind: {kind!r} is not one of {', '.join(RULE_KINDS)}")
        rule = RuleConfig(name, _strings(item, "ves", key, required=True),
                          _strings(item, "nodes", key), _strings(item, "pairs", key), kind)
        if not rule.nodes and not rule.pairs:
            raise ConfigError(f"{key} needs nodes = [...] or pairs = [...]")
        # Unknown names are caught here when the pairs are known; lbvm.rules checks again.
        if pairs:
            bad = [n for n in rule.nodes if n not in nodes]
            if bad:
                raise ConfigError(f"{key}.nodes: {bad[0]!r} is in no [[pairs]]")
            bad = [p for p in rule.pairs if p not in pair_names]
            if bad:
                raise ConfigError(f"{key}.pairs: no pair is named {bad[0]!r}")
        out.append(rule)
    return tuple(out)


def _groups(raw: dict[str, Any], where: str) -> tuple[GroupConfig, ...]:
    items = raw.get("groups", [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}: groups must be an array of tables ([[groups]])")
    out = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        key = f"{where}: groups[{i}]"
        item = _table(item, key, {"name", "kind", "ves"})
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.name must be a non-empty string")
        if name in seen:
            raise ConfigError(f"{key}.name: group {name!r} is defined twice")
        seen.add(name)
        kind = item.get("kind")
        if kind not in GROUP_KINDS:
            raise ConfigError(f"{key}.kind: {kind!r} is not one of {', '.join(GROUP_KINDS)}")
        out.append(GroupConfig(name, kind, _strings(item, "ves", key, required=True)))
    return tuple(out)


def load(path: str | Path | None) -> Config:
    """Load and validate a config file; ``None`` gives the defaults."""
    if path is None:
        return Config()
    path = Path(path)
    if path.is_dir():
        path = path / "lbvm.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    where = str(path)
    top = {"database", "spool", "pairs", "nodes", "balance", "consolidate", "executor", "monitor",
           "store", "ha", "switchover", "rolling", "rules", "groups"}
    unknown = set(raw) - top
    if unknown:
        raise ConfigError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
    base = path.parent.resolve()
    database = str(raw.get("database", Config.database))
    if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
        rel = database[len("sqlite:///") :]
        if rel and rel != ":memory:":
            database = "sqlite:///" + str(base / rel)
    spool = base / Path(raw.get("spool", str(Config.spool)))
    pairs = _pairs(raw, where)
    return Config(
        path=path,
        database=database,
        spool=spool,
        pairs=pairs,
        nodes=_nodes(raw, where),
        balance=section(raw, "balance", BalanceConfig, where),
        consolidate=consolidate_from(raw.get("consolidate", {}), f"{where}: [consolidate]"),
        executor=section(raw, "executor", ExecutorConfig, where),
        monitor=section(raw, "monitor", MonitorConfig, where),
        store=section(raw, "store", StoreConfig, where),
        ha=section(raw, "ha", HaConfig, where),
        switchover=section(raw, "switchover", SwitchoverConfig, where),
        rolling=section(raw, "rolling", RollingConfig, where),
        rules=_rules(raw, where, pairs),
        groups=_groups(raw, where),
    )
