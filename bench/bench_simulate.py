"""Time a replay of the PlanetLab day 20110303 (1,052 VMs x 288 five-minute steps).

The cluster is the CloudSim setup (800 ML110 G4/G5 hosts as 400 HA pairs, see
tests/scenarios/cloudsim/planetlab-800.toml). Prints the read time, the wall and CPU time of
each replay, and its metrics. Target: <= 20 s per replay for ``balance``.

    .venv/bin/python bench/bench_simulate.py [--trace DIR] [--scenario FILE]
        [--algorithm balance ...] [--ves N] [--steps N] [--nightly]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from lbvm.sim import scenario as sc
from lbvm.sim.metrics import summarise
from lbvm.sim.replay import replay
from lbvm.sim.traces import read_planetlab

REPO = Path(__file__).resolve().parents[1]
DAY = REPO.parent / "shared" / "traces" / "planetlab" / "20110303"
SCENARIO = REPO / "tests" / "scenarios" / "cloudsim" / "planetlab-800.toml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trace", type=Path, default=DAY)
    ap.add_argument("--scenario", type=Path, default=SCENARIO)
    ap.add_argument("--algorithm", action="append", default=None)
    ap.add_argument("--ves", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--nightly", action="store_true")
    args = ap.parse_args()
    if not args.trace.is_dir():
        raise SystemExit(f"{args.trace}: no such trace folder")
    scenario = sc.load(args.scenario)
    wall = time.perf_counter()
    trace = read_planetlab(args.trace, types=scenario.vm_types).head(args.ves, args.steps)
    print(f"read           {time.perf_counter() - wall:.2f} s: {trace.n_ves} VMs x "
          f"{trace.n_steps} steps")
    for name in args.algorithm or ["balance"]:
        wall, cpu = time.perf_counter(), time.process_time()
        result = replay(trace, scenario, name, nightly=args.nightly)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        m = summarise(result)
        print(f"{name:<14} {wall:.2f} s wall, {cpu:.2f} s cpu, {m.plans} plans, "
              f"{m.refused} refused, {m.busy_skips} busy")
        print(f"  migrations {m.migrations} ({m.switchovers} switchovers), "
              f"{m.bytes_moved / 2**30:.1f} GiB; energy {m.energy_kwh:.2f} kWh "
              f"({m.energy_standby_kwh:.2f} with standbys on); "
              f"SLATAH {m.slatah:.2%}; over limit {m.over_threshold:.2%}; PDM {m.pdm:.3%}; "
              f"SLA {m.sla:.6f}")
        print(f"  failover violations {m.failover_violations} pair-intervals "
              f"({m.failover_share:.1%}); std cpu {m.std_cpu:.3f} mem {m.std_mem:.3f}; "
              f"nodes on {m.active_nodes:.1f}")
        on = result.active.sum(axis=1)
        first = int(np.argmax(result.moves > 0)) if result.moves.any() else 0
        print(f"  first plan (interval {first}) {int(result.moves[first])} moves; nodes on, "
              f"first 6 intervals: {on[:6].tolist()}")
        cpus = result.cluster.cpus
        later = result.active[12:] if len(result.active) > 12 else result.active
        sizes = ", ".join(f"{c:g} cores: {later[:, cpus == c].sum(axis=1).mean():.1f}"
                          for c in np.unique(cpus))
        print(f"  nodes on from the second hour, by size: {sizes}")


if __name__ == "__main__":
    main()
