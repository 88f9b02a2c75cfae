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

_GROUP_FIELD = {"affinity": "affinity", "anti-affinity": "anti_affinity"}


def matching(globs: Sequence[str], ves: Sequence[str]) -> np.ndarray:
    """[V] bool: the VEs any of ``globs`` matches (one compiled regex over all VEs)."""
    if not globs or not len(ves):
        return np.zeros(len(ves), dtype=bool)
    pattern = "|".join(fnmatch.translate(g) for g in globs)
    hit = pd.Series(list(ves), dtype=object).str.match(re.compile(pattern))
    return hit.to_numpy(dtype=bool)


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


def _rules(problem: Problem, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """(must[V, N], should[V, N]) from the config's rules; must is all True without rules."""
    must = np.ones((problem.n_ves, problem.n_nodes), dtype=bool)
    should = np.zeros((problem.n_ves, problem.n_nodes), dtype=bool)
    by: list[tuple[RuleConfig, np.ndarray]] = []
    for rule in config.rules:
        targets = _targets(rule, problem, config)
        hit = matching(rule.ves, problem.ves)
        if not hit.any():
            log.warning("rule %s matches no VE of the window (%s)", rule.name,
                        ", ".join(rule.ves))
            continue
        if rule.kind == "must":
            must[hit] &= targets
            by.append((rule, hit))
        else:
            should[hit] |= targets
    stuck = ~must.any(axis=1)
    if stuck.any():
        v = int(np.argmax(stuck))
        names = ", ".join(r.name for r, hit in by if hit[v])
        raise ConfigError(f"VE {problem.ves[v]}: must rules {names} leave it no node")
    return must, should


def _group_ids(groups: Sequence[GroupConfig], ves: Sequence[str], start: int
               ) -> np.ndarray:
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
    if config.rules:
        must, should = _rules(problem, config)
        changes["allowed"] = np.asarray(problem.allowed, dtype=bool) & must
        if should.any():
            old = problem.preferred
            changes["preferred"] = should if old is None else np.asarray(old, bool) | should
    for kind, name in _GROUP_FIELD.items():
        groups = [g for g in config.groups if g.kind == kind]
        if not groups:
            continue
        old = getattr(problem, name)
        start = int(np.max(old)) + 1 if old is not None and len(old) else 0
        new = _group_ids(groups, problem.ves, max(start, 0))
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
