"""A site's own history as a trace: an LBVM store, or a spool folder read into a scratch one.

CPU is the store's ``cpu_used`` (cores; one core counts as one reference core), memory its
``mem_bytes``; both are averaged per replay interval from the first sample (rounded down to
the interval). A VE starts on the node of its first sample. The cluster is the config's
pairs with the capacities ``lbm nodes`` shows; with no pairs in the config (a bare spool),
nodes are paired in name order. Nodes draw power from the scenario's first host type.
A spool folder is copied to a temporary folder and ingested there: the original is never
changed. Its history is every file in ``incoming/`` and ``done/`` (``lbm ingest`` moves
loaded files to ``done/``); files already in ``quarantine/`` are left out. A file that
ingest would quarantine now, or an entry it would skip, stops the replay with its name:
nothing is dropped silently.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import Engine

from lbvm.config import Config, PairConfig
from lbvm.config import load as load_config
from lbvm.errors import ConfigError, ParseError, StaleData
from lbvm.sim.scenario import Cluster, SimScenario
from lbvm.sim.traces import Trace
from lbvm.store import queries
from lbvm.store.engine import connect
from lbvm.store.ingest import ingest
from lbvm.store.schema import spool_files, ve_samples


def read_lbvm(
    source: str | Path, scenario: SimScenario, *, interval: float = 300.0,
    config: Config | None = None,
) -> tuple[Trace, Cluster]:
    """A trace and its cluster from a config file, a database URL or a spool folder."""
    text = str(source)
    if "://" in text:
        cfg = replace(config or Config(), database=text)
        return _from_url(cfg, scenario, interval)
    path = Path(source)
    if (path / "incoming").is_dir() or (path / "done").is_dir():
        return _from_spool(path, scenario, interval, config)
    if path.is_file() or (path / "lbvm.toml").is_file():
        return _from_url(load_config(path), scenario, interval)
    raise ConfigError(f"{source}: not a config file, database URL or spool folder "
                      "(a folder with incoming/)")


def _from_spool(
    path: Path, scenario: SimScenario, interval: float, config: Config | None
) -> tuple[Trace, Cluster]:
    """Ingest a copy of the spool's incoming/ and done/ files into a scratch store."""
    with tempfile.TemporaryDirectory(prefix="lbvm-sim-spool-") as tmp:
        spool = Path(tmp) / "spool"
        (spool / "incoming").mkdir(parents=True)
        for part in ("done", "incoming"):
            if (path / part).is_dir():
                shutil.copytree(path / part, spool / "incoming", symlinks=True,
                                dirs_exist_ok=True)
        cfg = replace(config or Config(), database=f"sqlite:///{Path(tmp) / 'trace.db'}")
        engine = connect(cfg.database)
        try:
            result = ingest(engine, spool)
            if result.quarantined or result.skipped:
                _refuse(engine, path, result.skipped)
            return from_store(engine, cfg, scenario, interval)
        finally:
            engine.dispose()


