"""The HA rules of plan validation, in words an operator can act on.

``hastate.apply`` already folds the rules into ``allowed`` (so the shared validator refuses
such moves as "not allowed"); this names the real cause: the target's pair is degraded, or
the VE's mirror is not safe to switch over. Moves are followed in order, as the validator
does, so a VE moved earlier in the plan is judged where it is at that step.
"""

from __future__ import annotations

import numpy as np

from algorithms.base import Plan, Problem

__all__ = ["reasons"]


def _texts(problem: Problem, name: str, size: int) -> tuple[str, ...]:
    values = getattr(problem, name, ())
    return tuple(values) if len(values) == size else ("",) * size


def reasons(problem: Problem, plan: Plan) -> list[str]:
    """Every HA reason to refuse ``plan`` (empty: the HA rules hold)."""
    degraded = problem.degraded
    replicated = problem.replicated
    if degraded is None and replicated is None:
        return []
    n_nodes, n_ves = problem.n_nodes, problem.n_ves
    degraded = np.zeros(n_nodes, bool) if degraded is None else np.asarray(degraded, bool)
    replicated = np.ones(n_ves, bool) if replicated is None else np.asarray(replicated, bool)
    pairs = _texts(problem, "ha_pairs", n_nodes)
    why_node = _texts(problem, "ha_node_reasons", n_nodes)
    why_ve = _texts(problem, "ha_ve_reasons", n_ves)
    ves = {v: i for i, v in enumerate(problem.ves)}
    nodes = {n: i for i, n in enumerate(problem.nodes)}
    where = np.array(problem.placement, dtype=np.int64)
    out: list[str] = []
    for i, m in enumerate(plan.moves):
        v, dst = ves.get(m.ve), nodes.get(m.dst)
        if v is None or dst is None or where[v] == dst:
            continue
        here = int(where[v])
        pair = problem.pair
        same = bool(pair[here] >= 0 and pair[here] == pair[dst])
        if degraded[dst]:
            name = pairs[dst] or f"the pair of {m.dst}"
            detail = f" ({why_node[dst]})" if why_node[dst] else ""
            out.append(f"move {i}: {name} is degraded{detail}: it takes no new VEs")
        elif same and not replicated[v]:
            detail = why_ve[v] or "its replicated storage is not healthy"
            out.append(f"move {i}: VE {m.ve} switchover {problem.nodes[here]}→{m.dst} "
                       f"refused: {detail}")
        where[v] = dst
    return out
