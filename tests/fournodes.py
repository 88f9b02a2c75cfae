"""A hand-made four-node cluster for tests whose numbers can be checked by hand.

Pairs n1+n2 and n3+n4, 10 cores and 10 units of memory each, max_utilisation 0.9,
failover overcommit 2, only cpu weighted.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from algorithms.base import Move, Plan, Problem, Settings

NODES = ("n1", "n2", "n3", "n4")


def problem(cpu: dict[str, float], where: dict[str, str], **kw: object) -> Problem:
    """VEs with these cpu demands on these nodes (memory 0.1 each); kw replaces fields."""
    names = tuple(sorted(cpu))
    settings = Settings(max_utilisation=np.array([0.9, 0.9]),
                        failover_overcommit=np.array([2.0, 2.0]), weights=np.array([1.0, 0.0]))
    base = Problem(
        ves=names, nodes=NODES, resources=("cpu", "mem"),
        demand=np.array([[cpu[v], 0.1] for v in names]),
        capacity=np.full((4, 2), 10.0),
        placement=np.array([NODES.index(where[v]) for v in names]),
        pair=np.array([0, 0, 1, 1]), movable=np.ones(len(names), bool),
        allowed=np.ones((len(names), 4), bool), move_cost=np.zeros((len(names), 2)),
        settings=settings,
    )  # fmt: skip
    return replace(base, **kw)  # type: ignore[arg-type]


def move(ve: str, src: str, dst: str) -> Move:
    """A switchover inside a pair, else a migration."""
    same = (NODES.index(src) < 2) == (NODES.index(dst) < 2)
    return Move(ve, src, dst, "switchover" if same else "migrate")


def plan_of(*moves: Move) -> Plan:
    return Plan("test", moves, 0.0, 0.0)