def _refuse(engine: Engine, path: Path, skipped: int) -> None:
    """Raise ParseError for the first file ingest quarantined (or the count it skipped)."""
    query = (sa.select(spool_files.c.node, spool_files.c.name, spool_files.c.reason)
             .where(spool_files.c.status == "quarantined")
             .order_by(spool_files.c.node, spool_files.c.name).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is not None:
        where = [path / part / row.node / row.name for part in ("incoming", "done")]
        shown = next((p for p in where if p.exists()), where[0])
        raise ParseError(str(shown), None, f"cannot be replayed: {row.reason}")
    raise ParseError(str(path), None, f"{skipped} entry(ies) are symlinks or folders with "
                     "invalid node names: a replay reads real files only")


def _from_url(config: Config, scenario: SimScenario, interval: float) -> tuple[Trace, Cluster]:
    engine = connect(config.database, create=False)
    try:
        return from_store(engine, config, scenario, interval)
    finally:
        engine.dispose()


def from_store(
    engine: Engine, config: Config, scenario: SimScenario, interval: float
) -> tuple[Trace, Cluster]:
    cols = ["ve", "node", "ts", "cpu_used", "mem_bytes", "disk_bytes"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*[ve_samples.c[c] for c in cols])).all()
    frame = pd.DataFrame(rows, columns=cols)
    if frame.empty:
        raise StaleData("the store has no VE samples to replay")
    for c in ("ts", "cpu_used", "mem_bytes", "disk_bytes"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(np.float64)
    start = float(frame["ts"].min()) // interval * interval
    frame["step"] = ((frame["ts"] - start) // interval).astype(np.int64)
    steps = int(frame["step"].max()) + 1
    frame = frame.sort_values(["ve", "ts"], kind="stable")
    names = sorted(frame["ve"].unique())
    grid = pd.RangeIndex(steps)
    cpu = _fill_life(frame.pivot_table(index="ve", columns="step", values="cpu_used",
                                       aggfunc="mean").reindex(index=names, columns=grid))
    mem = _fill_life(frame.pivot_table(index="ve", columns="step", values="mem_bytes",
                                       aggfunc="mean").reindex(index=names, columns=grid))
    first = frame.groupby("ve").first()
    last = frame.groupby("ve").last()
    trace = Trace(
        ves=tuple(str(v) for v in names),
        start=start,
        interval=interval,
        cpu=cpu,
        mem=mem,
        cpu_size=np.nan_to_num(np.nanmax(np.where(np.isnan(cpu), -np.inf, cpu), axis=1),
                               neginf=0.0),
        mem_size=last.loc[names, "mem_bytes"].fillna(0.0).to_numpy(dtype=np.float64),
        disk=last.loc[names, "disk_bytes"].fillna(0.0).to_numpy(dtype=np.float64),
        sources=tuple(str(v) for v in names),
        nodes=tuple(str(n) for n in first.loc[names, "node"]),
    )
    return trace, _cluster(engine, config, scenario, set(trace.nodes or ()))


def _fill_life(table: pd.DataFrame) -> np.ndarray:
    """Repeat the last value over gaps inside each row's life; NaN outside it."""
    values = table.to_numpy(dtype=np.float64)
    filled = table.ffill(axis=1).to_numpy(dtype=np.float64)
    seen = ~np.isnan(values)
    alive = np.maximum.accumulate(seen, axis=1) & np.maximum.accumulate(
        seen[:, ::-1], axis=1)[:, ::-1]
    return np.where(alive, filled, np.nan)


def _cluster(engine: Engine, config: Config, scenario: SimScenario, used: set[str]) -> Cluster:
    if not config.pairs:
        ordered = sorted(used | set(queries.node_capacity(engine, config)["node"]))
        if len(ordered) % 2:
            raise ConfigError(f"{len(ordered)} nodes cannot be paired: give a config with "
                              "[[pairs]]")
        pairs = tuple(PairConfig(f"pair{i // 2 + 1}", (ordered[i], ordered[i + 1]))
                      for i in range(0, len(ordered), 2))
        config = replace(config, pairs=pairs)
    table = queries.node_capacity(engine, config)
    table = table[table["pair"].notna()].reset_index(drop=True)
    unknown = table["cpus"].isna() | table["mem_bytes"].isna()
    if bool(unknown.any()):
        raise StaleData(f"node {table.loc[unknown, 'node'].iloc[0]} has no capacity in the "
                        "store or the config")
    k = len(scenario.host_types[0].power)
    return Cluster(
        nodes=tuple(str(n) for n in table["node"]),
        pairs=tuple(str(p) for p in table["pair"]),
        cpus=table["cpus"].to_numpy(dtype=np.float64),
        mem_bytes=table["mem_bytes"].to_numpy(dtype=np.float64),
        core_mips=np.full(len(table), 1000.0),
        power=np.tile(np.array(scenario.host_types[0].power), (len(table), 1)).reshape(-1, k),
    )
