"""Is each HA pair able to fail over now, and is each VE's mirror safe to switch over?

Judged from every node's latest HA report in the store (lbvm.store.ha), with the same
rules as ``lblog.ha.health.pair_health`` (docs/ha-state.md): both nodes usable, quorum,
no cluster maintenance mode, no failed actions or failed/unmanaged resources, every DRBD
volume Connected and UpToDate on both sides with nothing to resync. A node whose report is
older than the HA ``stale_after`` makes its pair degraded (we cannot tell). A pair that
never sent any HA report is "unknown" and not judged: sites without DRBD or a cluster
manager keep planning as before.

``apply`` folds the verdict into a Problem so every algorithm honours it: no VE may be
newly placed on a node of a degraded pair, and a VE whose mirror is not healthy may not
switch over to its partner. The reasons travel with the problem (``HaProblem``) so the
validator can say precisely why a move is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine

from algorithms.base import Problem
from algorithms.pairs import partner
from lbvm.config import Config
from lbvm.store.ha import HaTables, load

__all__ = [
    "HaProblem",
    "HaSettings",
    "PairState",
    "Reason",
    "apply",
    "apply_tables",
    "failover_events",
    "judge",
    "pair_states",
    "settings",
    "ve_replication",
]

_BOOLS = ("online", "standby", "unclean", "maintenance", "shutdown", "pending")
_NODE_WORDS = ("standby", "unclean", "maintenance", "shutdown", "pending")


@dataclass(frozen=True)
class HaSettings:
    """stale_after: an HA report older than this no longer counts (seconds)."""

    stale_after: float = 900.0


def settings(config: Config) -> HaSettings:
    """The ``[ha]`` section when the config has one, else defaults from ``[balance]``."""
    stale = config.ha.stale_after
    return HaSettings(float(stale if stale is not None else config.balance.stale_after))


@dataclass(frozen=True)
class Reason:
    """One problem of a pair; ``node`` is the node it is about (None: the pair as a whole)."""

    node: str | None
    text: str


@dataclass(frozen=True)
class PairState:
    """known: some node of the pair ever reported HA state; healthy: known and no reasons."""

    pair: str
    nodes: tuple[str, str]
    known: bool
    reasons: tuple[Reason, ...] = ()
    reported_at: float | None = None  # the oldest of the pair's fresh reports
    notes: tuple[str, ...] = ()  # layers not judged (a tool absent), for display

    @property
    def healthy(self) -> bool:
        return self.known and not self.reasons

    @property
    def state(self) -> str:
        return "unknown" if not self.known else "healthy" if not self.reasons else "degraded"

    def text(self) -> str:
        return "; ".join(r.text for r in self.reasons)

    def about(self, node: str) -> tuple[Reason, ...]:
        """Reasons that concern ``node``'s partner or the whole pair: what makes ``node``
        unsafe to evacuate (its own problems are not in the way of draining it)."""
        return tuple(r for r in self.reasons if r.node != node)


# -- judging pairs ---------------------------------------------------------------------


def _bools(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.copy()
    for c in columns:
        out[c] = out[c].fillna(False).astype(bool)
    return out


def _volume_text(v: pd.DataFrame) -> pd.Series:
    """One line per unhealthy volume row (vectorised)."""
    name = v["resource"].astype(str)
    vol = v["volume"]
    name = name.where(vol.isna(), name + "/" + vol.astype("Int64").astype(str))
    text = ("drbd " + name + " on " + v["reporter"] + ": " + v["connection"] + " "
            + v["replication"] + " " + v["disk"] + "/" + v["peer_disk"])
    pct = v["progress_pct"]
    text = text.where(pct.isna(), text + " " + pct.map(lambda p: f"{p:.1f}% synced"))
    oos = v["out_of_sync_kib"].fillna(0)
    text = text.where(oos <= 0, text + " oos " + oos.astype("int64").astype(str) + " KiB")
    return text


def _healthy_volumes(drbd: pd.DataFrame) -> pd.Series:
    return (
        (drbd["connection"] == "Connected")
        & (drbd["replication"] == "Established")
        & (drbd["disk"] == "UpToDate")
        & (drbd["peer_disk"] == "UpToDate")
        & (drbd["out_of_sync_kib"].fillna(0) <= 0)
    )


@dataclass(frozen=True)
class _ByReporter:
    """The HA tables as plain records grouped by reporter: read once per judgement, so
    judging P pairs costs O(rows), not O(P x rows)."""

    reports: dict[str, dict[str, Any]]
    members: dict[str, dict[str, dict[str, Any]]]
    failures: dict[str, list[dict[str, Any]]]
    resources: dict[str, list[dict[str, Any]]]
    bad_volumes: dict[str, list[tuple[str, bool, bool, bool]]]  # text, link, local, peer


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def _group(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(str(r["reporter"]), []).append(r)
    return out


def _by_reporter(t: HaTables) -> _ByReporter:
    members = _group(_records(_bools(t.members, _BOOLS)))
    drbd = t.drbd
    bad = drbd[~_healthy_volumes(drbd)] if len(drbd) else drbd
    volumes: dict[str, list[tuple[str, bool, bool, bool]]] = {}
    if len(bad):
        rows = zip(bad["reporter"].astype(str), _volume_text(bad),
                   bad["connection"] != "Connected", bad["disk"] != "UpToDate",
                   bad["peer_disk"] != "UpToDate", strict=True)
        for reporter, text, link, local, peer in rows:
            volumes.setdefault(reporter, []).append((str(text), link, local, peer))
    return _ByReporter(
        reports={str(r["reporter"]): r for r in _records(t.reports)},
        members={k: {str(m["name"]): m for m in v} for k, v in members.items()},
        failures=_group(_records(t.failures)),
        resources=_group(_records(_bools(t.resources, ("failed", "managed")))),
        bad_volumes=volumes,
    )


def _cluster_reasons(g: _ByReporter, reporter: str, nodes: tuple[str, str]) -> list[Reason]:
    rep = g.reports[reporter]
    out: list[Reason] = []
    members = g.members.get(reporter, {})
    for n in nodes:
        m = members.get(n)
        if m is None:
            out.append(Reason(n, f"node {n} unknown to {rep['manager']}"))
            continue
        words = ([] if m["online"] else ["offline"]) + [w for w in _NODE_WORDS if m[w]]
        if words:
            out.append(Reason(n, f"node {n} {' '.join(words)}"))
    if rep["quorum"] is not None and rep["quorum"] == 0:
        out.append(Reason(None, f"cluster has no quorum (seen from {reporter})"))
    if rep["maintenance_mode"] == 1:
        out.append(Reason(None, "cluster in maintenance mode"))
    for f in g.failures.get(reporter, []):
        node = None if f["node"] is None else str(f["node"])
        if node is None or node in nodes:
            what = f"failed {f['operation'] or 'action'} of {f['resource'] or 'fencing'} on {node}"
            out.append(Reason(node, f"{what}: {f['message']}"))
    for r in g.resources.get(reporter, []):
        running = [x for x in str(r["nodes"] or "").split(",") if x]
        if running and not set(running) & set(nodes):
            continue
        if r["failed"]:
            where = ", ".join(running) or "no node"
            out.append(Reason(None, f"resource {r['id']} failed on {where}"))
        elif not r["managed"]:
            out.append(Reason(None, f"resource {r['id']} not managed"))
    return out


def _drbd_reasons(g: _ByReporter, reporter: str, mate: str) -> list[Reason]:
    out = []
    for text, link, local, peer in g.bad_volumes.get(reporter, []):
        who = None if link else reporter if local else mate if peer else None
        out.append(Reason(who, text))
    return out


def _judge_pair(
    g: _ByReporter, name: str, nodes: tuple[str, str], now: float, stale_after: float
) -> PairState:
    reps = [g.reports[n] for n in nodes if n in g.reports]
    if not reps:
        return PairState(name, nodes, False)
    reasons: list[Reason] = []
    notes: list[str] = []
    fresh = [r for r in reps if float(r["ts"]) >= now - stale_after]
    for n in nodes:
        mine = g.reports.get(n)
        if mine is None:
            reasons.append(Reason(n, f"no HA state from {n}"))
        elif float(mine["ts"]) < now - stale_after:
            reasons.append(Reason(n, f"HA state of {n} is {now - float(mine['ts']):.0f} s old"))
    for rep in fresh:
        who = str(rep["reporter"])
        for layer, key in (("DRBD", "drbd"), ("cluster manager", "cluster")):
            status, detail = rep[f"{key}_status"], rep[f"{key}_detail"]
            if status == "failed":
                reasons.append(Reason(who, f"{layer} state of {who} unknown: {detail}"))
            elif status == "absent":
                notes.append(f"{layer} not found on {who}: {detail}")
    for rep in fresh:  # either node's view may see trouble
        if rep["cluster_status"] == "ok":
            reasons += _cluster_reasons(g, str(rep["reporter"]), nodes)
    for rep in fresh:
        if rep["drbd_status"] == "ok":
            who = str(rep["reporter"])
            reasons += _drbd_reasons(g, who, nodes[1] if who == nodes[0] else nodes[0])
    at = min(float(r["ts"]) for r in fresh) if fresh else None
    unique = tuple(dict.fromkeys(reasons))
    return PairState(name, nodes, True, unique, at, tuple(dict.fromkeys(notes)))


def judge(
    tables: HaTables, config: Config, now: float | None = None
) -> dict[str, PairState]:
    """pair name -> its state, for every configured pair."""
    now = time.time() if now is None else float(now)
    stale = settings(config).stale_after
    g = _by_reporter(tables)
    return {p.name: _judge_pair(g, p.name, p.nodes, now, stale) for p in config.pairs}


def pair_states(engine: Engine, config: Config, now: float | None = None) -> pd.DataFrame:
    """One row per configured pair: pair, nodes, state (healthy | degraded | unknown),
    healthy, reasons ('; '-joined), reported_at, notes."""
    states = judge(load(engine), config, now)
    rows = [
        {"pair": s.pair, "nodes": ",".join(s.nodes), "state": s.state, "healthy": s.healthy,
         "reasons": s.text(), "reported_at": s.reported_at, "notes": "; ".join(s.notes)}
        for s in states.values()
    ]
    columns = ["pair", "nodes", "state", "healthy", "reasons", "reported_at", "notes"]
    return pd.DataFrame(rows, columns=columns)


# -- per-VE replication ------------------------------------------------------------------


def _ve_text(v: pd.DataFrame) -> pd.Series:
    """Why a mapped VE's mirror is not safe, one line per volume row (vectorised)."""
    res = "DRBD " + v["resource"].astype(str)
    pct = v["progress_pct"].map(lambda p: "" if p != p or p is None else f" {p:.1f}%")
    link = res + " is " + v["connection"] + " (" + v["disk"] + "/" + v["peer_disk"] + \
        "), not Connected"
    sync = res + " is " + v["replication"] + pct + ", not UpToDate/UpToDate"
    disks = res + " is " + v["disk"] + "/" + v["peer_disk"] + ", not UpToDate/UpToDate"
    oos = res + " has " + v["out_of_sync_kib"].fillna(0).astype("int64").astype(str) + \
        " KiB out of sync"
    return link.where(v["connection"] != "Connected", sync.where(
        v["replication"] != "Established", disks.where(
            (v["disk"] != "UpToDate") | (v["peer_disk"] != "UpToDate"), oos)))


