"""Scenario files: a small cluster written by hand, turned into a Problem.

A scenario is JSON (YAML too when PyYAML happens to be installed): nodes with their pair and
capacity, VEs with their node and demand, settings, rules, and an optional ``expect`` block
that the scenario tests check a plan against. docs/scenarios.md describes the format.

``synthetic`` builds seeded random clusters of HA pairs for tests, benchmarks and demos.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from algorithms.base import Problem, Settings
from lbvm.config import BalanceConfig, ConsolidateConfig, consolidate_from
from lbvm.errors import ConfigError, ParseError

__all__ = ["Expect", "Scenario", "load", "load_problem", "parse_size", "problem_from_dict",
           "scenario_from_dict", "synthetic"]

GIB = 1024**3
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4, "p": 5}
_CONSOLIDATE = tuple(f.name for f in fields(ConsolidateConfig))
_SETTINGS = ("max_utilisation", "failover_overcommit", "weights", "max_moves", "max_bytes",
             "max_moves_per_node", "min_gain", *_CONSOLIDATE)
_TOP = {"name", "description", "algorithm", "resources", "settings", "nodes", "ves", "rules",
        "expect"}


@dataclass(frozen=True)
class Expect:
    """What a plan for the scenario must satisfy (every field optional)."""

    valid: bool = True  # the shared validator accepts the plan
    max_moves: int | None = None
    min_moves: int | None = None
    score_after_below: float | None = None
    improves: bool | None = None  # score_after < score_before
    no_move_of: tuple[str, ...] = ()  # these VEs stay where they are
    moves_of: tuple[str, ...] = ()  # these VEs must move
    no_move_to: tuple[str, ...] = ()  # these nodes receive nothing
    kinds: tuple[str, ...] = ()  # every move is one of these kinds
    failover_ok: bool | None = None  # afterwards every pair can fail over
    notes_contain: str | None = None
    warnings: int | None = None  # how many should-rule warnings the validator gives


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path | None
    problem: Problem
    algorithm: str = "balance"
    description: str = ""
    expect: Expect | None = None


def parse_size(value: Any, key: str) -> float:
    """A number, or a size such as '64G', '1.5T', '512MiB' (powers of 1024) -> float."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ConfigError(f"{key}: {value!r} is negative")
        return float(value)
    m = _SIZE.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise ConfigError(f"{key}: {value!r} is not a number or a size such as 64G")
    return float(m.group(1)) * 1024 ** _POWERS[m.group(2).lower()]


