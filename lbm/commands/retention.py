"""`lbm retention`: roll raw samples up into hours and drop what is past retention."""

from __future__ import annotations

import time

import click

from lbm.context import State, pass_state
from lbm.output import emit, output_options


@click.command()
@output_options
@pass_state
def retention(state: State, fmt: str) -> None:
    """Roll raw samples up into hours and drop what is past retention.

    Raw samples older than [store] raw_days are deleted only after their hours are rolled
    up (mean, p95, max per VE and node); rollups older than rollup_days go too. Safe to run
    again at any time: it resumes where it stopped. The monitor's nightly job runs it.

    Example: lbm retention --format json
    """
    from lbvm.store import retention as store_retention

    cfg = state.config.store
    result = store_retention.run(state.engine, time.time(), cfg.raw_days, cfg.rollup_days)
    emit([{
        "hours": result.hours,
        "ve_rollups": result.ve_rollups,
        "node_rollups": result.node_rollups,
        "raw_deleted": result.raw_deleted,
        "node_raw_deleted": result.node_raw_deleted,
        "rollups_deleted": result.rollups_deleted,
        "ledger_deleted": result.ledger_deleted,
    }], fmt)
