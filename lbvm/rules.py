"""Placement rules of the live config, folded into a Problem.

The config's ``[[rules]]`` and ``[[groups]]`` name VEs by glob (``fnmatch``, case-sensitive:
"101", "web-*") and nodes or pairs by name. ``apply`` turns them into the Problem's arrays:

- must rules narrow ``allowed[V, N]``; several must rules matching one VE all hold (their
  targets intersect), and a VE they leave no node at all is a ConfigError naming the rules;
- should rules set ``preferred[V, N]``; several should rules matching one VE add up;
- groups become ids in ``affinity[V]`` / ``anti_affinity[V]``, numbered in config order; a VE
  in two groups of one kind is a ConfigError (the Problem keeps one group per VE).

A rule or group whose globs match no VE in the window is logged, not an error: its VEs may
simply be stopped. ``failcnt_growth`` reads the beancounter failure growth for
``Problem.failcnt``.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from algorithms.base import Problem
from lbvm.config import Config, GroupConfig, RuleConfig
from lbvm.errors import ConfigError
from lbvm.store.schema import ve_samples

__all__ = ["apply", "failcnt_growth", "matching"]

log = logging.getLogger(__name__)

_WILD = re.compile(r"[*?\[]")
_GROUP_FIELD = {"affinity": "affinity", "anti-affinity": "anti_affinity"}


def matching(globs: Sequence[str], ves: Sequence[str] | np.ndarray) -> np.ndarray:
    """[V] bool: the VEs any of ``globs`` matches.

    Plain ids and ``prefix*`` globs, the usual ones, are numpy set and string operations;
    other globs share one compiled regex.
    """
    names = np.asarray(ves, dtype=str) if not isinstance(ves, np.ndarray) else ves
    out = np.zeros(len(names), dtype=bool)
    if not len(names):
        return out
    plain, prefixes, other = [], [], []
    for glob in globs:
        if not _WILD.search(glob):
            plain.append(glob)
        elif glob.endswith("*") and not _WILD.search(glob[:-1]):
            prefixes.append(glob[:-1])
        else:
            other.append(glob)
    if plain:
        out |= np.isin(names, plain)
    for prefix in prefixes:
        out |= np.char.startswith(names, prefix)
    if other:
        match = re.compile("|".join(fnmatch.translate(g) for g in other)).match
        out |= np.fromiter(map(bool, map(match, names.tolist())), dtype=bool, count=len(names))
    return out


def _targets(rule: RuleConfig, problem: Problem, config: Config) -> np.ndarray:
    """[N] bool: the nodes a rule names, directly or through its pairs."""
    index = {n: i for i, n in enumerate(problem.nodes)}
    members = {p.name: p.nodes for p in config.pairs}
    out = np.zeros(problem.n_nodes, dtype=bool)
    for node in rule.nodes:
        if node not in index:
            raise ConfigError(f"rule {rule.name}: unknown node {node!r}")
        out[index[node]] = True
    for pair in rule.pairs:
        if pair not in members:
            raise ConfigError(f"rule {rule.name}: unknown pair {pair!r}")
        present = [index[n] for n in members[pair] if n in index]
        if not present:
            raise ConfigError(f"rule {rule.name}: pair {pair!r} has no node in the cluster")
        out[present] = True
    return out


def _rules(problem: Problem, config: Config, names: np.ndarray
           ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(allowed[V, N] narrowed by the must rules, should[V, N] or None); (None, None) when no
    rule matches a VE.

    VEs matched by the same set of rules share one target row, so the work is one pass per
    distinct set (a handful on a real site), not per VE or per rule.
    """
    kept: list[tuple[RuleConfig, np.ndarray]] = []
    hits = []
    for rule in config.rules:
        targets = _targets(rule, problem, config)
        hit = matching(rule.ves, names)
        if not hit.any():
            log.warning("rule %s matches no VE of the window (%s)", rule.name,
                        ", ".join(rule.ves))
            continue
        kept.append((rule, targets))
        hits.append(hit)
    if not kept:
        return None, None
    combos, inverse = np.unique(np.stack(hits, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    allowed = np.array(problem.allowed, dtype=bool)
    should: np.ndarray | None = None
    for c, combo in enumerate(combos):
        rows = inverse == c
        musts = [(r, t) for (r, t), on in zip(kept, combo, strict=True) if on and r.kind == "must"]
        if musts:
            target = np.logical_and.reduce([t for _, t in musts])
            if not target.any():
                culprits = ", ".join(r.name for r, _ in musts)
                ve = problem.ves[int(np.argmax(rows))]
                raise ConfigError(f"VE {ve}: must rules {culprits} leave it no node")
            allowed[rows] &= target
        shoulds = [t for (r, t), on in zip(kept, combo, strict=True) if on and r.kind == "should"]
        if shoulds:
            if should is None:
                should = np.zeros_like(allowed)
            should[rows] = np.logical_or.reduce(shoulds)
    return allowed, should


def _group_ids(groups: Sequence[GroupConfig], ves: np.ndarray, start: int) -> np.ndarray:
    """[V] ids (-1: none) of one kind of group, numbered from ``start`` in config order."""
    out = np.full(len(ves), -1, dtype=np.int64)
    for gid, group in enumerate(groups, start=start):
        hit = matching(group.ves, ves)
        if not hit.any():
            log.warning("group %s matches no VE of the window (%s)", group.name,
                        ", ".join(group.ves))
            continue
        clash = hit & (out >= 0)
        if clash.any():
            v = int(np.argmax(clash))
            other = groups[int(out[v]) - start].name
            raise ConfigError(f"VE {ves[v]} is in {group.kind} groups {other} and {group.name}; "
                              "a VE may be in one group of each kind")
        out[hit] = gid
    return out


def _merge_groups(old: np.ndarray | None, new: np.ndarray, what: str,
                  ves: Sequence[str]) -> np.ndarray | None:
    """The config's groups added to those the problem already had (ids kept apart)."""
    if old is None:
        return new if (new >= 0).any() else None
    old = np.asarray(old, dtype=np.int64)
    both = (old >= 0) & (new >= 0)
    if both.any():
        v = int(np.argmax(both))
        raise ConfigError(f"VE {ves[v]} already has an {what} group; the config gives another")
    return np.where(new >= 0, new, old)


def apply(problem: Problem, config: Config, *, failcnt: np.ndarray | None = None) -> Problem:
    """The problem with the config's rules and groups folded in (see the module docstring),
    and ``failcnt[V]`` when given."""
    if failcnt is not None:
        failcnt = np.asarray(failcnt, dtype=np.float64)
        if failcnt.shape != (problem.n_ves,):
            raise ValueError(f"failcnt has shape {failcnt.shape}, not ({problem.n_ves},)")
    changes: dict[str, Any] = {}
    names = np.asarray(problem.ves if config.rules or config.groups else (), dtype=str)
    if config.rules:
        allowed, should = _rules(problem, config, names)
        if allowed is not None:
            changes["allowed"] = allowed
        if should is not None:
            old = problem.preferred
            changes["preferred"] = should if old is None else np.asarray(old, bool) | should
    for kind, name in _GROUP_FIELD.items():
        groups = [g for g in config.groups if g.kind == kind]
        if not groups:
            continue
        old = getattr(problem, name)
        start = int(np.max(old)) + 1 if old is not None and len(old) else 0
        new = _group_ids(groups, names, max(start, 0))
        changes[name] = _merge_groups(old, new, kind, problem.ves)
    if failcnt is not None:
        changes["failcnt"] = failcnt
    return replace(problem, **changes) if changes else problem


def failcnt_growth(engine: Engine, ves: Sequence[str], start: float, end: float
                   ) -> np.ndarray:
    """[V] growth of each VE's beancounter failcnt over start < ts <= end, ordered like ``ves``.

    The sum of the increases between consecutive samples (max - min when the counter only
    grows); after a reset (VE restart) the later value counts whole. One window query over
    the samples; VEs without samples get 0.
    """
    c = ve_samples.c
    prev = sa.func.lag(c.failcnt).over(partition_by=c.ve, order_by=c.ts).label("prev")
    inner = (
        sa.select(c.ve, c.failcnt, prev)
        .where(c.ts > start, c.ts <= end, c.failcnt.is_not(None))
        .subquery()
    )
    delta = sa.case(
        (inner.c.prev.is_(None), 0),
        (inner.c.failcnt < inner.c.prev, inner.c.failcnt),
        else_=inner.c.failcnt - inner.c.prev,
    )
    query = sa.select(inner.c.ve, sa.func.sum(delta).label("growth")).group_by(inner.c.ve)
    with engine.connect() as conn:
        grown = pd.DataFrame(conn.execute(query).all(), columns=["ve", "growth"])
    per_ve = pd.to_numeric(grown["growth"]).astype(np.float64).set_axis(grown["ve"])
    return per_ve.reindex(list(ves)).fillna(0.0).to_numpy(dtype=np.float64)