def ve_replication(
    tables: HaTables, ves: pd.DataFrame, config: Config, now: float | None = None
) -> pd.DataFrame:
    """For ``ves`` (columns ve, node: where it runs now): ok and reason per VE.

    The VE's DRBD resource comes from its node's mapping (else its partner's); its
    volumes as its node reports them must all be healthy. An unmapped VE is judged by all
    of its node's volumes. VEs of pairs that never reported HA state are ok (not judged).
    """
    now = time.time() if now is None else float(now)
    stale = settings(config).stale_after
    out = ves[["ve", "node"]].copy().reset_index(drop=True)
    out["ok"] = True
    out["reason"] = ""
    if tables.empty or out.empty:
        return out
    pair_of = config.pair_of()
    mates = {a: b for p in config.pairs for a, b in (p.nodes, p.nodes[::-1])}
    reps = tables.reports.set_index("reporter")
    known_pairs = {pair_of.get(str(r)) for r in reps.index}
    judged = out["node"].map(pair_of).isin(known_pairs - {None})
    fresh = reps["ts"] >= now - stale
    drbd_ok = fresh & (reps["drbd_status"] == "ok")
    node_ok = out["node"].map(drbd_ok).fillna(False).astype(bool)
    unknown = judged & ~node_ok
    out.loc[unknown, "ok"] = False
    out.loc[unknown, "reason"] = "DRBD state of " + out.loc[unknown, "node"] + " unknown"
    # the resource of each VE: its node's mapping, else its partner's
    maps = tables.ves[["reporter", "ve", "drbd"]].dropna(subset=["drbd"])
    own = out.merge(maps, left_on=["node", "ve"], right_on=["reporter", "ve"], how="left")
    mate = out.assign(mate=out["node"].map(mates)).merge(
        maps, left_on=["mate", "ve"], right_on=["reporter", "ve"], how="left")
    out["drbd"] = own["drbd"].fillna(mate["drbd"]).to_numpy()
    vols = tables.drbd.copy()
    vols["healthy"] = _healthy_volumes(vols).to_numpy()
    bad = vols[~vols["healthy"]].copy()
    bad["why"] = _ve_text(bad).to_numpy() if len(bad) else []
    check = judged & node_ok
    # mapped VEs: their resource's volumes on their node
    mapped = check & out["drbd"].notna()
    first_bad = bad.drop_duplicates(["reporter", "resource"]).set_index(["reporter", "resource"])
    keys = pd.MultiIndex.from_arrays([out["node"], out["drbd"].astype(object)])
    why = pd.Series(first_bad["why"].reindex(keys).to_numpy(), index=out.index)
    present = pd.MultiIndex.from_frame(vols[["reporter", "resource"]]) if len(vols) else None
    missing = mapped & ~(keys.isin(present) if present is not None else False)
    failing = mapped & why.notna()
    out.loc[failing, "ok"] = False
    out.loc[failing, "reason"] = why[failing]
    out.loc[missing, "ok"] = False
    out.loc[missing, "reason"] = ("DRBD " + out.loc[missing, "drbd"].astype(str)
                                  + " not reported by " + out.loc[missing, "node"])
    # unmapped VEs: every volume of their node
    node_bad = bad.drop_duplicates("reporter").set_index("reporter")["why"]
    loose = check & out["drbd"].isna()
    why_node = out["node"].map(node_bad)
    hit = loose & why_node.notna()
    out.loc[hit, "ok"] = False
    out.loc[hit, "reason"] = why_node[hit]
    return out.drop(columns=["drbd"])


