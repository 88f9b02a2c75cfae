"""Small helpers shared by the algorithms built on ``State``: the plan, the time profiles."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from algorithms.base import Plan, Problem
from algorithms.state import State


def finish(name: str, problem: Problem, st: State, notes: list[str]) -> Plan:
    """The Plan of a finished State, scored with ``Problem.score`` like every algorithm."""
    return Plan(
        algorithm=name,
        moves=tuple(st.moves),
        score_before=problem.score(),
        score_after=problem.score(st.placement),
        notes=tuple(notes),
    )


def repair_then(
    name: str, problem: Problem, phase: Callable[[State, Problem], list[str]]
) -> Plan:
    """The plan of a plugin that repairs first: evacuations, overloaded nodes and pairs that
    could not fail over (balance.mandatory), then the plugin's own ``phase``."""
    from algorithms.balance import mandatory  # balance imports this module
    from algorithms.pairs import check_shapes

    check_shapes(problem)
    st = State(problem)
    notes: list[str] = []
    if problem.n_ves and problem.n_nodes:
        notes = mandatory(st)
        notes += phase(st, problem)
    return finish(name, problem, st, notes)


def profile_of(problem: Problem) -> np.ndarray:
    """[V, T, R] float32 time profile; the demand as a single step when there is none."""
    if problem.profile is None or np.shape(problem.profile)[:1] != (problem.n_ves,):
        return np.asarray(problem.demand, dtype=np.float32)[:, None, :]
    return np.asarray(problem.profile, dtype=np.float32)


def node_sums(prof: np.ndarray, placement: np.ndarray, n_nodes: int) -> np.ndarray:
    """[N, T, R] summed profile of the VEs on each node (sorted segments, no per-VE loop)."""
    out = np.zeros((n_nodes, *prof.shape[1:]), dtype=np.float32)
    if not len(placement):
        return out
    order = np.argsort(placement, kind="stable")
    where = placement[order]
    starts = np.flatnonzero(np.r_[True, where[1:] != where[:-1]])
    out[where[starts]] = np.add.reduceat(prof[order], starts, axis=0)
    return out


def inverse_capacity(problem: Problem) -> np.ndarray:
    """[N, R] float32 1/capacity (0 where the capacity is 0)."""
    cap = np.asarray(problem.capacity, dtype=float)
    inv = np.where(cap > 0, 1.0 / np.where(cap > 0, cap, 1.0), 0.0)
    return inv.astype(np.float32)
