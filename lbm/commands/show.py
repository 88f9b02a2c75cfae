"""`lbm show VEID`: one VE's flags, recent use and journalled moves."""

from __future__ import annotations

import time
from typing import Any

import click

from lbm.context import State, pass_state
from lbm.output import emit, fields, output_options, record, to_json
from lbm.params import DURATION

MOVE_COLUMNS = ["id", "run_id", "planned_at", "src", "dst", "kind", "state", "exit_code",
                "reason"]


def ve_doc(state: State, veid: str, window: float) -> dict[str, Any]:
    """The stable JSON document of `lbm show`."""
    import sqlalchemy as sa

    from lbvm import journal
    from lbvm.store.queries import get_ve, ve_stats
    from lbvm.store.schema import ve_samples
    from lbvm.switchover import steps_frame

    row = get_ve(state.engine, veid)
    end = time.time()
    stats = ve_stats(state.engine, start=end - window, end=end)
    c = ve_samples.c
    with state.engine.connect() as conn:
        count, first, last, peak = conn.execute(
            sa.select(sa.func.count(), sa.func.min(c.ts), sa.func.max(c.ts),
                      sa.func.max(c.cpu_used))
            .where(c.ve == veid, c.ts > end - window, c.ts <= end)
        ).one()
    figures = stats.loc[veid].to_dict() if veid in stats.index else {}
    node = row["node"]
    moves = journal.moves_frame(state.engine, ve=veid)
    return {
        "ve": veid,
        "node": node,
        "pair": state.config.pair_of().get(str(node)) if node else None,
        "balanced": bool(row["balanced"]),
        "pinned": bool(row["pinned"]),
        "first_seen": row["first_seen"],
        "last_seen": row["last_seen"],
        "window_seconds": window,
        "samples": {
            "count": int(count),
            "first_at": first,
            "last_at": last,
            "cpu": figures.get("cpu"),
            "cpu_p95": figures.get("cpu_p95"),
            "cpu_max": peak,
            "mem_bytes": figures.get("mem_bytes"),
            "mem_p95": figures.get("mem_p95"),
            "disk_bytes": figures.get("disk_bytes"),
            "failcnt_delta": figures.get("failcnt_delta"),
        },
        "moves": moves[MOVE_COLUMNS].to_dict("records"),
        "steps": steps_frame(state.engine, ve=veid).to_dict("records"),
    }


@click.command()
@click.argument("veid")
@click.option("--window", type=DURATION, default=None,
              help="Sample figures over this window (default: [balance].window).")
@output_options
@pass_state
def show(state: State, veid: str, window: float | None, fmt: str) -> None:
    """Show one VE: where it runs, its flags, recent use and every journalled move.

    JSON: {ve, node, pair, balanced, pinned, first_seen, last_seen, window_seconds,
    samples: {count, first_at, last_at, cpu, cpu_p95, cpu_max, mem_bytes, mem_p95,
    disk_bytes, failcnt_delta}, moves: [{id, run_id, planned_at, src, dst, kind, state,
    exit_code, reason}]}; times as ISO-8601 UTC. CSV: the moves.

    Example: lbm show 101 --window 7d
    """
    doc = ve_doc(state, veid, window or state.config.balance.window)
    if fmt == "csv":
        emit(doc["moves"], fmt, columns=MOVE_COLUMNS)
        return
    head = {k: v for k, v in doc.items() if k not in ("samples", "moves")}
    if fmt == "json":
        out = record(head) | {"samples": record(doc["samples"]),
                              "moves": [record(m) for m in doc["moves"]]}
        click.echo(to_json(out), nl=False)
        return
    click.echo(fields(head | doc["samples"]), nl=False)
    click.echo(f"\nMoves: {len(doc['moves'])}")
    if doc["moves"]:
        emit(doc["moves"], "table", columns=MOVE_COLUMNS)
