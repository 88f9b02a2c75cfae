"""`lbm automation`: a VE's own automation level, which wins over the cluster's."""

from __future__ import annotations

import click

from lbm.context import State, pass_state

LEVELS = ("report", "recommend", "automatic", "default")


@click.command()
@click.argument("veid")
@click.argument("level", type=click.Choice(LEVELS))
@pass_state
def automation(state: State, veid: str, level: str) -> None:
    """Set how the nightly run treats one VE's moves, whatever the cluster's level.

    report: its moves are only logged, never made or stored, not even mandatory ones
    (maintenance evacuation, relief of an overloaded node or a pair that could not fail
    over). recommend: its moves are stored for `lbm plan --apply`. automatic: its moves
    are executed. default: follow [monitor].automation again.

    Example: lbm automation 101 recommend
    """
    import sqlalchemy as sa

    from lbvm.errors import NotFound
    from lbvm.store.events import record_event
    from lbvm.store.schema import ves

    value = None if level == "default" else level
    with state.engine.begin() as conn:
        changed = conn.execute(
            sa.update(ves).where(ves.c.ve == veid).values(automation=value)
        ).rowcount
        if changed != 1:
            raise NotFound(f"unknown VE {veid!r}: the store has never seen it (see `lbm add`)")
        what = (f"follows the cluster's automation level ({state.config.monitor.automation})"
                if value is None else f"is at automation level {value}")
        record_event(conn, "info", "operator", veid, f"VE {veid} {what}")
    click.echo(f"VE {veid} {what}")
