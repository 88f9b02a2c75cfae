"""`lbm ingest`: load the spool into the store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lbm.context import State, pass_state
from lbm.output import emit, output_options


@click.command()
@click.option(
    "--spool",
    "spool_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Spool folder to read (default: the config's spool).",
)
@click.option("--jobs", type=click.IntRange(0), default=None,
              help="Processes parsing files (0: none; default: [store] ingest_jobs, else 2 "
                   "for large spools).")
@output_options
@pass_state
def ingest(state: State, spool_dir: Path | None, jobs: int | None, fmt: str) -> None:
    """Load new spool files into the store, each file exactly once.

    Reads <spool>/incoming/<node>/*.json, moves loaded files to done/ and unreadable ones to
    quarantine/ (each quarantined file is an event in `lbm log`). Shows a progress bar on a
    terminal; quiet in cron and with --format json. Also writes the configured pairs into
    the store.

    Example: lbm ingest --format json
    """
    from lbvm.store import spoolread
    from lbvm.store.ingest import ingest as run_ingest
    from lbvm.store.queries import sync_nodes

    config = state.config
    engine = state.engine
    folder = spool_dir if spool_dir is not None else config.spool
    jobs = jobs if jobs is not None else config.store.ingest_jobs
    skew = config.store.clock_skew_max
    with engine.begin() as conn:
        sync_nodes(conn, config)
    if fmt == "table" and sys.stderr.isatty():
        total = len(spoolread.scan(folder).files)
        with click.progressbar(length=total, label="ingesting", file=sys.stderr) as bar:
            result = run_ingest(engine, folder, progress=bar.update, jobs=jobs,
                                skew_threshold=skew)
    else:
        result = run_ingest(engine, folder, jobs=jobs, skew_threshold=skew)
    emit(
        [{
            "files": result.files,
            "ve_rows": result.ve_rows,
            "node_rows": result.node_rows,
            "quarantined": result.quarantined,
            "already": result.already,
            "duplicates": result.duplicates,
        }],
        fmt,
    )
