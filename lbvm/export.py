"""Metrics for Prometheus in node_exporter's textfile-collector format, written atomically.

node_exporter reads ``*.prom`` files from its ``--collector.textfile.directory``; a file
being rewritten must never be seen half-written, so it is written to a temporary name in
the same directory, fsynced and renamed over the old one.

Figures are the balancer's own: utilisation, pair headroom and the imbalance score come from
the Problem ``lbm plan`` would use. When that cannot be built (stale or missing samples) those
series are left out, ``lbvm_data_fresh`` is 0 and the rest is still written, so an alert
can fire on the staleness itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lblog import atomic
from lbvm.config import Config
from lbvm.errors import LbvmError
from lbvm.store.queries import newest_sample_time
from lbvm.store.schema import moves, ves

__all__ = ["Metric", "collect", "render", "write_atomic"]


@dataclass(frozen=True)
class Metric:
    """One metric family: name, type, help, and (labels, value) samples."""

    name: str
    kind: str  # gauge | counter
    help: str
    samples: tuple[tuple[tuple[tuple[str, str], ...], float], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    if np.isnan(v):
        return "NaN"
    if np.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text: # HELP and # TYPE, then one line per sample."""
    lines: list[str] = []
    for m in metrics:
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            tags = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{m.name}{{{tags}}} {_value(value)}" if tags
                         else f"{m.name} {_value(value)}")
    return "\n".join(lines) + "\n"


def _counts(engine: Engine) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    with engine.connect() as conn:
        per_node = conn.execute(
            sa.select(ves.c.node, sa.func.count()).where(ves.c.node.is_not(None))
            .group_by(ves.c.node).order_by(ves.c.node)
        ).all()
        per_state = conn.execute(
            sa.select(moves.c.state, sa.func.count()).group_by(moves.c.state)
            .order_by(moves.c.state)
        ).all()
    return [(str(n), int(c)) for n, c in per_node], [(str(s), int(c)) for s, c in per_state]


def collect(engine: Engine, config: Config, *, now: float | None = None) -> list[Metric]:
    """Every metric family, from the store and the Problem the balancer would see."""
    from algorithms.pairs import pair_limit
    from lbvm.hastate import judge
    from lbvm.journal import STATES
    from lbvm.model import build_problem
    from lbvm.store.ha import load as load_ha
    from lbvm.validate import headroom

    pair_of = config.pair_of()
    ha = judge(load_ha(engine), config, now)
    per_node, per_state = _counts(engine)
    states = dict(per_state)
    newest = newest_sample_time(engine)
    out: list[Metric] = []
    try:
        problem = build_problem(engine, config, now=now)
    except LbvmError:
        problem = None
    if problem is not None:
        util = problem.utilisation()
        room = headroom(problem)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(pair_limit(problem) > 0, room / pair_limit(problem), np.nan)
        firsts = [int(np.flatnonzero(problem.pair == p)[0]) for p in range(room.shape[0])]
        pairs = [pair_of.get(problem.nodes[i], f"#{p}") for p, i in enumerate(firsts)]
        res = problem.resources
        out += [
            Metric("lbvm_node_utilisation", "gauge",
                   "Load over capacity of each node, as the balancer sees it (0-1).",
                   tuple(((("node", n), ("pair", pair_of.get(n, "")), ("resource", r)),
                          float(util[i, k]))
                         for i, n in enumerate(problem.nodes) for k, r in enumerate(res))),
            Metric("lbvm_pair_failover_ok", "gauge",
                   "1 when the weaker node of the pair could carry all of its VEs and the "
                   "pair is not degraded (see lbvm_pair_degraded).",
                   tuple(((("pair", p),), float((room[i] >= 0).all() and not (
                       p in ha and ha[p].known and ha[p].reasons)))
                         for i, p in enumerate(pairs))),
            Metric("lbvm_pair_headroom", "gauge",
                   "Spare share of what the pair's survivor may carry; negative: no failover.",
                   tuple(((("pair", p), ("resource", r)), float(share[i, k]))
                         for i, p in enumerate(pairs) for k, r in enumerate(res))),
            Metric("lbvm_imbalance_score", "gauge",
                   "Weighted standard deviation of node utilisation (0 is even).",
                   (((), problem.score()),)),
        ]
    out += [
        Metric("lbvm_pair_ha_ok", "gauge",
               "1 when the pair's HA state is healthy, 0 when degraded, NaN when unknown.",
               tuple(((("pair", name),), 1.0 if s.healthy else 0.0 if s.known else float("nan"))
                     for name, s in ha.items())),
        Metric("lbvm_pair_degraded", "gauge",
               "1 per reason a pair is degraded (without failover): node, DRBD, cluster.",
               tuple(((("pair", name), ("node", r.node or ""), ("reason", r.text)), 1.0)
                     for name, s in ha.items() for r in s.reasons)),
        Metric("lbvm_data_fresh", "gauge",
               "1 when the samples are fresh enough to plan on, else 0.",
               (((), 1.0 if problem is not None else 0.0),)),
        Metric("lbvm_ves", "gauge", "VEs the store places on each node.",
               tuple(((("node", n),), float(c)) for n, c in per_node)),
        Metric("lbvm_moves_total", "counter", "Journalled moves by state, ever.",
               tuple(((("state", s),), float(states.get(s, 0)))
                     for s in (*STATES, *sorted(set(states) - set(STATES))))),
        Metric("lbvm_last_sample_timestamp_seconds", "gauge",
               "Time of the newest sample in the store (Unix seconds).",
               (((), float(newest) if newest is not None else float("nan")),)),
    ]
    return out


def write_atomic(path: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        atomic.write_atomic(Path(path), raw, mode=mode)
    except OSError as exc:
        raise LbvmError(f"{path}: cannot write there ({exc.strerror})") from None
