"""Order a plan's moves in waves that touch different units, so an executor running moves in
parallel is not held up by chains of moves that wait on each other.

The executor starts a move once the earlier moves touching its source or target pair have
ended (``lbvm.executor.dependencies``). A greedy plan lists moves by source, so move k into
node d waits for move k-1 out of its source, which waited for another into d, and so on: one
long chain. Waves keep that chain as short as the most moves any unit (a pair, or a node
outside pairs) takes part in.

Why the order stays valid: every limit the validator checks after each step (node and pair
capacity, failover headroom, anti-affinity, which are per failure domain) depends only on the
moves touching that unit. A unit that only sends (or only receives) VEs goes through loads
that fall (or rise) monotonically between its first and its last state in any order, and
both ends are states of the original plan; a unit that both sends and receives keeps its
moves in their original order, so it goes through the same states. A VE's moves keep their
order too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from algorithms.base import Move


def in_waves(moves: Sequence[Move], unit_of: dict[str, int]) -> list[Move]:
    """The moves in waves: each wave takes, in plan order, every move none of whose units
    the wave has used yet and whose predecessors (earlier moves of the same VE, or of a unit
    that both sends and receives) are placed."""
    n = len(moves)
    if n < 3:
        return list(moves)
    src = np.array([unit_of[m.src] for m in moves])
    dst = np.array([unit_of[m.dst] for m in moves])
    mixed = set(src.tolist()) & set(dst.tolist())
    before: list[set[int]] = [set() for _ in range(n)]
    last: dict[tuple[str, object], int] = {}
    for i, m in enumerate(moves):
        keys: list[tuple[str, object]] = [("ve", m.ve)]
        keys += [("unit", u) for u in {int(src[i]), int(dst[i])} if u in mixed]
        for k in keys:
            if k in last:
                before[i].add(last[k])
            last[k] = i
    placed = np.zeros(n, dtype=bool)
    out: list[Move] = []
    while len(out) < n:
        used: set[int] = set()
        wave = []
        for i in np.flatnonzero(~placed).tolist():
            s, d = int(src[i]), int(dst[i])
            if s in used or d in used or not all(placed[j] for j in before[i]):
                continue
            wave.append(i)
            used |= {s, d}
        placed[wave] = True  # a wave is never empty: the first unplaced move has no
        out += [moves[i] for i in wave]  # unplaced predecessor
    return out
