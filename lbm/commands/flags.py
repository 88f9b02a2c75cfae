"""`lbm add`, `lbm remove`, `lbm pin`, `lbm unpin`: what LBVM may move."""

from __future__ import annotations

import time

import click

from lbm.context import State, pass_state


def _set(state: State, ve: str, what: str, **flags: bool) -> None:
    """Change one VE's flags and record it in the event log, in one transaction."""
    from lbvm.store.events import record_event
    from lbvm.store.queries import set_flags

    with state.engine.begin() as conn:
        set_flags(conn, ve, **flags)
        record_event(conn, "info", "operator", ve, f"VE {ve} {what}")
    click.echo(f"VE {ve} {what}")


@click.command()
@click.argument("veid")
@click.option("--node", help="Register a VE the store has never seen, as running on NODE.")
@pass_state
def add(state: State, veid: str, node: str | None) -> None:
    """Put a VE under balancing (the balancer may move it).

    A VE the store has never seen is an error unless --node names the node of a configured
    pair it runs on; it is then registered (its samples arrive with the next ingest).

    Example: lbm add 101
    """
    import sqlalchemy as sa

    from lbvm.errors import NotFound
    from lbvm.ids import check_host, check_ve
    from lbvm.store.events import record_event
    from lbvm.store.queries import get_ve
    from lbvm.store.schema import ves

    try:
        get_ve(state.engine, veid)
    except NotFound:
        if node is None:
            raise NotFound(f"unknown VE {veid!r}: the store has never seen it "
                           "(give --node NODE to register it)") from None
        check_ve(veid)
        check_host(node)
        if node not in state.config.pair_of():
            raise NotFound(f"node {node!r} is not a node of a configured pair") from None
        with state.engine.begin() as conn:
            conn.execute(sa.insert(ves).values(ve=veid, node=node, balanced=True, pinned=False,
                                               first_seen=time.time()))
            record_event(conn, "info", "operator", veid, f"VE {veid} registered on {node}")
        click.echo(f"VE {veid} registered on {node} and under balancing")
        return
    _set(state, veid, "is under balancing", balanced=True)


@click.command()
@click.argument("veid")
@pass_state
def remove(state: State, veid: str) -> None:
    """Take a VE out of balancing (the balancer leaves it where it is).

    Its samples are still kept and shown; `lbm add` brings it back. Nothing is deleted.

    Example: lbm remove 101
    """
    _set(state, veid, "is out of balancing", balanced=False)


@click.command()
@click.argument("veid")
@pass_state
def pin(state: State, veid: str) -> None:
    """Pin a VE to its node: no plan, drain or manual move will take it away.

    Example: lbm pin 101
    """
    _set(state, veid, "is pinned", pinned=True)


@click.command()
@click.argument("veid")
@pass_state
def unpin(state: State, veid: str) -> None:
    """Unpin a VE so plans may move it again.

    Example: lbm unpin 101
    """
    _set(state, veid, "is unpinned", pinned=False)
