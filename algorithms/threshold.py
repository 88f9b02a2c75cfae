"""``threshold``: report only — flag nodes, pairs and VEs over thresholds; plan no moves.

What it optimises: nothing; it tells the operator what needs attention, DRS-style, with a
priority from 1 (act now) to 5 (watch). Each finding is one note in a fixed, parseable form
``priority=<1-5> <kind>=<name> <key>=<value> ...``:

- ``priority=P node=N R=U over W``: node N's utilisation U of resource R is above the warning
  level W = ``WARN_SHARE`` × max_utilisation; P = 1 at or above max_utilisation, then 2–5 as
  U falls from max_utilisation towards W;
- ``priority=1 pair=A+B R=T over L``: the pair could not fail over (total T > limit L);
- ``priority=1 ve=V node=N rule=maintenance|forbidden|anti-affinity``: a must rule is broken;
- ``priority=P ve=V node=N failcnt=+K``: the VE's beancounter failure counters grew by K over
  the window (Problem.failcnt): P = 2 from ``FAILCNT_HIGH`` on, else 3.

What it needs: ``demand``, ``capacity``, ``pair``, the rules and settings; ``failcnt`` when
present. Limits: a snapshot of one window, no trend. Cost in V, N: O(V·R + N·R).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from algorithms.base import Plan, Problem
from algorithms.pairs import check_shapes, pair_limit, pair_load
from algorithms.rules import anti_crowded, targets_allowed

WARN_SHARE = 0.8  # a node is flagged from this share of max_utilisation on
FAILCNT_HIGH = 100  # failcnt growth from which a VE is priority 2


class Threshold:
    """Report-only: flags what is over its threshold, plans nothing."""

    name: ClassVar[str] = "threshold"
    summary: ClassVar[str] = (
        "report only: flags nodes, pairs and VEs over thresholds (and failcnt growth) with "
        "priority 1-5, plans no moves"
    )

    def plan(self, problem: Problem) -> Plan:
        check_shapes(problem)
        notes = findings(problem) if problem.n_nodes else []
        score = problem.score()
        return Plan(self.name, (), score, score, tuple(notes))


def findings(problem: Problem) -> list[str]:
    """Every finding as a parseable note, most urgent first (stable within a priority)."""
    found: list[tuple[int, str]] = []
    res = problem.resources
    u = problem.utilisation()
    limit = np.asarray(problem.settings.max_utilisation, dtype=float)
    warn = WARN_SHARE * limit
    over = u > warn[None, :]
    for n, r in zip(*np.nonzero(over), strict=True):
        frac = (u[n, r] - warn[r]) / max(limit[r] - warn[r], 1e-12)
        prio = 1 if u[n, r] >= limit[r] else int(np.clip(5 - np.floor(frac * 4), 2, 5))
        found.append((prio, f"priority={prio} node={problem.nodes[n]} {res[r]}={u[n, r]:.2f} "
                            f"over {warn[r]:.2f}"))
    load = problem.load()
    pload, plim = pair_load(problem.pair, load), pair_limit(problem)
    for p, r in zip(*np.nonzero(pload > plim * (1 + 1e-9)), strict=True):
        names = "+".join(problem.nodes[m] for m in np.flatnonzero(problem.pair == p))
        found.append((1, f"priority=1 pair={names} {res[r]}={pload[p, r]:.6g} "
                         f"over {plim[p, r]:.6g}"))
    here = problem.placement
    if problem.n_ves:
        allowed = targets_allowed(problem)[np.arange(problem.n_ves), here]
        maint = problem.maintenance[here] if problem.maintenance is not None else None
        crowded = anti_crowded(problem)
        for v in np.flatnonzero(~allowed | crowded):
            rule = ("maintenance" if maint is not None and maint[v] else
                    "forbidden" if not allowed[v] else "anti-affinity")
            found.append((1, f"priority=1 ve={problem.ves[v]} node={problem.nodes[here[v]]} "
                             f"rule={rule}"))
    if problem.failcnt is not None:
        grew = np.asarray(problem.failcnt, dtype=float)
        for v in np.flatnonzero(grew > 0):
            prio = 2 if grew[v] >= FAILCNT_HIGH else 3
            found.append((prio, f"priority={prio} ve={problem.ves[v]} "
                                f"node={problem.nodes[here[v]]} failcnt=+{grew[v]:.0f}"))
    return [text for _, text in sorted(found, key=lambda f: f[0])]
