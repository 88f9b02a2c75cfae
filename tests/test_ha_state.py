"""HA state in the store: ingest of the spool's `ha` key, pair verdicts, the Problem's
degraded/replicated arrays and the validator's HA reasons."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from test_cycle import CLUSTER, PAIRS, write_cluster, write_config

from algorithms.base import Move, Plan
from lblog import spool
from lblog.ha.model import ClusterNode, ClusterState, DrbdResource, DrbdStatus, DrbdVolume
from lblog.ha.report import HaReport, VeMapping, with_ha
from lbvm import hastate, validate_ha
from lbvm.config import Config, load
from lbvm.model import build_problem
from lbvm.store.engine import connect
from lbvm.store.ha import ingest_ha
from lbvm.store.ha import load as load_ha
from lbvm.store.ingest import ingest
from lbvm.store.schema import ha_drbd, ha_reports
from lbvm.store.spoolread import read as read_file
from lbvm.store.spoolread import scan
from lbvm.validate import validate

NODES = [n for pair in PAIRS.values() for n in pair]
MATE = {a: b for a, b in PAIRS.values()} | {b: a for a, b in PAIRS.values()}


def volume(res: str, peer: str, **changes: object) -> DrbdVolume:
    base = DrbdVolume(res, 0, None, peer, "Connected", "Established", "Primary", "Secondary",
                      "UpToDate", "UpToDate", 0)
    return replace(base, **changes)  # type: ignore[arg-type]


def members(**flags: dict[str, bool]) -> tuple[ClusterNode, ...]:
    out = []
    for n in NODES:
        values = {"online": True, **flags.get(n, {})}
        out.append(replace(ClusterNode(n, online=True), **values))  # type: ignore[arg-type]
    return tuple(out)


def report(node: str, *, nodes: tuple[ClusterNode, ...] | None = None,
           bad: dict[str, dict[str, object]] | None = None) -> HaReport:
    """``node``'s view: every VE of its pair has DRBD resource r<VE>; ``bad`` changes some."""
    pair = (node, MATE[node])
    ves = sorted(ve for ve, (where, _, _) in CLUSTER.items() if where in pair)
    vols = tuple(volume(f"r{ve}", MATE[node], **(bad or {}).get(f"r{ve}", {})) for ve in ves)
    drbd = DrbdStatus("drbdsetup_json", None,
                      tuple(DrbdResource(v.resource, v.role, (v,)) for v in vols))
    cluster = ClusterState("pacemaker", nodes or members(), quorum=True)
    mine = tuple(VeMapping(ve, f"r{ve}", f"vz{ve}", "map") for ve in ves)
    return HaReport("ok", "drbdsetup status --json all", drbd, "ok", "crm_mon", cluster, mine)


def write_ha(spool_dir: Path, reports: dict[str, HaReport], t: float) -> None:
    from conftest import make_sample

    for node, r in reports.items():
        spool.write(spool_dir, with_ha(make_sample(node, t), r))


def load_ha_into(engine: Engine, spool_dir: Path) -> None:
    """Ingest, and store the `ha` sections (what the ingest hook does once wired)."""
    docs = [read_file(f) for f in scan(spool_dir).files]
    ingest(engine, spool_dir)
    with engine.begin() as conn:
        ingest_ha(conn, docs)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    cfg = load(write_config(tmp_path))
    write_cluster(cfg.spool, end=time.time())
    return cfg


@pytest.fixture
def engine(config: Config) -> Iterator[Engine]:
    engine = connect(config.database)
    yield engine
    engine.dispose()


def healthy(now: float) -> dict[str, HaReport]:
    return {n: report(n) for n in NODES}


