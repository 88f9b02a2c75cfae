"""`lbm algorithms`: what is installed to plan with."""

from __future__ import annotations

import click

from lbm.output import emit, output_options


@click.command()
@output_options
def algorithms(fmt: str) -> None:
    """List the placement algorithms that are installed.

    Algorithms are plugins (entry-point group lbvm.algorithms); choose one with
    `lbm plan --algorithm NAME` or [balance].algorithm in the config.

    Example: lbm algorithms --format json
    """
    from algorithms import registry

    emit([{"name": n, "summary": s} for n, s in registry.describe()], fmt)