def load(path: str | Path) -> Scenario:
    """Read a scenario file; errors name the file and the key."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read scenario: {exc.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        data = _yaml(path, text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParseError(str(path), exc.lineno, exc.msg) from None
    return scenario_from_dict(data, str(path), path)


def load_problem(path: str | Path) -> Problem:
    return load(path).problem


def _yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError:
        raise ConfigError(f"{path}: YAML scenarios need PyYAML; write JSON instead") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ParseError(str(path), mark.line + 1 if mark else None, str(exc)) from None


def _dict(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: must be an object")
    return value


def _list(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{key}: must be a list")
    return value


def _names(value: Any, key: str) -> tuple[str, ...]:
    items = _list(value, key)
    if not all(isinstance(v, str) for v in items):
        raise ConfigError(f"{key}: must be a list of names")
    return tuple(items)


def _per_resource(value: Any, key: str, resources: tuple[str, ...], default: dict[str, float],
                  sizes: bool = False) -> np.ndarray:
    data = _dict(value, key) if value is not None else {}
    unknown = set(data) - set(resources)
    if unknown:
        raise ConfigError(f"{key}: unknown resource(s) {sorted(unknown)}; known: {resources}")
    out = []
    for r in resources:
        if r in data:
            read = parse_size if sizes else _number
            out.append(read(data[r], f"{key}.{r}"))
        elif r in default:
            out.append(default[r])
        else:
            raise ConfigError(f"{key}: missing {r!r}")
    return np.array(out, dtype=float)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key}: {value!r} is not a number")
    return float(value)


def _settings(raw: Any, where: str, resources: tuple[str, ...]) -> Settings:
    data = _dict(raw, f"{where}: settings") if raw is not None else {}
    unknown = set(data) - set(_SETTINGS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in settings: {', '.join(sorted(unknown))}")
    base = BalanceConfig()
    arrays: dict[str, Any] = {
        k: _per_resource(data.get(k), f"{where}: settings.{k}", resources,
                         {**{r: 1.0 for r in resources}, **getattr(base, k)})
        for k in ("max_utilisation", "failover_overcommit", "weights")
    }
    scalars: dict[str, Any] = {}
    for k in ("max_moves", "max_moves_per_node"):
        v = data.get(k, getattr(base, k))
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ConfigError(f"{where}: settings.{k}: {v!r} is not a count")
        scalars[k] = v
    mb = data.get("max_bytes", base.max_bytes)
    key = f"{where}: settings."
    scalars["max_bytes"] = None if mb is None else int(parse_size(mb, key + "max_bytes"))
    scalars["min_gain"] = _number(data.get("min_gain", base.min_gain), key + "min_gain")
    cons = consolidate_from({k: data[k] for k in _CONSOLIDATE if k in data}, f"{where}: settings")
    scalars.update({k: getattr(cons, k) for k in _CONSOLIDATE})
    return Settings(**arrays, **scalars)


def _expect(raw: Any, where: str) -> Expect | None:
    if raw is None:
        return None
    data = _dict(raw, f"{where}: expect")
    known = {f.name: f for f in fields(Expect)}
    unknown = set(data) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in expect: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for k, v in data.items():
        default = getattr(Expect(), k)
        key = f"{where}: expect.{k}"
        if isinstance(default, tuple):
            values[k] = _names(v, key)
        elif k in ("valid", "improves", "failover_ok"):
            if not isinstance(v, bool):
                raise ConfigError(f"{key}: must be true or false")
            values[k] = v
        elif k == "notes_contain":
            values[k] = str(v)
        elif k == "score_after_below":
            values[k] = _number(v, key)
        else:
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{key}: must be a whole number")
            values[k] = v
    return Expect(**values)


def scenario_from_dict(data: Any, where: str = "<scenario>", path: Path | None = None
                       ) -> Scenario:
    """Build a Scenario from already-parsed data; ``where`` prefixes every error."""
    data = _dict(data, where)
    unknown = set(data) - _TOP
    if unknown:
        raise ConfigError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
    name = str(data.get("name", path.stem if path else "scenario"))
    return Scenario(
        name=name,
        path=path,
        problem=problem_from_dict(data, where),
        algorithm=str(data.get("algorithm", "balance")),
        description=str(data.get("description", "")),
        expect=_expect(data.get("expect"), where),
    )


def problem_from_dict(data: dict[str, Any], where: str = "<scenario>") -> Problem:
    """The Problem part of a scenario (nodes, ves, settings, rules)."""
    resources = _names(data.get("resources", ["cpu", "mem"]), f"{where}: resources")
    if not resources or len(set(resources)) != len(resources):
        raise ConfigError(f"{where}: resources must be distinct names")
    nodes, capacity, pairs = _nodes(_list(data.get("nodes"), f"{where}: nodes"), where, resources)
    index = {n: i for i, n in enumerate(nodes)}
    ve_items = _list(data.get("ves", []), f"{where}: ves")
    ves, demand, placement, movable, cost, profile = _ves(ve_items, where, resources, index)
    rules = _dict(data.get("rules", {}), f"{where}: rules")
    unknown = set(rules) - {"maintenance", "allowed"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) in rules: {', '.join(sorted(unknown))}")
    maint = np.array([bool(item.get("maintenance", False)) for item in data["nodes"]])
    for n in _names(rules.get("maintenance", []), f"{where}: rules.maintenance"):
        if n not in index:
            raise ConfigError(f"{where}: rules.maintenance: unknown node {n!r}")
        maint[index[n]] = True
    allowed = np.ones((len(ves), len(nodes)), dtype=bool)
    ve_index = {v: i for i, v in enumerate(ves)}
    for ve, only in _dict(rules.get("allowed", {}), f"{where}: rules.allowed").items():
        key = f"{where}: rules.allowed.{ve}"
        if ve not in ve_index:
            raise ConfigError(f"{key}: unknown VE")
        row = np.zeros(len(nodes), dtype=bool)
        for n in _names(only, key):
            if n not in index:
                raise ConfigError(f"{key}: unknown node {n!r}")
            row[index[n]] = True
        allowed[ve_index[ve]] = row
    pair_members: dict[str, list[int]] = {}
    for i, item in enumerate(data["nodes"]):
        if item.get("pair") is not None:
            pair_members.setdefault(str(item["pair"]), []).append(i)
    per_ve = _ve_rules(ve_items, where, index, pair_members)
    allowed &= per_ve["allowed"]
    allowed[:, maint] = False
    return Problem(
        ves=ves,
        nodes=nodes,
        resources=resources,
        demand=demand,
        capacity=capacity,
        placement=placement,
        pair=pairs,
        movable=movable,
        allowed=allowed,
        move_cost=cost,
        settings=_settings(data.get("settings"), where, resources),
        profile=profile,
        maintenance=maint,
        preferred=per_ve["preferred"] if per_ve["preferred"].any() else None,
        affinity=per_ve["affinity"] if (per_ve["affinity"] >= 0).any() else None,
        anti_affinity=per_ve["anti_affinity"] if (per_ve["anti_affinity"] >= 0).any() else None,
    )


_VE_RULES = ("allowed_nodes", "allowed_pairs", "preferred_nodes", "preferred_pairs",
             "affinity", "anti_affinity")


def _ve_rules(items: list[Any], where: str, index: dict[str, int],
              pair_members: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Per-VE rules: must (allowed_*), should (preferred_*), affinity group names."""
    n = len(index)
    out = {
        "allowed": np.ones((len(items), n), dtype=bool),
        "preferred": np.zeros((len(items), n), dtype=bool),
        "affinity": np.full(len(items), -1, dtype=np.int64),
        "anti_affinity": np.full(len(items), -1, dtype=np.int64),
    }
    groups: dict[str, dict[str, int]] = {"affinity": {}, "anti_affinity": {}}
    for i, item in enumerate(items):
        key = f"{where}: ves[{i}] ({item.get('id')})"
        for kind in ("allowed", "preferred"):
            nodes_key, pairs_key = f"{kind}_nodes", f"{kind}_pairs"
            if nodes_key not in item and pairs_key not in item:
                continue
            row = np.zeros(n, dtype=bool)
            for name in _names(item.get(nodes_key, []), f"{key}.{nodes_key}"):
                if name not in index:
                    raise ConfigError(f"{key}.{nodes_key}: unknown node {name!r}")
                row[index[name]] = True
            for name in _names(item.get(pairs_key, []), f"{key}.{pairs_key}"):
                if name not in pair_members:
                    raise ConfigError(f"{key}.{pairs_key}: unknown pair {name!r}")
                row[pair_members[name]] = True
            out[kind][i] = row
        for kind, seen in groups.items():
            if kind in item:
                name = item[kind]
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"{key}.{kind}: must be a group name")
                out[kind][i] = seen.setdefault(name, len(seen))
    return out


