"""`lbm check`: failover readiness of every pair, as a monitoring plugin (Nagios/Icinga)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from lbm.context import State, pass_state

if TYPE_CHECKING:
    from lbvm.config import Config
    from lbvm.hastate import PairState

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
# Worst first: a pair that cannot fail over, then one we cannot vouch for, then a warning.
SEVERITY = (CRITICAL, UNKNOWN, WARNING, OK)


@dataclass(frozen=True)
class PairCheck:
    pair: str
    nodes: tuple[str, ...]
    code: int
    problems: tuple[str, ...]
    headroom: dict[str, float] = field(default_factory=dict)  # resource -> spare share
    ha: str = "unknown"


def worst(codes: list[int]) -> int:
    return next((c for c in SEVERITY if c in codes), OK)


def _headroom(state: State) -> tuple[dict[str, dict[str, float]], str | None]:
    """pair -> resource -> spare share of what its survivor may carry; or why unknown."""
    import numpy as np

    from algorithms.pairs import pair_limit
    from lbvm.errors import LbvmError
    from lbvm.model import build_problem
    from lbvm.validate import headroom

    try:
        problem = build_problem(state.engine, state.config)
    except LbvmError as exc:
        return {}, str(exc)
    room, limit = headroom(problem), pair_limit(problem)
    names = state.config.pair_of()
    out: dict[str, dict[str, float]] = {}
    for p in range(room.shape[0]):
        first = int(np.flatnonzero(problem.pair == p)[0])
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(limit[p] > 0, room[p] / limit[p], 0.0)
        out[names.get(problem.nodes[first], f"#{p}")] = {
            r: float(share[k]) for k, r in enumerate(problem.resources)
        }
    return out, None


def judge_pairs(
    config: Config,
    states: dict[str, PairState],
    room: dict[str, dict[str, float]],
    room_error: str | None,
    warn: float,
) -> list[PairCheck]:
    """One PairCheck per configured pair (pure: no store)."""
    out = []
    for p in config.pairs:
        s = states.get(p.name)
        share = room.get(p.name, {})
        problems: list[str] = []
        codes = [OK]
        if s is None or not s.known:
            codes.append(UNKNOWN)
            problems.append("no HA state reported (run lblog collect with --drbd/--cluster)")
        elif s.reasons:
            codes.append(CRITICAL)
            problems.append("degraded: " + s.text())
        if room_error is not None:
            codes.append(UNKNOWN)
            problems.append(f"capacity unknown: {room_error}")
        for res, value in share.items():
            if value < 0:
                codes.append(CRITICAL)
                problems.append(f"survivor short of {res} ({value:+.0%})")
            elif value < warn:
                codes.append(WARNING)
                problems.append(f"{res} headroom {value:.0%} < {warn:.0%}")
        out.append(PairCheck(p.name, p.nodes, worst(codes), tuple(problems), share,
                             s.state if s is not None else "unknown"))
    return out


def status_line(checks: list[PairCheck], warn: float) -> tuple[int, str]:
    """(exit code, the plugin's one line with perfdata)."""
    code = worst([c.code for c in checks]) if checks else UNKNOWN
    bad = [c for c in checks if c.code != OK]
    if not checks:
        text = "no pairs configured"
    elif not bad:
        text = f"all {len(checks)} pairs can fail over"
    else:
        shown = [f"{c.pair} {NAMES[c.code]}: {c.problems[0]}" for c in bad[:3]]
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        text = f"{len(bad)} of {len(checks)} pairs not ready: " + "; ".join(shown) + more
    perf = []
    for c in checks:
        for res, value in c.headroom.items():
            perf.append(f"{c.pair}_{res}_headroom={value:.4f};{warn:g};0")
        perf.append(f"{c.pair}_ha_ok={1 if c.ha == 'healthy' else 0};;1")
    line = f"LBVM {NAMES[code]} - {text.replace('|', '/')}"
    return code, line + (" | " + " ".join(perf) if perf else "")


@click.command()
@click.option("--warning", "warn", type=float, default=0.1, show_default=True,
              help="WARNING when a pair's spare share of what its survivor may carry is "
                   "below this (0.1 = 10%).")
@click.option("--format", "fmt", type=click.Choice(["nagios", "json"]), default="nagios",
              show_default=True, help="nagios: one status line with perfdata; json: details.")
@click.pass_context
@pass_state
def check(state: State, ctx: click.Context, warn: float, fmt: str) -> None:
    """Check that every HA pair can fail over now, as a monitoring plugin.

    Per pair: the cluster manager (both nodes online, not standby or unclean, quorum, no
    failed actions), replication (every DRBD volume Connected and UpToDate on both sides,
    no resync) and capacity headroom (the weaker node could carry the whole pair within
    [balance].failover_overcommit). Exit codes: 0 OK, 1 WARNING (headroom below
    --warning), 2 CRITICAL (a pair is degraded or its survivor would be short), 3 UNKNOWN
    (no or stale HA state, no fresh samples, store unreachable). Prints ONE line in the
    Nagios plugin format with perfdata (pairN_cpu_headroom, pairN_mem_headroom as shares,
    pairN_ha_ok); --format json prints every pair's details.

    Example: lbm check --warning 0.2
    """
    from lbvm.errors import LbvmError

    try:
        from lbvm.hastate import as_dict, judge
        from lbvm.store.ha import load

        states = judge(load(state.engine), state.config, time.time())
        room, why = _headroom(state)
    except LbvmError as exc:
        _finish(ctx, fmt, UNKNOWN, f"LBVM UNKNOWN - {exc}".splitlines()[0], [], {})
        return
    checks = judge_pairs(state.config, states, room, why, warn)
    code, line = status_line(checks, warn)
    details = {name: as_dict(s) for name, s in states.items()}
    _finish(ctx, fmt, code, line, checks, details)


def _finish(ctx: click.Context, fmt: str, code: int, line: str, checks: list[PairCheck],
            details: dict[str, Any]) -> None:
    if fmt == "json":
        doc = {
            "status": NAMES[code], "code": code, "summary": line,
            "pairs": [{"pair": c.pair, "nodes": list(c.nodes), "status": NAMES[c.code],
                       "problems": list(c.problems), "headroom": c.headroom,
                       "ha": details.get(c.pair)} for c in checks],
        }
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
    else:
        click.echo(line)
    ctx.exit(code)
