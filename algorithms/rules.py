"""Placement rules in numpy, shared by every algorithm and the validator.

- must rules: ``allowed[V, N]`` minus maintenance nodes (never a target);
- should rules: ``preferred[V, N]``; a VE whose row is all False (or all True) has no
  preference;
- affinity groups (one node for the whole group): a group of two or more moves only as a unit,
  its members one right after the other to one node (``algorithms.groups``); single-VE moves
  leave its members where they are, and the validator checks the group shares a node when such
  a run of moves ends;
- anti-affinity groups (different failure domains): a failure domain is an HA pair, or a node
  outside any pair on its own; no move may bring a second member of a group into a domain.
- each VE moves at most once per plan: every move is a real migration.
"""

from __future__ import annotations

import numpy as np

from algorithms.base import Problem
from algorithms.pairs import maintenance


def targets_allowed(problem: Problem) -> np.ndarray:
    """[V, N] bool: must rules and maintenance (a maintenance node is never a target)."""
    allowed = np.asarray(problem.allowed, dtype=bool)
    maint = maintenance(problem)
    return allowed & ~maint[None, :] if maint.any() else allowed


def preferred(problem: Problem) -> np.ndarray | None:
    """[V, N] bool of should rules, rows without a real preference all True; None if none."""
    if problem.preferred is None:
        return None
    pref = np.asarray(problem.preferred, dtype=bool).copy()
    none = ~pref.any(axis=1)
    if not none.all():
        pref[none] = True
        return pref
    return None


def domains(pair: np.ndarray) -> np.ndarray:
    """Failure domain [N] of each node: its pair index, or a domain of its own outside pairs."""
    pair = np.asarray(pair, dtype=np.int64)
    top = int(pair.max()) + 1 if len(pair) else 0
    lone = pair < 0
    out = pair.copy()
    out[lone] = top + np.arange(int(lone.sum()))
    return out


def group_ids(groups: np.ndarray | None, n_ves: int) -> np.ndarray:
    """[V] group ids (-1: none) with singleton groups dropped."""
    if groups is None:
        return np.full(n_ves, -1, dtype=np.int64)
    g = np.asarray(groups, dtype=np.int64).copy()
    if not len(g) or g.max() < 0:
        return g
    counts = np.bincount(g[g >= 0])
    g[(g >= 0) & (counts[np.maximum(g, 0)] < 2)] = -1
    return g


def group_members(groups: np.ndarray) -> list[np.ndarray]:
    """VE indices of each group id 0..G-1 (from ``group_ids``; dropped ids get none)."""
    has = np.flatnonzero(groups >= 0)
    if not len(has):
        return []
    order = has[np.argsort(groups[has], kind="stable")]
    cuts = np.searchsorted(groups[order], np.arange(int(groups.max()) + 2))
    return [order[cuts[i]:cuts[i + 1]] for i in range(len(cuts) - 1)]


def locked(problem: Problem) -> np.ndarray:
    """[V] bool: VEs no single-VE move may take: pinned, or in an affinity group (a group
    moves as a unit, see ``algorithms.groups``)."""
    return ~np.asarray(problem.movable, dtype=bool) | (
        group_ids(problem.affinity, problem.n_ves) >= 0)


def anti_counts(anti: np.ndarray, dom_of_ve: np.ndarray, n_domains: int) -> np.ndarray:
    """[G, D] members of each anti-affinity group in each failure domain."""
    n_groups = int(anti.max()) + 1 if len(anti) and anti.max() >= 0 else 0
    out = np.zeros((n_groups, n_domains), dtype=np.int64)
    has = anti >= 0
    np.add.at(out, (anti[has], dom_of_ve[has]), 1)
    return out


def anti_crowded(problem: Problem) -> np.ndarray:
    """[V] bool: VEs sharing a failure domain with an earlier member of their anti-affinity
    group (the ones that must leave to repair the rule)."""
    anti = group_ids(problem.anti_affinity, problem.n_ves)
    out = np.zeros(problem.n_ves, dtype=bool)
    has = np.flatnonzero(anti >= 0)
    if not len(has):
        return out
    dom = domains(problem.pair)[problem.placement[has]]
    key = anti[has] * (int(dom.max()) + 1) + dom
    _, first = np.unique(key, return_index=True)
    out[has] = True
    out[has[first]] = False
    return out
