"""`lbm export`: the cluster's figures for other tools (Prometheus)."""

from __future__ import annotations

from pathlib import Path

import click

from lbm.context import State, pass_state


@click.command()
@click.option("--prometheus", "prom_file", type=click.Path(dir_okay=False, path_type=Path),
              required=True,
              help="Write node_exporter textfile-collector metrics to this file (*.prom).")
@pass_state
def export(state: State, prom_file: Path) -> None:
    """Write metrics for Prometheus in node_exporter's textfile-collector format.

    The file is written to a temporary name in the same folder and renamed, so
    node_exporter never reads half of it; run it from cron after `lbm ingest`. Metrics:
    lbvm_node_utilisation{node,pair,resource}, lbvm_pair_failover_ok{pair},
    lbvm_pair_headroom{pair,resource} (spare share of what the survivor may carry),
    lbvm_imbalance_score, lbvm_data_fresh, lbvm_ves{node}, lbvm_moves_total{state},
    lbvm_last_sample_timestamp_seconds. With stale samples the first four are left out,
    lbvm_data_fresh is 0 and a warning goes to stderr (exit 0, so the timestamp still
    reaches Prometheus).

    Example: lbm export --prometheus /var/lib/node_exporter/textfile/lbvm.prom
    """
    from lbvm import export as exporter

    metrics = exporter.collect(state.engine, state.config)
    exporter.write_atomic(prom_file, exporter.render(metrics))
    fresh = next(m for m in metrics if m.name == "lbvm_data_fresh").samples[0][1]
    if not fresh:
        click.echo("warning: samples are stale or missing; utilisation, headroom and score "
                   "were left out", err=True)
