"""`lbm simulate`: replay a workload trace through the planning path and compare algorithms."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lbm.context import State, pass_state
from lbm.output import to_json
from lbm.params import DURATION

if TYPE_CHECKING:
    from lbvm.sim.metrics import Metrics
    from lbvm.sim.scenario import Cluster, SimScenario
    from lbvm.sim.traces import Trace

TABLE = (
    ("algorithm", "algorithm", "{}"),
    ("migrations", "moves", "{:,}"),
    ("switchovers", "switchovers", "{:,}"),
    ("bytes_moved", "moved GiB", "{:,.1f}"),
    ("energy_kwh", "energy kWh", "{:,.2f}"),
    ("energy_standby_kwh", "standbys on", "{:,.2f}"),
    ("slatah", "SLATAH", "{:.2%}"),
    ("over_threshold", "over limit", "{:.2%}"),
    ("pdm", "PDM", "{:.3%}"),
    ("failover_violations", "no failover", "{:,}"),
    ("std_cpu", "std cpu", "{:.3f}"),
    ("std_mem", "std mem", "{:.3f}"),
    ("active_nodes", "nodes on", "{:.1f}"),
)


def _load(
    state: State, trace_path: str, fmt_name: str, interval: float, scenario: SimScenario,
    own_cluster: bool,
) -> tuple[Trace, Cluster | None, SimScenario]:
    from lbvm.sim.gwa import read_gwa
    from lbvm.sim.storetrace import read_lbvm
    from lbvm.sim.traces import read_planetlab

    if fmt_name == "planetlab":
        return read_planetlab(Path(trace_path), types=scenario.vm_types,
                              interval=interval), None, scenario
    if fmt_name == "gwa":
        return read_gwa(Path(trace_path), interval=interval), None, scenario
    config = state.config if state.config_path is not None else None
    trace, cluster = read_lbvm(trace_path, scenario, interval=interval, config=config)
    if own_cluster:
        return trace, cluster, replace(scenario, placement="trace")
    return replace(trace, nodes=None), None, scenario


def _table(results: list[Metrics]) -> str:
    rows = [[head for _, head, _ in TABLE]]
    for m in results:
        doc = m.as_dict()
        doc["bytes_moved"] = doc["bytes_moved"] / 2**30
        rows.append([spec.format(doc[key]) for key, _, spec in TABLE])
    widths = [max(len(r[i]) for r in rows) for i in range(len(TABLE))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--trace", "trace_path", required=True,
              help="Trace: a folder of PlanetLab or GWA files, or for lbvm a config file, "
                   "database URL or spool folder.")
@click.option("--trace-format", "trace_format", type=click.Choice(("planetlab", "gwa", "lbvm")),
              default="planetlab", show_default=True, help="How the trace is written.")
@click.option("--algorithm", "algorithms", multiple=True,
              help="Algorithm to replay; repeat to compare (default: the configured one).")
@click.option("--pairs", type=click.IntRange(min=1), default=None,
              help="Simulate this many HA pairs (default: CloudSim's hosts per VM).")
@click.option("--scenario", "scenario_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Scenario TOML: host types, pairs, VM types, settings.")
@click.option("--cloudsim", is_flag=True,
              help="The CloudSim PlanetLab setup: 800 ML110 G4/G5 hosts as 400 pairs.")
@click.option("--interval", type=DURATION, default="5m", show_default=True,
              help="Replay step (the trace is resampled to it where it can be).")
@click.option("--nightly", is_flag=True,
              help="Plan once a day at the nightly time, not at every interval.")
@click.option("--ves", "max_ves", type=click.IntRange(min=1), default=None,
              help="Replay only the first N VEs of the trace.")
@click.option("--steps", "max_steps", type=click.IntRange(min=1), default=None,
              help="Replay only the first N intervals.")
@click.option("--report", "report_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write an HTML report with plots over time.")
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table",
              show_default=True, help="table: aligned text; json: stable keys, raw numbers.")
@pass_state
def simulate(
    state: State, trace_path: str, trace_format: str, algorithms: tuple[str, ...],
    pairs: int | None, scenario_path: Path | None, cloudsim: bool, interval: float,
    nightly: bool, max_ves: int | None, max_steps: int | None, report_path: Path | None,
    fmt: str,
) -> None:
    """Replay a workload trace step by step through the planner, validator and executor.

    Prints node-time overloaded (SLATAH), time over the threshold, PDM, migrations, bytes
    moved, energy, utilisation spread and failover violations per algorithm.

    Example: lbm simulate --trace planetlab/20110303 --cloudsim --algorithm balance
    """
    from lbvm.errors import ConfigError
    from lbvm.sim import scenario as sc
    from lbvm.sim.metrics import summarise
    from lbvm.sim.replay import replay

    if sum(x is not None and x is not False for x in (pairs, scenario_path, cloudsim)) > 1:
        raise click.UsageError("give at most one of --pairs, --scenario and --cloudsim")
    scenario = (sc.load(scenario_path) if scenario_path else
                sc.cloudsim() if cloudsim else sc.SimScenario(pairs=pairs))
    if state.config_path is not None and scenario_path is None:
        scenario = replace(scenario, balance=state.config.balance,
                           nightly_at=state.config.monitor.nightly_at)
    own = trace_format == "lbvm" and not (pairs or scenario_path or cloudsim)
    trace, cluster, scenario = _load(state, trace_path, trace_format, interval, scenario, own)
    trace = trace.head(max_ves, max_steps)
    names = algorithms or (scenario.balance.algorithm,)
    if len(set(names)) != len(names):
        raise ConfigError("an algorithm is named twice")
    results, replays = [], []
    show = fmt == "table" and sys.stderr.isatty()
    for name in names:
        with click.progressbar(length=trace.n_steps, label=f"{name:<12}", file=sys.stderr,
                               hidden=not show) as bar:
            r = replay(trace, scenario, name, cluster=cluster, nightly=nightly,
                       progress=bar.update)
        replays.append(r)
        results.append(summarise(r))
    if report_path is not None:
        from lbvm.sim.report import write_report

        write_report(report_path, replays, results)
    if fmt == "json":
        click.echo(to_json(_doc(trace_path, trace_format, trace, scenario, nightly, replays,
                                results)), nl=False)
        return
    click.echo(f"{trace.n_ves} VEs x {trace.n_steps} intervals of {trace.interval:g}s, "
               f"{replays[0].cluster.n_nodes} nodes, scenario {scenario.name}"
               f"{', nightly' if nightly else ''}"
               f"{', memory ' + scenario.memory if scenario.memory != 'counted' else ''}")
    click.echo(_table(results), nl=False)
    for r in replays:
        for note in r.notes:
            click.echo(f"{r.algorithm}: {note}")
    if report_path is not None:
        click.echo(f"report written to {report_path}")


def _doc(path: str, fmt: str, trace: Trace, scenario: SimScenario, nightly: bool,
         replays: list[Any], results: list[Metrics]) -> dict[str, Any]:
    return {
        "trace": {"path": path, "format": fmt, "ves": trace.n_ves, "steps": trace.n_steps,
                  "interval": trace.interval},
        "scenario": {"name": scenario.name, "nodes": replays[0].cluster.n_nodes,
                     "switch_off": scenario.switch_off, "placement": scenario.placement,
                     "memory": scenario.memory, "nightly": nightly},
        "results": [m.as_dict() for m in results],
    }
