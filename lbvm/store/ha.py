"""HA-pair state in the store: the latest report of each node, and reading it back.

``ingest_ha`` runs inside the ingest's transaction, so a spool file's samples and its HA
section land together or not at all. Only a node's newest report is kept: a newer one
replaces every row that node reported (set-based: one DELETE per table, bulk inserts).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lblog.ha.report import HaReport, from_doc
from lbvm.store import bulk
from lbvm.store.schema import (
    ha_drbd,
    ha_failures,
    ha_members,
    ha_reports,
    ha_resources,
    ha_ves,
)

TABLES = (ha_members, ha_drbd, ha_resources, ha_failures, ha_ves, ha_reports)


@dataclass(frozen=True)
class HaTables:
    """Every node's latest HA report as frames, one per table (columns as in the schema)."""

    reports: pd.DataFrame
    members: pd.DataFrame
    drbd: pd.DataFrame
    resources: pd.DataFrame
    failures: pd.DataFrame
    ves: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.reports.empty


def _latest(docs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """reporter -> its newest document carrying an ``ha`` key."""
    out: dict[str, Mapping[str, Any]] = {}
    for doc in docs:
        if "ha" in doc:
            old = out.get(doc["node"])
            if old is None or float(doc["time"]) >= float(old["time"]):
                out[doc["node"]] = doc
    return out


def _rows(node: str, ts: float, r: HaReport) -> dict[str, list[dict[str, Any]]]:
    c, d = r.cluster, r.drbd
    report = {
        "reporter": node, "ts": ts, "drbd_status": r.drbd_status, "drbd_detail": r.drbd_detail,
        "drbd_source": d.source if d else None, "cluster_status": r.cluster_status,
        "cluster_detail": r.cluster_detail, "manager": c.manager if c else None,
        "quorum": c.quorum if c else None, "maintenance_mode": c.maintenance_mode if c else None,
    }  # fmt: skip
    members = [
        {"reporter": node, "name": n.name, "online": n.online, "standby": n.standby,
         "unclean": n.unclean, "maintenance": n.maintenance, "shutdown": n.shutdown,
         "pending": n.pending, "flags": ",".join(n.flags)}
        for n in (c.nodes if c else ())
    ]  # fmt: skip
    volumes = [
        {"reporter": node, "resource": v.resource, "volume": v.volume, "minor": v.minor,
         "peer": v.peer, "connection": v.connection, "replication": v.replication,
         "role": v.role, "peer_role": v.peer_role, "disk": v.disk, "peer_disk": v.peer_disk,
         "out_of_sync_kib": v.out_of_sync_kib, "progress_pct": v.progress_pct,
         "finish_s": v.finish_s, "stalled": v.stalled}
        for res in (d.resources if d else ()) for v in res.volumes
    ]  # fmt: skip
    resources = [
        {"reporter": node, "id": x.id, "kind": x.kind, "role": x.role,
         "nodes": ",".join(x.nodes), "failed": x.failed, "managed": x.managed, "grp": x.group}
        for x in (c.resources if c else ())
    ]  # fmt: skip
    failures = [
        {"reporter": node, "node": f.node, "resource": f.resource, "operation": f.operation,
         "message": f.message}
        for f in (c.failures if c else ())
    ]  # fmt: skip
    ves = [
        {"reporter": node, "ve": m.ve, "drbd": m.drbd, "cluster": m.cluster, "source": m.source}
        for m in r.ves
    ]
    return {"ha_reports": [report], "ha_members": members, "ha_drbd": volumes,
            "ha_resources": resources, "ha_failures": failures, "ha_ves": ves}


def ingest_ha(conn: Connection, docs: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
    """Store the ``ha`` sections of decoded spool documents (one or a batch) in the
    caller's transaction; return how many nodes' reports were replaced.

    Documents without ``ha`` are ignored, and so is a report older than the one stored.
    """
    batch = [docs] if isinstance(docs, Mapping) else list(docs)
    latest = _latest(batch)
    if not latest:
        return 0
    query = sa.select(ha_reports.c.reporter, ha_reports.c.ts).where(
        ha_reports.c.reporter.in_(list(latest))
    )
    stored = {str(r): float(t) for r, t in conn.execute(query).all()}
    newer = {n: d for n, d in latest.items() if n not in stored or float(d["time"]) > stored[n]}
    if not newer:
        return 0
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in TABLES}
    for node, doc in newer.items():
        for name, part in _rows(node, float(doc["time"]), from_doc(doc["ha"], node)).items():
            rows[name] += part
    for table in TABLES:
        conn.execute(table.delete().where(table.c.reporter.in_(list(newer))))
        if rows[table.name]:
            bulk.insert_frame(conn, table, _frame(table, rows[table.name]))
    return len(newer)


def _frame(table: sa.Table, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Rows as a frame; integer columns stay integers with gaps (COPY refuses '0.0')."""
    frame = pd.DataFrame(rows, columns=[c.name for c in table.columns])
    for col in table.columns:
        if isinstance(col.type, sa.Integer):
            frame[col.name] = pd.array(frame[col.name].tolist(), dtype="Int64")
    return frame


def load(engine: Engine) -> HaTables:
    """Every node's latest HA report, as frames."""
    frames = {}
    with engine.connect() as conn:
        for table in TABLES:
            result = conn.execute(sa.select(table))
            frames[table.name] = pd.DataFrame(result.all(), columns=list(result.keys()))
    return HaTables(
        reports=frames["ha_reports"],
        members=frames["ha_members"],
        drbd=frames["ha_drbd"],
        resources=frames["ha_resources"],
        failures=frames["ha_failures"],
        ves=frames["ha_ves"],
    )
