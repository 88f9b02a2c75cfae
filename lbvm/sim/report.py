"""An HTML page comparing replays: the metrics table and plots over time per algorithm.

Plots (matplotlib's Agg canvas, no pyplot, PNGs inlined): utilisation spread (std of CPU
utilisation across nodes), share of active nodes overloaded, moves per interval, nodes on.
The page is written to a temporary name and renamed, so a reader never sees half of it.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lbvm.errors import LbvmError
from lbvm.sim.metrics import Metrics, spread
from lbvm.sim.replay import ReplayResult

HOURS = 3600.0


def _series(r: ReplayResult) -> dict[str, np.ndarray]:
    over = (r.util > 1.0 + 1e-9).any(axis=2) & r.active
    on = np.maximum(r.active.sum(axis=1), 1)
    return {
        "std of CPU utilisation across nodes": spread(r.util)[:, 0],
        "share of active nodes overloaded": over.sum(axis=1) / on,
        "moves per interval": r.moves.astype(np.float64),
        "nodes switched on": r.active.sum(axis=1).astype(np.float64),
    }


def _png(title: str, replays: Sequence[ReplayResult]) -> str:
    fig = Figure(figsize=(8, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in replays:
        hours = np.arange(r.util.shape[0]) * r.trace.interval / HOURS
        ax.plot(hours, _series(r)[title], label=r.algorithm, linewidth=1.2)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("hours into the trace", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def page(replays: Sequence[ReplayResult], results: Sequence[Metrics]) -> str:
    """The report as one self-contained HTML string."""
    if not replays:
        raise LbvmError("nothing to report: no replay ran")
    keys = list(results[0].as_dict())
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in m.as_dict().values())
        + "</tr>" for m in results)
    plots = "".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{_png(t, replays)}">'
        "</figure>" for t in _series(replays[0]))
    first = replays[0]
    what = (f"{first.trace.n_ves} VEs, {first.trace.n_steps} intervals of "
            f"{first.trace.interval:g} s, {first.cluster.n_nodes} nodes, scenario "
            f"{first.scenario.name}{', nightly plans' if first.nightly else ''}")
    return ("<!doctype html><html><head><meta charset='utf-8'><title>LBVM simulation</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:right}"
            "</style></head><body><h1>LBVM simulation</h1>"
            f"<p>{html.escape(what)}</p><table><tr>{head}</tr>{body}</table>{plots}"
            "</body></html>\n")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def write_report(path: Path, replays: Sequence[ReplayResult], results: Sequence[Metrics]) -> None:
    text = page(replays, results)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LbvmError(f"{path}: cannot write the report: {exc.strerror or exc}") from None
