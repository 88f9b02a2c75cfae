"""VE samples of one batch made ready to store, on integer codes (lbvm.store.names).

The run keeps, per VE code, the newest stored sample (time, node, CPU counter, its unit,
uptime), loaded from the store once per run when the VE is first met. One sort of the
batch by (VE name, time) then gives the duplicates (the first file wins), each row's
predecessor (the row before it, or the cached sample) and the order the rows go in.
A VE with a row at or before its newest stored sample (a late file) takes the general
path of lbvm.store.series, which asks the store; the run then forgets it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from lbvm.store.names import Names
from lbvm.store.parse import INT_COLUMNS
from lbvm.store.rates import step_rate
from lbvm.store.series import Kind, Latest, Stored, prepare


@dataclass
class Rows:
    """VE sample rows as arrays; nullable integers carry a known mask, floats NaN."""

    ve: np.ndarray  # codes into the run's VE names
    node: np.ndarray  # codes into the run's node names
    ts: np.ndarray
    cpu_hz: np.ndarray
    uptime: np.ndarray
    cpu_used: np.ndarray
    ints: dict[str, tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> Rows:
        return Rows(
            self.ve[index], self.node[index], self.ts[index], self.cpu_hz[index],
            self.uptime[index], self.cpu_used[index],
            {k: (v[index], m[index]) for k, (v, m) in self.ints.items()},
        )  # fmt: skip

    @staticmethod
    def concat(parts: list[Rows]) -> Rows:
        if len(parts) == 1:
            return parts[0]
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        ints = {k: (np.concatenate([p.ints[k][0] for p in parts]),
                    np.concatenate([p.ints[k][1] for p in parts])) for k in INT_COLUMNS}
        return Rows(cat("ve"), cat("node"), cat("ts"), cat("cpu_hz"), cat("uptime"),
                    cat("cpu_used"), ints)  # fmt: skip


@dataclass(frozen=True)
class Ready:
    """A batch's VE rows ready to insert, and what the run and the ves table learn."""

    rows: Rows  # in (VE name, time) order, late VEs' rows last
    duplicates: int
    newest: np.ndarray  # row positions in ``rows``: newest row of each fast-path VE
    first_ts: np.ndarray  # aligned with newest: the VE's oldest row in this batch
    changed: np.ndarray  # aligned with newest: VE new to the store or on another node
    late: Stored | None  # the general path's result (lbvm.store.series)
    late_codes: np.ndarray  # the VEs that took it