def test_ingest_keeps_the_latest_report_per_node(config: Config, engine: Engine) -> None:
    now = time.time()
    write_ha(config.spool, healthy(now), now - 60)
    sick = {"vz1a": report("vz1a", bad={"r101": {"replication": "SyncSource",
                                                 "peer_disk": "Inconsistent"}})}
    write_ha(config.spool, sick, now - 30)
    load_ha_into(engine, config.spool)
    with engine.connect() as conn:
        reporters = dict(conn.execute(sa.select(ha_reports.c.reporter, ha_reports.c.ts)).all())
        r101 = conn.execute(sa.select(ha_drbd.c.replication).where(
            ha_drbd.c.reporter == "vz1a", ha_drbd.c.resource == "r101")).scalar()
    assert set(reporters) == set(NODES) and reporters["vz1a"] == pytest.approx(now - 30)
    assert r101 == "SyncSource"
    with engine.begin() as conn:  # an older report changes nothing
        doc = {"node": "vz1a", "time": now - 100, "ha": {"ves": []}}
        assert ingest_ha(conn, [doc]) == 0


def test_pair_states_healthy_degraded_unknown(config: Config, engine: Engine) -> None:
    now = time.time()
    reports = healthy(now)
    nodes = members(vz2b={"unclean": True})
    reports["vz2a"] = report("vz2a", nodes=nodes)
    reports["vz2b"] = report("vz2b", nodes=nodes)
    write_ha(config.spool, reports, now - 10)
    load_ha_into(engine, config.spool)
    frame = hastate.pair_states(engine, config, now).set_index("pair")
    assert frame.loc["pair1", "state"] == "healthy" and bool(frame.loc["pair1", "healthy"])
    assert frame.loc["pair2", "state"] == "degraded"
    assert frame.loc["pair2", "reasons"] == "node vz2b unclean"
    later = hastate.pair_states(engine, config, now + config.balance.stale_after + 60)
    later = later.set_index("pair")
    assert "HA state of vz1a is" in str(later.loc["pair1", "reasons"])


def test_no_ha_reports_at_all_judges_nothing(config: Config, engine: Engine) -> None:
    ingest(engine, config.spool)
    states = hastate.pair_states(engine, config)
    assert list(states["state"]) == ["unknown", "unknown"]
    problem = hastate.apply(build_problem(engine, config), engine, config)
    assert problem.degraded is not None and not problem.degraded.any()
    assert problem.replicated is not None and problem.replicated.all()


def test_apply_folds_the_verdict_into_allowed(config: Config, engine: Engine) -> None:
    now = time.time()
    reports = healthy(now)
    sync = {"replication": "SyncTarget", "disk": "Inconsistent", "progress_pct": 42.1}
    reports["vz1a"] = report("vz1a", bad={"r101": sync})
    nodes = members(vz2b={"standby": True})
    reports["vz2a"] = report("vz2a", nodes=nodes)
    write_ha(config.spool, reports, now - 10)
    load_ha_into(engine, config.spool)
    problem = hastate.apply(build_problem(engine, config, now=now), engine, config, now)
    idx = {n: i for i, n in enumerate(problem.nodes)}
    v = problem.ves.index("101")
    assert problem.degraded is not None and problem.replicated is not None
    assert list(problem.degraded) == [True, True, True, True]  # pair1 resyncs, pair2 standby
    assert not problem.replicated[v] and problem.replicated[problem.ves.index("102")]
    assert not problem.allowed[v, idx["vz1b"]] and problem.allowed[v, idx["vz1a"]]
    assert problem.ha_ve_reasons[v] == "DRBD r101 is SyncTarget 42.1%, not UpToDate/UpToDate"


