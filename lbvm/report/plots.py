"""The report's plots, rendered server-side with matplotlib's Agg canvas into PNG bytes.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot): no global state,
no GUI backend, safe in a cron job or the monitor's threads. A plot with nothing to show
is left out (the page says so) rather than drawn empty.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, PercentFormatter

from lbvm.report.data import ReportData

DPI = 110
GIB = float(1 << 30)
INK = "#1f2933"
GRID = "#d9dee3"
STATE_COLOURS = {"done": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e",
                 "unknown": "#ef6c00", "running": "#1565c0", "planned": "#6a1b9a"}
RESOURCE_COLOURS = {"cpu": "#1565c0", "mem": "#ef6c00"}
MAX_TIMELINE_ROWS = 40


@dataclass(frozen=True)
class Plot:
    """One rendered plot: a file-name stem, its title, and the PNG."""

    name: str
    title: str
    png: bytes


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def _style(ax: Axes) -> None:
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(colors=INK, labelsize=8)


def _clock(ts: float, span: float) -> str:
    when = datetime.fromtimestamp(float(ts), UTC)
    return when.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")


_STEPS = (300, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400,
          7 * 86400)


def _time_axis(ax: Axes, start: float, end: float, pad: bool = False) -> None:
    """UTC clock ticks at a round step, about six to ten of them."""
    span = max(end - start, 1.0)
    step = next((s for s in _STEPS if span / s <= 10), _STEPS[-1])
    first = math.ceil(start / step) * step
    ax.xaxis.set_major_locator(FixedLocator(np.arange(first, end + 1, step).tolist()))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: _clock(x, span)))
    margin = span * 0.02 if pad else 0.0
    ax.set_xlim(start - margin, end + margin)
    ax.set_xlabel("time (UTC)", fontsize=8, color=INK)


def _shown(data: ReportData) -> tuple[float, float]:
    """The span plotted: from the first bucket with data (or the first move) to the end."""
    s = data.summary
    cols = data.cpu_util.columns.to_numpy(dtype=float)
    begin = float(cols[0]) if len(cols) else s.start
    if len(data.moves):
        begin = min(begin, float(data.moves["planned_at"].min()))
    return max(begin, s.start), s.end


def heatmap(data: ReportData) -> Plot | None:
    """Nodes x time, cpu and memory utilisation side by side in one figure."""
    if data.cpu_util.empty or not data.cpu_util.notna().to_numpy().any():
        return None
    s = data.summary
    nodes = list(data.cpu_util.index)
    cols = data.cpu_util.columns.to_numpy(dtype=float)
    left, right = float(cols[0]), float(cols[-1]) + s.bucket
    height = 1.6 + 0.28 * len(nodes)
    fig = _figure(11, min(height * 2, 16))
    cmap = ListedColormap(_ramp()).with_extremes(bad="#eceff1")
    axes = fig.subplots(2, 1, sharex=True)
    image = None
    for ax, (label, frame) in zip(axes, (("CPU", data.cpu_util), ("Memory", data.mem_util)),
                                  strict=True):
        values = np.ma.masked_invalid(frame.to_numpy(dtype=float))
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, vmin=0,
                          vmax=1, extent=(left, right, len(nodes) - 0.5, -0.5))
        ax.set_yticks(range(len(nodes)), nodes, fontsize=8)
        ax.set_title(f"{label} utilisation per node (mean per {s.bucket / 60:.0f} min)",
                     fontsize=10, color=INK, loc="left")
        ax.tick_params(colors=INK, labelsize=8)
        _time_axis(ax, left, right)
    axes[0].set_xlabel("")
    assert image is not None
    bar = fig.colorbar(image, ax=list(axes), shrink=0.8, format=PercentFormatter(1.0))
    bar.set_label("share of capacity", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return Plot("utilisation", "Node utilisation over time", _png(fig))


def _ramp() -> list[str]:
    """Calm greens for idle through amber to red past 90 %."""
    return ["#e8f5e9", "#c8e6c9", "#a5d6a7", "#81c784", "#66bb6a", "#9ccc65", "#d4e157",
            "#ffee58", "#ffca28", "#ffa726", "#fb8c00", "#f4511e", "#e53935", "#b71c1c"]


def headroom(data: ReportData) -> Plot | None:
    """Spare share of each pair's failover limit now; below zero it could not fail over."""
    frame = data.headroom
    if frame.empty:
        return None
    fig = _figure(11, 1.6 + 0.35 * len(frame))
    ax = fig.add_subplot()
    y = np.arange(len(frame))
    h = 0.38
    for k, res in enumerate(frame.columns):
        vals = frame[res].to_numpy(dtype=float)
        colours = [RESOURCE_COLOURS.get(str(res), INK) if v >= 0 else "#c62828" for v in vals]
        ax.barh(y + (k - 0.5) * h, vals, height=h, color=colours, label=str(res))
    ax.axvline(0, color=INK, linewidth=1)
    ax.set_yticks(y, [str(p) for p in frame.index], fontsize=8)
    ax.invert_yaxis()
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("spare share of what the survivor may carry (red: cannot fail over)",
                  fontsize=8, color=INK)
    ax.set_title("Pair failover headroom now (cpu, memory)", fontsize=10, color=INK,
                 loc="left")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    _style(ax)
    return Plot("headroom", "Pair failover headroom", _png(fig))