class VeCache:
    """Newest stored sample per VE code, for one ingest run."""

    def __init__(self, kind: Kind, ves: Names, nodes: Names) -> None:
        self.kind, self.ves, self.nodes = kind, ves, nodes
        self.loaded = np.zeros(0, dtype=bool)  # asked the store (or stored by this run)
        self.touched = np.zeros(0, dtype=bool)  # stored a fast-path row in this run
        self.ts = np.zeros(0)  # NaN: no sample stored
        self.node = np.zeros(0, dtype=np.int64)
        self.raw = np.zeros(0, dtype=np.int64)
        self.raw_known = np.zeros(0, dtype=bool)
        self.hz = np.zeros(0)  # NaN: unknown
        self.uptime = np.zeros(0)  # NaN: unknown

    def _fit(self) -> None:
        n, had = len(self.ves), len(self.ts)
        if n == had:
            return
        more = n - had
        self.loaded = np.concatenate([self.loaded, np.zeros(more, dtype=bool)])
        self.touched = np.concatenate([self.touched, np.zeros(more, dtype=bool)])
        self.ts = np.concatenate([self.ts, np.full(more, np.nan)])
        self.node = np.concatenate([self.node, np.full(more, -1, dtype=np.int64)])
        self.raw = np.concatenate([self.raw, np.zeros(more, dtype=np.int64)])
        self.raw_known = np.concatenate([self.raw_known, np.zeros(more, dtype=bool)])
        self.hz = np.concatenate([self.hz, np.full(more, np.nan)])
        self.uptime = np.concatenate([self.uptime, np.full(more, np.nan)])

    def load(self, conn: Connection, codes: np.ndarray) -> None:
        """Ask the store about the VEs in ``codes`` not met yet in this run."""
        self._fit()
        unknown = np.unique(codes[~self.loaded[codes]])
        if not len(unknown):
            return
        latest = Latest(self.kind)
        names = pd.Index(self.ves.objects()[unknown], dtype=object)
        latest.load(conn, names)
        found = latest.frame.reindex(names)
        self.loaded[unknown] = True
        self._set(unknown, found)

    def needs_store(self, rows: Rows) -> bool:
        """Whether preparing ``rows`` asks the store: a VE not met yet in this run, or a
        row at or before the newest sample cached (a late file)."""
        self._fit()
        code = rows.ve
        return bool((~self.loaded[code]).any() or (rows.ts <= self.ts[code]).any())

    def _set(self, codes: np.ndarray, frame: pd.DataFrame) -> None:
        """Cache ``frame`` (ts and the kind's cached columns, aligned with codes)."""
        self.ts[codes] = frame["ts"].to_numpy(dtype=np.float64, na_value=np.nan)
        stored = frame["ts"].notna().to_numpy()
        node = np.full(len(codes), -1, dtype=np.int64)
        if stored.any():
            node[stored] = self.nodes.encode(frame["node"][stored].tolist())
        self.node[codes] = node
        raw = frame["cpu_raw"]
        self.raw[codes] = raw.to_numpy(dtype=np.int64, na_value=0)
        self.raw_known[codes] = raw.notna().to_numpy()
        self.hz[codes] = frame["cpu_hz"].to_numpy(dtype=np.float64, na_value=np.nan)
        self.uptime[codes] = frame["uptime"].to_numpy(dtype=np.float64, na_value=np.nan)

    def frame(self, codes: np.ndarray) -> pd.DataFrame:
        """The cached samples of ``codes`` as lbvm.store.series.Latest keeps them."""
        has = ~np.isnan(self.ts[codes])
        node = np.full(len(codes), None, dtype=object)
        node[has] = self.nodes.objects()[self.node[codes][has]]
        data = {
            "ts": self.ts[codes],
            "node": node,
            "cpu_raw": pd.arrays.IntegerArray(self.raw[codes], ~self.raw_known[codes]),
            "cpu_hz": pd.array(self.hz[codes], dtype="Float64").astype("Int64"),
            "uptime": pd.array(self.uptime[codes], dtype="Float64"),
        }
        return pd.DataFrame(data, index=pd.Index(self.ves.objects()[codes], dtype=object))

    def prepare(self, conn: Connection, rows: Rows) -> Ready:
        """Drop duplicates, derive cpu_used, split off late VEs (see the module docstring)."""
        self.load(conn, rows.ve)
        order = np.argsort(rows.ts, kind="stable")
        order = order[np.argsort(self.ves.rank()[rows.ve[order]], kind="stable")]
        rows = rows.take(order)
        code, ts = rows.ve, rows.ts
        repeated = np.zeros(len(rows), dtype=bool)
        repeated[1:] = (code[1:] == code[:-1]) & (ts[1:] == ts[:-1])
        if repeated.any():
            rows = rows.take(~repeated)
            code, ts = rows.ve, rows.ts
        starts = _starts(code)
        sizes = np.diff(np.r_[starts, len(code)])
        late_ve = ts[starts] <= self.ts[code[starts]]  # NaN (nothing stored): False
        late_row = np.repeat(late_ve, sizes)
        fast = rows.take(~late_row)
        fast_starts = _starts(fast.ve)
        fast.cpu_used = self._rates(fast, fast_starts)
        newest = np.r_[fast_starts[1:], len(fast)] - 1 if len(fast_starts) else fast_starts
        first_ts = fast.ts[fast_starts]
        before = self.ts[fast.ve[newest]]
        changed = np.isnan(before) | (self.node[fast.ve[newest]] != fast.node[newest])
        late, late_codes = None, code[starts[late_ve]]
        if len(late_codes):
            late = self._general(conn, rows.take(late_row))
            fast = Rows.concat([fast, self._from_frame(late.rows)])
        dups = int(repeated.sum()) + (late.duplicates if late is not None else 0)
        return Ready(fast, dups, newest, first_ts, changed, late, late_codes)

    def _rates(self, rows: Rows, starts: np.ndarray) -> np.ndarray:
        """cpu_used of rows sorted by (VE, time): against the row before, or the cache."""
        n = len(rows)
        if not n:
            return np.zeros(0)
        raw, known = rows.ints["cpu_raw"]
        prev = np.arange(-1, n - 1)
        first = np.zeros(n, dtype=bool)
        first[starts] = True
        prev[first] = 0
        code = rows.ve
        p_ts = np.where(first, self.ts[code], rows.ts[prev])
        p_raw = np.where(first, self.raw[code], raw[prev])
        p_known = np.where(first, self.raw_known[code] & ~np.isnan(self.ts[code]), known[prev])
        p_hz = np.where(first, self.hz[code], rows.cpu_hz[prev].astype(np.float64))
        p_up = np.where(first, self.uptime[code], rows.uptime[prev])
        with np.errstate(over="ignore"):
            delta = raw - p_raw
        hz = rows.cpu_hz.astype(np.float64)
        ok = known & p_known & ~(rows.uptime < p_up) & (hz == p_hz)  # NaN: no reset seen
        return step_rate(delta, rows.ts - p_ts, hz, ok)

    def _general(self, conn: Connection, rows: Rows) -> Stored:
        codes = np.unique(rows.ve)
        latest = Latest(self.kind)
        latest.frame = self.frame(codes)
        return prepare(conn, self.kind, self._to_frame(rows), latest)

    def _to_frame(self, rows: Rows) -> pd.DataFrame:
        data = {
            "ve": self.ves.objects()[rows.ve],
            "node": self.nodes.objects()[rows.node],
            "ts": rows.ts,
            "cpu_hz": rows.cpu_hz,
            "uptime": pd.array(rows.uptime, dtype="Float64"),
        }
        for k in INT_COLUMNS:
            values, known = rows.ints[k]
            data[k] = pd.arrays.IntegerArray(values, ~known)
        return pd.DataFrame(data)

    def _from_frame(self, frame: pd.DataFrame) -> Rows:
        return Rows(
            self.ves.encode(frame["ve"].tolist()),
            self.nodes.encode(frame["node"].tolist()),
            frame["ts"].to_numpy(dtype=np.float64),
            frame["cpu_hz"].to_numpy(dtype=np.int64),
            frame["uptime"].to_numpy(dtype=np.float64, na_value=np.nan),
            frame["cpu_used"].to_numpy(dtype=np.float64, na_value=np.nan),
            {k: (frame[k].to_numpy(dtype=np.int64, na_value=0), frame[k].notna().to_numpy())
             for k in INT_COLUMNS},
        )  # fmt: skip

    def commit(self, ready: Ready) -> None:
        """After the batch's commit: the fast path's newest rows replace the cached ones;
        late VEs are forgotten (asked again when met again)."""
        rows, at = ready.rows, ready.newest
        code = rows.ve[at]
        self.ts[code] = rows.ts[at]
        self.node[code] = rows.node[at]
        raw, known = rows.ints["cpu_raw"]
        self.raw[code] = raw[at]
        self.raw_known[code] = known[at]
        self.hz[code] = rows.cpu_hz[at]
        self.uptime[code] = rows.uptime[at]
        self.touched[code] = True
        self.loaded[ready.late_codes] = False
        self.touched[ready.late_codes] = False

    def met(self) -> pd.DataFrame:
        """Newest stored sample (index ve; node, ts) of every VE this run stored and
        still caches: their last_seen, written at the end of the run."""
        codes = np.flatnonzero(self.touched & self.loaded & ~np.isnan(self.ts))
        return pd.DataFrame(
            {"node": self.nodes.objects()[self.node[codes]], "ts": self.ts[codes]},
            index=pd.Index(self.ves.objects()[codes], dtype=object),
        )


def _starts(code: np.ndarray) -> np.ndarray:
    """Where each run of equal codes starts (``code`` sorted by VE)."""
    if not len(code):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
