"""`lbm report`: one page for an operator or a daily mail, as text, HTML or PNG plots."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lbm.context import State, pass_state
from lbm.output import iso, render
from lbm.params import DURATION

if TYPE_CHECKING:
    from lbvm.report.data import ReportData

NODE_COLUMNS = ["node", "pair", "ves", "cpu_util", "mem_util", "maintenance", "last_seen"]
MOVE_COLUMNS = ["planned_at", "ve", "src", "dst", "kind", "state", "exit_code"]
TOP_COLUMNS = ["ve", "node", "cpu_p95", "mem_p95", "failcnt"]


@contextmanager
def progress(label: str, steps: int) -> Iterator[Callable[[int], None] | None]:
    """A bar on stderr when it is a terminal; None (quiet) in cron and pipes."""
    if not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=steps, label=label, file=sys.stderr) as bar:
        yield bar.update


def _score(value: float | None) -> str:
    return "unavailable" if value is None else f"{value:.4f}"


def text(state: State, data: ReportData) -> str:
    """The plain-text page."""
    from lbvm import journal
    from lbvm.store.queries import node_table

    config, engine = state.config, state.engine
    s = data.summary
    out = [
        f"LBVM report at {iso(s.end)}, covering the last {(s.end - s.start) / 3600:g} h",
        f"config: {config.path or 'built-in defaults'}",
        "",
        f"cluster: {s.nodes} nodes in {s.pairs} HA pairs, {s.ves} VEs",
        f"imbalance score: {_score(s.score_end)} now, {_score(s.score_start)} at the start "
        "of the window (weighted std of node utilisation; 0 is even)",
        "pairs that could not fail over: " + (", ".join(s.no_failover) or "none"),
        f"moves: {s.moves_done} done, {s.moves_failed} failed, {s.moves_other} other",
        *(f"note: {n}" for n in data.notes),
        "",
        f"Nodes (statistics over {config.balance.window / 3600:g} h)",
        render(node_table(engine, config, window=config.balance.window), "table",
               columns=NODE_COLUMNS).rstrip("\n"),
    ]
    runs = journal.runs_frame(engine, since=s.start)
    counts = runs["status"].value_counts().sort_index()
    detail = ", ".join(f"{k} {v}" for k, v in counts.items())
    out += ["", f"Runs: {len(runs)}" + (f" ({detail})" if detail else "")]
    out += ["", f"Moves: {len(data.moves)}"]
    if len(data.moves):
        out.append(render(data.moves.tail(20), "table", columns=MOVE_COLUMNS).rstrip("\n"))
        if len(data.moves) > 20:
            out.append(f"(the last 20 of {len(data.moves)}; see `lbm history`)")
    out += ["", "Top VEs (p95 over the window)",
            render(data.top_ves, "table", columns=TOP_COLUMNS).rstrip("\n")]
    out += ["", f"Beancounter failures: {s.failcnt_events} sample(s) where failcnt grew"]
    if len(data.failcnt):
        per_ve = data.failcnt.groupby(["ve", "node"])["delta"].sum().reset_index()
        per_ve = per_ve.sort_values("delta", ascending=False, kind="stable").head(10)
        out.append(render(per_ve, "table").rstrip("\n"))
    out += ["", f"Quarantined spool files: {s.quarantined}"]
    if s.quarantined:
        from lbvm.store.events import list_events

        bad = list_events(engine, since=s.start, kind="quarantine", limit=20)
        out.append(render(bad, "table", columns=["ts", "subject", "message"]).rstrip("\n"))
    return "\n".join(out) + "\n"


@click.command()
@click.option("--since", type=DURATION, default="24h", show_default=True,
              help="The window: plots, runs, moves, failures (e.g. 7d).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write a self-contained HTML page with plots to this file.")
@click.option("--png", "png_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write each plot as a PNG file into this folder.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print the text report.")
@pass_state
def report(state: State, since: float, html_file: Path | None, png_dir: Path | None,
           quiet: bool) -> None:
    """Summarise the cluster: utilisation, score, recent moves, problems.

    Text for a terminal or a daily mail from cron: cluster size, the imbalance score now
    and at the start of the window, pairs that could not fail over, moves done and failed,
    node utilisation (over [balance].window), runs, moves, top VEs, beancounter failures and
    quarantined spool files over --since.

    --html FILE writes one self-contained page (inline CSS, plots embedded as PNG data
    URIs, no external fonts or scripts; it opens offline): a node utilisation heatmap, pair
    failover headroom, the imbalance trend, a migration timeline, top VEs and beancounter
    failures. --png DIR writes the same plots as files (utilisation.png, headroom.png,
    imbalance.png, migrations.png, top-ves.png, failcnt.png; a plot with no data is not
    written). Shows a progress bar on a terminal.

    Example: lbm report --since 7d --html /var/www/lbvm/report.html --quiet
    """
    from lbvm.export import write_atomic
    from lbvm.report import data as report_data

    engine, config = state.engine, state.config
    want_plots = html_file is not None or png_dir is not None
    with progress("reading the store", report_data.STEPS + (2 if want_plots else 0)) as step:
        data = report_data.collect(engine, config, since=since, now=time.time(), progress=step)
        if want_plots:
            from lbvm.report import html, plots

            made = plots.render_all(data)
            if step:
                step(1)
            if html_file is not None:
                write_atomic(html_file, html.page(data, made))
            if png_dir is not None:
                png_dir.mkdir(parents=True, exist_ok=True)
                for plot in made:
                    write_atomic(png_dir / f"{plot.name}.png", plot.png)
            if step:
                step(1)
    if not quiet:
        click.echo(text(state, data), nl=False)
