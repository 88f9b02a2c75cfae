"""The report as one self-contained HTML page: inline CSS, plots as PNG data URIs, no
external fonts or scripts, so it opens offline and survives being mailed.

A tiny inline script marks the page once every image has decoded (``data-plots-ok`` on
<body>), so a headless browser test can tell a broken page from a good one.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd

from lbvm.report.data import ReportData, Summary
from lbvm.report.plots import Plot

GIB = float(1 << 30)
MAX_MOVE_ROWS = 50

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2933; background: #f4f6f8; margin: 0; }
header { background: #1f2933; color: #fff; padding: 18px 32px; }
header h1 { margin: 0; font-size: 20px; font-weight: 600; }
header p { margin: 4px 0 0; color: #cbd2d9; font-size: 13px; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 32px 40px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr));
         gap: 12px; margin-bottom: 20px; }
.card { background: #fff; border-radius: 8px; padding: 12px 14px;
        box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.card .label { font-size: 12px; color: #616e7c; text-transform: uppercase;
               letter-spacing: .04em; }
.card .value { font-size: 22px; font-weight: 600; margin-top: 2px; }
.card .detail { font-size: 12px; color: #616e7c; }
.bad .value { color: #c62828; } .good .value { color: #2e7d32; }
section { background: #fff; border-radius: 8px; padding: 14px 18px; margin-bottom: 18px;
          box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section h2 { font-size: 16px; margin: 0 0 10px; font-weight: 600; }
section img { width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e4e7eb; }
th { color: #616e7c; font-weight: 600; font-size: 12px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state-done { color: #2e7d32; } .state-failed { color: #c62828; font-weight: 600; }
.notes { color: #8d6e00; background: #fff8e1; border-radius: 6px; padding: 8px 12px; }
.empty { color: #616e7c; font-style: italic; }
"""

SCRIPT = """
(function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.every(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-plots", String(imgs.length));
  document.body.setAttribute("data-plots-ok", ok ? "yes" : "no");
})();
"""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M UTC")


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _card(label: str, value: str, detail: str = "", tone: str = "") -> str:
    return (f'<div class="card {tone}"><div class="label">{_e(label)}</div>'
            f'<div class="value">{_e(value)}</div><div class="detail">{_e(detail)}</div></div>')


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def cards(s: Summary) -> str:
    trend = ""
    tone = ""
    if s.score_start is not None and s.score_end is not None:
        trend = f"start of window {_score(s.score_start)}"
        tone = "good" if s.score_end <= s.score_start else "bad"
    moves = f"{s.moves_done} / {s.moves_failed}"
    parts = [
        _card("Cluster", f"{s.nodes} nodes", f"{s.pairs} HA pairs, {s.ves} VEs"),
        _card("Imbalance now", _score(s.score_end), trend, tone),
        _card("Pairs without failover", str(len(s.no_failover)),
              ", ".join(s.no_failover) or "every pair can fail over",
              "bad" if s.no_failover else "good"),
        _card("Moves done / failed", moves,
              f"{s.moves_other} other, {s.runs} runs", "bad" if s.moves_failed else ""),
        _card("Beancounter failures", str(s.failcnt_events), "samples where failcnt grew",
              "bad" if s.failcnt_events else ""),
        _card("Quarantined files", str(s.quarantined), "unreadable spool files",
              "bad" if s.quarantined else ""),
    ]
    return '<div class="cards">' + "".join(parts) + "</div>"


def _table(frame: pd.DataFrame, columns: Sequence[tuple[str, str]]) -> str:
    """columns: (column, kind) with kind text | num | bytes | cores | time | state."""
    head = "".join(f"<th>{_e(c)}</th>" for c, _ in columns)
    rows = []
    for rec in frame.to_dict("records"):
        cells = []
        for col, kind in columns:
            v = rec.get(col)
            if v is None or (isinstance(v, float) and v != v):
                cells.append('<td class="num">–</td>')
            elif kind == "bytes":
                cells.append(f'<td class="num">{float(v) / GIB:.1f} GiB</td>')
            elif kind == "cores":
                cells.append(f'<td class="num">{float(v):.2f}</td>')
            elif kind == "num":
                cells.append(f'<td class="num">{_e(v)}</td>')
            elif kind == "time":
                cells.append(f"<td>{_e(_iso(float(v)))}</td>")
            elif kind == "state":
                cells.append(f'<td class="state-{_e(v)}">{_e(v)}</td>')
            else:
                cells.append(f"<td>{_e(v)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def _plot_section(plots: dict[str, Plot], name: str, title: str, empty: str) -> str:
    plot = plots.get(name)
    if plot is None:
        return _section(title, f'<p class="empty">{_e(empty)}</p>')
    img = f'<img src="{data_uri(plot.png)}" alt="{_e(plot.title)}">'
    return _section(title, img)


def page(data: ReportData, plots: Sequence[Plot], *, title: str = "LBVM report") -> str:
    """The whole HTML document."""
    s = data.summary
    by_name = {p.name: p for p in plots}
    hours = (s.end - s.start) / 3600
    body = [cards(s)]
    if data.notes:
        body.append('<p class="notes">' + "<br>".join(_e(n) for n in data.notes) + "</p>")
    body.append(_plot_section(by_name, "utilisation", "Node utilisation",
                              "No samples in the window."))
    body.append(_plot_section(by_name, "headroom", "Pair failover headroom",
                              "Not available (see the note above)."))
    body.append(_plot_section(by_name, "imbalance", "Imbalance trend",
                              "No samples in the window."))
    moves = data.moves.tail(MAX_MOVE_ROWS).iloc[::-1]
    when = moves["finished_at"].fillna(moves["started_at"]).fillna(moves["planned_at"])
    moves = moves.assign(time=when)
    move_table = (_table(moves, [("time", "time"), ("ve", "text"), ("src", "text"),
                                 ("dst", "text"), ("kind", "text"), ("state", "state"),
                                 ("exit_code", "num")])
                  if len(moves) else '<p class="empty">No moves in the window.</p>')
    timeline = by_name.get("migrations")
    img = (f'<img src="{data_uri(timeline.png)}" alt="{_e(timeline.title)}">'
           if timeline else "")
    body.append(_section("Migrations", img + move_table))
    top = by_name.get("top-ves")
    top_body = (f'<img src="{data_uri(top.png)}" alt="{_e(top.title)}">' if top else "")
    top_body += (_table(data.top_ves, [("ve", "text"), ("node", "text"), ("cpu_p95", "cores"),
                                       ("mem_p95", "bytes"), ("failcnt", "num")])
                 if len(data.top_ves) else '<p class="empty">No VE samples in the window.</p>')
    body.append(_section("Top VEs (p95 over the window)", top_body))
    body.append(_plot_section(by_name, "failcnt", "Beancounter failures",
                              "No beancounter failure counter grew in the window."))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width\"><title>{_e(title)}</title>"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{_e(_iso(s.start))} – {_e(_iso(s.end))} "
        f"({hours:g} h, {s.bucket / 60:.0f}-minute buckets)</p></header>"
        f"<main>{''.join(body)}</main><script>{SCRIPT}</script></body></html>\n"
    )