def imbalance(data: ReportData) -> Plot | None:
    trend = data.imbalance.dropna()
    if trend.empty:
        return None
    s = data.summary
    fig = _figure(11, 2.6)
    ax = fig.add_subplot()
    x = trend.index.to_numpy(dtype=float) + s.bucket / 2
    ax.plot(x, trend.to_numpy(), color="#3949ab", linewidth=1.8, marker="o", markersize=2.5)
    ax.fill_between(x, trend.to_numpy(), color="#3949ab", alpha=0.12)
    done = data.moves[data.moves["state"] == "done"]
    for t in done["finished_at"].dropna():
        ax.axvline(float(t), color=STATE_COLOURS["done"], linewidth=0.6, alpha=0.5)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("score (0 = even)", fontsize=8, color=INK)
    ax.set_title("Imbalance: weighted std of node utilisation (green lines: moves done)",
                 fontsize=10, color=INK, loc="left")
    _time_axis(ax, *_shown(data), pad=True)
    _style(ax)
    return Plot("imbalance", "Imbalance trend", _png(fig))


def timeline(data: ReportData) -> Plot | None:
    """One row per move (the latest MAX_TIMELINE_ROWS), a dot at its time, coloured by state."""
    moves = data.moves.tail(MAX_TIMELINE_ROWS)
    if moves.empty:
        return None
    when = moves["finished_at"].fillna(moves["started_at"]).fillna(moves["planned_at"])
    fig = _figure(11, 1.4 + 0.24 * len(moves))
    ax = fig.add_subplot()
    y = np.arange(len(moves))
    start = moves["started_at"].fillna(when).to_numpy(dtype=float)
    ax.hlines(y, start, when.to_numpy(dtype=float), color=GRID, linewidth=3)
    x = when.to_numpy(dtype=float)
    switch = (moves["kind"] == "switchover").to_numpy()
    for state, colour in STATE_COLOURS.items():
        mask = (moves["state"] == state).to_numpy()
        label: str | None = state
        for marker, sel in (("o", mask & switch), ("D", mask & ~switch)):
            if sel.any():
                ax.scatter(x[sel], y[sel], s=28, color=colour, marker=marker, zorder=3,
                           label=label)
                label = None
    labels = (moves["ve"].astype(str) + "  " + moves["src"].astype(str) + " → "
              + moves["dst"].astype(str))
    ax.set_yticks(y, list(labels), fontsize=7)
    ax.invert_yaxis()
    ax.set_title("Migrations (dot: switchover inside a pair, diamond: migration to another "
                 "pair)", fontsize=10, color=INK, loc="left")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _time_axis(ax, *_shown(data), pad=True)
    _style(ax)
    return Plot("migrations", "Migration timeline", _png(fig))


def top_ves(data: ReportData) -> Plot | None:
    top = data.top_ves
    if top.empty:
        return None
    fig = _figure(11, 1.4 + 0.3 * len(top))
    left, right = fig.subplots(1, 2, sharey=True)
    y = np.arange(len(top))
    names = [f"{v} ({n})" for v, n in zip(top["ve"], top["node"].fillna("?"), strict=True)]
    left.barh(y, top["cpu_p95"].fillna(0).to_numpy(dtype=float), color=RESOURCE_COLOURS["cpu"])
    left.set_yticks(y, names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("cores (p95)", fontsize=8, color=INK)
    left.set_title(f"Top {len(top)} VEs by CPU", fontsize=10, color=INK, loc="left")
    right.barh(y, top["mem_p95"].fillna(0).to_numpy(dtype=float) / GIB,
               color=RESOURCE_COLOURS["mem"])
    right.set_xlabel("memory GiB (p95)", fontsize=8, color=INK)
    right.set_title("and their memory", fontsize=10, color=INK, loc="left")
    for ax in (left, right):
        _style(ax)
    return Plot("top-ves", "Top VEs", _png(fig))


def failcnt(data: ReportData) -> Plot | None:
    events = data.failcnt
    if events.empty:
        return None
    per_ve = events.groupby("ve")["delta"].sum().sort_values(ascending=False).head(20)
    shown = events[events["ve"].isin(per_ve.index)]
    rows = {ve: i for i, ve in enumerate(per_ve.index)}
    fig = _figure(11, 1.4 + 0.28 * len(per_ve))
    ax = fig.add_subplot()
    size = 12 + 60 * np.sqrt(shown["delta"].to_numpy(dtype=float) / max(1, shown["delta"].max()))
    ax.scatter(shown["ts"].to_numpy(dtype=float), shown["ve"].map(rows).to_numpy(), s=size,
               color="#c62828", alpha=0.7, zorder=3)
    ax.set_yticks(range(len(per_ve)),
                  [f"{v} (+{int(d)})" for v, d in per_ve.items()], fontsize=8)
    ax.invert_yaxis()
    ax.set_title("Beancounter failures: each dot a sample where failcnt grew (size: by how "
                 "much)", fontsize=10, color=INK, loc="left")
    _time_axis(ax, *_shown(data), pad=True)
    _style(ax)
    return Plot("failcnt", "Beancounter failures", _png(fig))


def render_all(data: ReportData) -> list[Plot]:
    """Every plot that has data, in page order."""
    made = (f(data) for f in (heatmap, headroom, imbalance, timeline, top_ves, failcnt))
    return [p for p in made if p is not None]