def _nodes(items: list[Any], where: str, resources: tuple[str, ...]
           ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    names: list[str] = []
    caps, pair_names = [], []
    for i, item in enumerate(items):
        key = f"{where}: nodes[{i}]"
        item = _dict(item, key)
        unknown = set(item) - {"name", "pair", "capacity", "maintenance"}
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{key}.name: missing")
        if not isinstance(item.get("maintenance", False), bool):
            raise ConfigError(f"{key}.maintenance: must be true or false")
        if name in names:
            raise ConfigError(f"{key}.name: node {name!r} appears twice")
        names.append(name)
        caps.append(_per_resource(item.get("capacity"), f"{key}.capacity", resources, {}, True))
        pair_names.append(item.get("pair"))
    order = {p: i for i, p in enumerate(dict.fromkeys(p for p in pair_names if p is not None))}
    pair = np.array([order[p] if p is not None else -1 for p in pair_names], dtype=np.int64)
    for p, i in order.items():
        if (pair == i).sum() > 2:
            raise ConfigError(f"{where}: pair {p!r} has more than two nodes")
    capacity = np.array(caps, dtype=float).reshape(len(names), len(resources))
    return tuple(names), capacity, pair


def _ves(items: list[Any], where: str, resources: tuple[str, ...], index: dict[str, int]
         ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                    np.ndarray | None]:
    ids: list[str] = []
    demand, placement, movable, disk = [], [], [], []
    profiles: list[np.ndarray | None] = []
    for i, item in enumerate(items):
        key = f"{where}: ves[{i}]"
        item = _dict(item, key)
        unknown = set(item) - {"id", "node", "demand", "profile", "pinned", "disk", *_VE_RULES}
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {sorted(unknown)}")
        ve = item.get("id")
        if not isinstance(ve, str) or not ve:
            raise ConfigError(f"{key}.id: missing")
        if ve in ids:
            raise ConfigError(f"{key}.id: VE {ve!r} appears twice")
        key = f"{where}: ves[{i}] ({ve})"
        if item.get("node") not in index:
            raise ConfigError(f"{key}.node: unknown node {item.get('node')!r}")
        prof = None
        if "profile" in item:
            raw = _dict(item["profile"], f"{key}.profile")
            prof = np.stack([
                np.array([parse_size(x, f"{key}.profile.{r}") for x in
                          _list(raw.get(r), f"{key}.profile.{r}")], dtype=float)
                for r in resources
            ], axis=1) if all(r in raw for r in resources) else None
            if prof is None:
                raise ConfigError(f"{key}.profile: needs a list for each of {resources}")
        if "demand" in item:
            dem = _per_resource(item["demand"], f"{key}.demand", resources, {}, True)
        elif prof is not None and len(prof):
            dem = np.percentile(prof, 95, axis=0)
        else:
            raise ConfigError(f"{key}.demand: missing")
        pinned = item.get("pinned", False)
        if not isinstance(pinned, bool):
            raise ConfigError(f"{key}.pinned: must be true or false")
        ids.append(ve)
        demand.append(dem)
        placement.append(index[item["node"]])
        movable.append(not pinned)
        disk.append(parse_size(item.get("disk", 0), f"{key}.disk"))
        profiles.append(prof)
    profile = None
    if any(p is not None for p in profiles):
        lengths = {len(p) for p in profiles if p is not None}
        if len(lengths) != 1:
            raise ConfigError(f"{where}: ves: every profile must have the same length")
        steps = lengths.pop()
        profile = np.stack([p if p is not None else np.tile(d, (steps, 1))
                            for p, d in zip(profiles, demand, strict=True)])
    dem_arr = np.array(demand, dtype=float).reshape(len(ids), len(resources))
    mem = dem_arr[:, resources.index("mem")] if "mem" in resources else np.zeros(len(ids))
    cost = np.stack([mem, mem + np.array(disk, dtype=float)], axis=1).reshape(len(ids), 2)
    return (tuple(ids), dem_arr, np.array(placement, dtype=np.int64),
            np.array(movable, dtype=bool), cost, profile)


def synthetic(n_nodes: int, n_ves: int, seed: int = 0, *, hot_share: float = 0.2,
              hot_mem: float = 0.85, pinned_share: float = 0.0, settings: Settings | None = None
              ) -> Problem:
    """A seeded, skewed cluster of HA pairs (cpu cores, mem bytes).

    Pairs are two nodes of one size (1×, 1.5× or 2× of 64 cores / 512 GiB); VEs have
    1–64 GiB and 1–16 cores (log-uniform) using 15–45 % of their cores. About ``hot_share``
    of the nodes are filled to ``hot_mem`` of their memory, the rest share what is left.
    ``n_nodes`` is rounded up to an even number.
    """
    rng = np.random.default_rng(seed)
    n_pairs = max(1, (n_nodes + 1) // 2)
    size = np.repeat(rng.choice([1.0, 1.5, 2.0], size=n_pairs), 2)
    n = len(size)
    capacity = np.stack([64.0 * size, 512.0 * GIB * size], axis=1)
    mem = np.exp(rng.uniform(0, np.log(64), n_ves)) * GIB
    cores = np.floor(np.exp(rng.uniform(0, np.log(17), n_ves)))
    demand = np.stack([cores * rng.uniform(0.15, 0.45, n_ves), mem], axis=1)
    hot = rng.random(n) < hot_share
    total = mem.sum()
    hot_load = hot_mem * capacity[hot, 1].sum()
    cold_fill = max(total - hot_load, 0.0) / max(capacity[~hot, 1].sum(), 1.0)
    weight = capacity[:, 1] * np.where(hot, hot_mem, cold_fill)
    if weight.sum() <= 0:
        weight = capacity[:, 1]
    # VEs in random order fill the nodes one after the other up to each node's target
    order = rng.permutation(n_ves)
    cut = np.cumsum(weight) / weight.sum() * total
    placement = np.empty(n_ves, dtype=np.int64)
    middle = np.cumsum(mem[order]) - mem[order] / 2
    placement[order] = np.minimum(np.searchsorted(cut, middle), n - 1)
    movable = rng.random(n_ves) >= pinned_share
    disk = mem * rng.uniform(2, 8, n_ves)
    if settings is None:
        base = BalanceConfig()
        settings = Settings(
            max_utilisation=np.array([base.max_utilisation[r] for r in ("cpu", "mem")]),
            failover_overcommit=np.array([base.failover_overcommit[r] for r in ("cpu", "mem")]),
            weights=np.array([base.weights[r] for r in ("cpu", "mem")]),
            max_moves=base.max_moves,
            max_bytes=base.max_bytes,
            max_moves_per_node=base.max_moves_per_node,
            min_gain=base.min_gain,
        )
    return Problem(
        ves=tuple(f"ve{i}" for i in range(n_ves)),
        nodes=tuple(f"n{i}" for i in range(n)),
        resources=("cpu", "mem"),
        demand=demand,
        capacity=capacity,
        placement=placement,
        pair=np.arange(n) // 2,
        movable=movable,
        allowed=np.ones((n_ves, n), dtype=bool),
        move_cost=np.stack([mem, mem + disk], axis=1),
        settings=settings,
        maintenance=np.zeros(n, dtype=bool),
    )
