"""The plan of a plugin that repairs first and then follows its own aim, made so that a
second run on its result has nothing to do.

A greedy pass moves each VE at most once and evacuates before it balances, so an
evacuation left stuck for room can become possible only after the plugin's moves; a next
run would make it and then take back moves that had made the room. So evacuations and
repairs are tried again after the plugin's phase while they make progress, and on clusters
of up to ``SETTLE_CELLS`` VEs × nodes the plan is settled (``settle``: planned again on its
own result, then made straight to where it settles), kept when ``keep(settled, first)``
says it is no worse by the plugin's own aim.
"""

from __future__ import annotations

from collections.abc import Callable

from algorithms.balance import mandatory
from algorithms.base import Plan, Problem
from algorithms.common import finish
from algorithms.pairs import check_shapes
from algorithms.settle import settle
from algorithms.shave import ROUNDS
from algorithms.state import State

Phase = Callable[[State, Problem], list[str]]
RETRIES = 3  # repair passes after the phase, while each makes a move
# VEs × nodes up to which plans are settled: settling runs the plan up to ROUNDS more times
# (a run that finds nothing left to do costs a small part of the first)
SETTLE_CELLS = 1_000_000


def settled_plan(name: str, problem: Problem, phase: Phase,
                 keep: Callable[[State, State], bool]) -> Plan:
    """Repairs, ``phase``, repairs again while they move something; settled when small."""
    check_shapes(problem)
    st = State(problem)
    if not (problem.n_ves and problem.n_nodes):
        return finish(name, problem, st, [])
    notes = run(st, problem, phase)
    if st.moves and st.n * problem.n_ves <= SETTLE_CELLS:
        settled = settle(problem, st, lambda nxt: run(nxt, problem, phase), rounds=ROUNDS)
        if settled is not None and keep(settled, st):
            st = settled
            notes.append(f"planned again on its own result (up to {ROUNDS} times) and went "
                         "there directly: each VE moves once, straight to where it settles")
    return finish(name, problem, st, notes)


def run(st: State, problem: Problem, phase: Phase) -> list[str]:
    """Evacuations and repairs, then ``phase``; both again while the phase made room for an
    evacuation or repair that was stuck."""
    notes = mandatory(st)
    own = phase(st, problem)
    later = 0
    for _ in range(RETRIES):
        before = len(st.moves)
        mandatory(st)  # its notes repeat the first pass's
        if len(st.moves) == before:
            break
        later += len(st.moves) - before
        own += phase(st, problem)
    if later:
        notes.append(f"the plan made room for {later} more evacuation or repair move(s)")
    return notes + own
