"""One way to print rows: ``--format table|json|csv`` on every listing command.

Units come from column names, the same everywhere:
  *_bytes, mem*, bytes      bytes      table: 1.5 GiB      json/csv: raw integer
  *_util, *_share           fraction   table: 87.5%        json/csv: raw float (0.875)
  cpu*, cpus                cores      table: 2.35         json/csv: raw float
  ts, time, *_at, *_seen    epoch s    table: 2026-01-31 12:00:00Z, json/csv: ISO-8601 UTC
JSON is a list of objects with the column names as keys, null for missing values.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import click

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "json", "csv")
F = TypeVar("F", bound=Callable[..., Any])
Rows: TypeAlias = "pd.DataFrame | Sequence[Mapping[str, Any]]"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def output_options(f: F) -> F:
    """Add ``--format`` (passed to the command as ``fmt``)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table: aligned text in human units; json: raw numbers, UTC ISO-8601 times; csv.",
    )(f)


def kind_of(column: str) -> str:
    """'time', 'bytes', 'share', 'cores' or 'plain', from the column's name."""
    if column in ("ts", "time") or column.endswith(("_at", "_seen", "_time")):
        return "time"
    if column.endswith(("_util", "_share")):
        return "share"
    if column.endswith("_bytes") or column == "bytes" or column.startswith("mem"):
        return "bytes"
    if column.startswith("cpu"):
        return "cores"
    return "plain"


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT, pd.NA-safe enough for scalars
    except (TypeError, ValueError):
        return False


def _plain(value: Any) -> Any:
    """numpy/pandas scalars -> Python scalars; NaN -> None."""
    if _missing(value):
        return None
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
    if isinstance(value, float) and math.isinf(value):
        return None
    return value


def iso(ts: float) -> str:
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def human_bytes(n: float) -> str:
    size = float(n)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _cell(value: Any, kind: str) -> str:
    value = _plain(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) or not isinstance(value, int | float):
        return str(value)
    if kind == "time":
        return iso(value).replace("T", " ")
    if kind == "bytes":
        return human_bytes(value)
    if kind == "share":
        return f"{value * 100:.1f}%"
    if kind == "cores":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _raw(value: Any, kind: str) -> Any:
    value = _plain(value)
    if kind == "time" and isinstance(value, int | float) and not isinstance(value, bool):
        return iso(value)
    return value


def _table_of(rows: Rows, columns: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """(columns, row values) from a DataFrame or a list of dicts."""
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        cols = list(columns) if columns is not None else [str(c) for c in rows.columns]
        data = rows[cols].to_numpy(dtype=object).tolist() if len(rows) else []
        return cols, data
    records = list(rows)
    if columns is not None:
        cols = list(columns)
    else:
        cols = []
        for rec in records:
            cols += [k for k in rec if k not in cols]
    return cols, [[rec.get(c) for c in cols] for rec in records]


def render(rows: Rows, fmt: str, *, columns: Sequence[str] | None = None) -> str:
    """Rows (a DataFrame or a list of dicts) as text in ``fmt``; ends with a newline."""
    cols, data = _table_of(rows, columns)
    kinds = [kind_of(c) for c in cols]
    if fmt == "json":
        docs = [{c: _raw(v, k) for c, v, k in zip(cols, row, kinds, strict=True)} for row in data]
        return to_json(docs)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(cols)
        for row in data:
            values = [_raw(v, k) for v, k in zip(row, kinds, strict=True)]
            writer.writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v
                             for v in values])
        return buf.getvalue()
    if fmt != "table":
        raise click.BadParameter(f"unknown format {fmt!r}", param_hint="--format")
    return _aligned(cols, kinds, data)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _aligned(cols: list[str], kinds: list[str], data: list[list[Any]]) -> str:
    """Plain aligned columns: numbers right-aligned, text left-aligned, '-' for missing."""
    if not data:
        return "(none)\n"
    heads = [c.upper() + (" (cores)" if k == "cores" else "") for c, k in zip(cols, kinds,
                                                                             strict=True)]
    plain = [[_plain(v) for v in row] for row in data]
    cells = [[_cell(v, k) for v, k in zip(row, kinds, strict=True)] for row in plain]
    numeric = [all(r[i] is None or _is_number(r[i]) for r in plain) for i in range(len(cols))]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(heads)]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w)
                 for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(heads), *(line(r) for r in cells)]) + "\n"


def clean(obj: Any) -> Any:
    """A JSON-ready copy: numpy/pandas scalars made plain, NaN and infinities as None."""
    if isinstance(obj, Mapping):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return _plain(obj)


def to_json(obj: Any) -> str:
    """Stable JSON: keys in the order given, indented, NaN as null."""
    return json.dumps(clean(obj), indent=2, allow_nan=False) + "\n"


def record(doc: Mapping[str, Any]) -> dict[str, Any]:
    """One object with its values raw as in JSON output (times ISO-8601, NaN as None)."""
    return {str(k): _raw(v, kind_of(str(k))) for k, v in doc.items()}


def fields(doc: Mapping[str, Any]) -> str:
    """'key  value' lines in table units, for a single object (``lbm show``)."""
    width = max((len(str(k)) for k in doc), default=0)
    return "".join(f"{k:<{width}}  {_cell(v, kind_of(str(k)))}\n" for k, v in doc.items())


def emit(rows: Rows, fmt: str, *, columns: Sequence[str] | None = None) -> None:
    click.echo(render(rows, fmt, columns=columns), nl=False)
