"""Clock skew of the nodes against the shared storage.

A spool file says when the node wrote it (``written``, by the node's clock; older agents
only give ``time``, the start of collection, a few milliseconds earlier), and the storage
stamps its mtime by its own clock. Their difference is the node's skew (positive: the node
is ahead). Per node and ingest run the median of its files counts, so one file held back
in the node's backlog (old ``time``, new mtime) does not make a skew of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lbvm.store.events import Event, record_events
from lbvm.store.schema import node_clock

THRESHOLD = 120.0  # seconds; [store] clock_skew_max


class Collector:
    """Per-file skews of one ingest run, by node."""

    def __init__(self) -> None:
        self.nodes: list[str] = []
        self.parts: list[np.ndarray] = []

    def add(self, batch: tuple[list[str], np.ndarray]) -> None:
        nodes, seconds = batch
        self.nodes += nodes
        self.parts.append(np.asarray(seconds, dtype=np.float64))

    def per_node(self) -> pd.DataFrame:
        """Index node; columns skew (median seconds) and files."""
        seconds = np.concatenate(self.parts) if self.parts else np.zeros(0)
        frame = pd.DataFrame({"node": self.nodes, "skew": seconds})
        frame = frame[np.isfinite(frame["skew"].to_numpy())]
        return frame.groupby("node").agg(skew=("skew", "median"), files=("skew", "size"))


def store(
    conn: Connection, collector: Collector, now: float, threshold: float
) -> list[tuple[str, float]]:
    """Write each node's skew (replacing the last one) and one warning event per node
    beyond ``threshold``; return those (node, seconds)."""
    skews = collector.per_node()
    if skews.empty:
        return []
    conn.execute(sa.delete(node_clock).where(node_clock.c.node.in_(list(skews.index))))
    conn.execute(
        sa.insert(node_clock),
        [
            {"node": str(n), "skew": float(r["skew"]), "files": int(r["files"]), "measured_at": now}
            for n, r in skews.iterrows()
        ],
    )
    off = skews[skews["skew"].abs() > threshold]
    found = [(str(n), float(s)) for n, s in off["skew"].items()]
    record_events(
        conn,
        [
            Event(
                "warning",
                "skew",
                node,
                f"node {node}: clock {seconds:+.0f} s off the shared storage's "
                f"(threshold {threshold:g} s); samples are stamped by the node's clock",
                now,
            )
            for node, seconds in found
        ],
    )
    return found


def table(conn: Connection) -> pd.DataFrame:
    """node -> clock_skew (seconds), for node_table."""
    rows = conn.execute(sa.select(node_clock.c.node, node_clock.c.skew)).all()
    return pd.DataFrame(rows, columns=["node", "clock_skew"]).set_index("node")