def test_validator_reasons_name_the_cause(config: Config, engine: Engine) -> None:
    now = time.time()
    reports = healthy(now)
    sync = {"replication": "SyncTarget", "disk": "Inconsistent", "progress_pct": 42.1}
    reports["vz1a"] = report("vz1a", bad={"r101": sync})
    reports["vz1b"] = report("vz1b", bad={"r101": {"replication": "SyncSource",
                                                   "peer_disk": "Inconsistent"}})
    nodes = members(vz2b={"unclean": True, "online": False})
    reports["vz2a"] = report("vz2a", nodes=nodes)
    write_ha(config.spool, reports, now - 10)
    load_ha_into(engine, config.spool)
    problem = hastate.apply(build_problem(engine, config, now=now), engine, config, now)
    plan = Plan("manual", (Move("102", "vz1a", "vz2a", "migrate"),
                           Move("101", "vz1a", "vz1b", "switchover")), 0.0, 0.0)
    # pair1 is degraded too (r101 resyncing): both moves are refused, each in its words
    got = validate_ha.reasons(problem, plan)
    assert got[0].startswith("move 0: pair2 is degraded (node vz2b offline unclean")
    assert got[0].endswith(": it takes no new VEs")
    assert got[1].startswith("move 1: pair1 is degraded (drbd r101/0 on vz1a: Connected ")
    assert validate(problem, plan)  # the shared validator refuses them through allowed


def test_switchover_refused_for_the_resyncing_ve_only(config: Config, engine: Engine) -> None:
    now = time.time()
    write_ha(config.spool, healthy(now), now - 10)
    load_ha_into(engine, config.spool)
    problem = hastate.apply(build_problem(engine, config, now=now), engine, config, now)
    v = problem.ves.index("101")
    assert problem.replicated is not None
    replicated = problem.replicated.copy()
    replicated[v] = False
    reasons = list(problem.ha_ve_reasons)
    reasons[v] = "DRBD r101 is SyncTarget 42.1%, not UpToDate/UpToDate"
    sick = replace(problem, replicated=replicated, ha_ve_reasons=tuple(reasons))
    plan = Plan("manual", (Move("101", "vz1a", "vz1b", "switchover"),
                           Move("102", "vz1a", "vz1b", "switchover")), 0.0, 0.0)
    assert validate_ha.reasons(sick, plan) == [
        "move 0: VE 101 switchover vz1a→vz1b refused: DRBD r101 is SyncTarget 42.1%, "
        "not UpToDate/UpToDate"]
    assert validate_ha.reasons(problem, plan) == []
    assert np.array_equal(problem.degraded, np.zeros(4, bool))  # type: ignore[arg-type]


def test_maintenance_blockers_are_the_partners_problems() -> None:
    state = hastate.PairState("pair1", ("vz1a", "vz1b"), True, (
        hastate.Reason("vz1a", "node vz1a standby"),
        hastate.Reason("vz1b", "drbd r101 on vz1a: Connected SyncSource UpToDate/Inconsistent")))
    assert [r.node for r in state.about("vz1a")] == ["vz1b"]
    assert [r.node for r in state.about("vz1b")] == ["vz1a"]


def test_stored_tables_round_trip(config: Config, engine: Engine) -> None:
    now = time.time()
    write_ha(config.spool, healthy(now), now)
    load_ha_into(engine, config.spool)
    tables = load_ha(engine)
    assert len(tables.reports) == 4 and len(tables.members) == 16
    assert set(tables.ves["ve"]) == set(CLUSTER)


def test_wired_end_to_end_no_move_lands_on_a_degraded_pair(config: Config, engine: Engine) -> None:
    """No manual hooks: ingest stores the `ha` key, build_problem folds it in, every plan and
    the validator honour it."""
    from lbvm.cycle import run_cycle

    now = time.time()
    reports = healthy(now)
    reports["vz2a"] = report("vz2a", nodes=members(vz2b={"unclean": True, "online": False}))
    write_ha(config.spool, reports, now - 10)
    ingest(engine, config.spool)
    problem = build_problem(engine, config, now=now)
    degraded = {n for n, d in zip(problem.nodes, problem.degraded, strict=True) if d}
    assert degraded == {"vz2a", "vz2b"}
    cycle = run_cycle(engine, config, execute=False, now=now)
    assert not cycle.reasons
    assert not {m.dst for m in cycle.plan.moves} & degraded
    src = problem.nodes[problem.placement[problem.ves.index("101")]]
    into = Plan("manual", (Move("101", src, "vz2b", "migrate"),), 0.0, 0.0)
    assert any("pair2 is degraded" in r for r in validate(problem, into))