# -- folding into the Problem ------------------------------------------------------------


@dataclass(frozen=True)
class HaProblem(Problem):
    """A Problem with the HA verdict's reasons, for the validator's messages.

    ha_pairs[N]: each node's pair name; ha_node_reasons[N]: why the node's pair is
    degraded ("" when it is not); ha_ve_reasons[V]: why the VE may not switch over.
    """

    ha_pairs: tuple[str, ...] = field(default=())
    ha_node_reasons: tuple[str, ...] = field(default=())
    ha_ve_reasons: tuple[str, ...] = field(default=())


def apply_tables(
    problem: Problem, tables: HaTables, config: Config, now: float | None = None
) -> HaProblem:
    """``apply`` on HA tables already read (tests, simulations)."""
    states = judge(tables, config, now)
    pair_of = config.pair_of()
    pairs = tuple(pair_of.get(n, "") for n in problem.nodes)
    node_reasons = tuple(
        states[p].text() if p in states and states[p].known and states[p].reasons else ""
        for p in pairs
    )
    degraded = np.array([bool(r) for r in node_reasons], dtype=bool)
    where = pd.DataFrame({"ve": list(problem.ves),
                          "node": [problem.nodes[i] for i in problem.placement]})
    rep = ve_replication(tables, where, config, now)
    replicated = rep["ok"].to_numpy(dtype=bool)
    allowed = problem.allowed.copy()
    v = np.arange(problem.n_ves)
    stay = allowed[v, problem.placement].copy()
    allowed[:, degraded] = False
    allowed[v, problem.placement] = stay  # staying put is not a new placement
    mate = partner(problem.pair)[problem.placement]
    block = ~replicated & (mate >= 0)
    allowed[v[block], mate[block]] = False
    base = {f.name: getattr(problem, f.name) for f in fields(Problem)}
    base.update(allowed=allowed, degraded=degraded, replicated=replicated)
    return HaProblem(**base, ha_pairs=pairs, ha_node_reasons=node_reasons,
                     ha_ve_reasons=tuple(str(x) for x in rep["reason"]))


def apply(
    problem: Problem, engine: Engine, config: Config, now: float | None = None
) -> HaProblem:
    """The problem with degraded[N], replicated[V] filled from the latest HA state and
    folded into allowed[V, N] (see the module docstring)."""
    return apply_tables(problem, load(engine), config, now)


def failover_events(
    tables: HaTables, config: Config, now: float | None = None
) -> list[dict[str, Any]]:
    """Hook events (``failover_broken``) for every degraded pair, with its reasons."""
    return [
        {"event": "failover_broken", "pair": s.pair, "nodes": list(s.nodes),
         "reason": s.text(), "reasons": [r.text for r in s.reasons]}
        for s in judge(tables, config, now).values() if s.known and s.reasons
    ]


def as_dict(state: PairState) -> dict[str, Any]:
    """A PairState as plain JSON-ready values."""
    return {"pair": state.pair, "nodes": list(state.nodes), "state": state.state,
            "healthy": state.healthy, "reasons": [r.text for r in state.reasons],
            "reported_at": state.reported_at, "notes": list(state.notes)}
