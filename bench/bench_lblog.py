"""Time `lblog collect` on a fake OpenVZ node with 500 VEs.

Runs the installed `lblog` entry point as a subprocess: one warm-up run, then five timed
runs; prints the median wall and CPU time and the peak RSS of the timed runs (per child,
from wait4). Targets: median <= 50 ms, peak RSS <= 25 MB. Also times `python -S` on the
same module, which leaves out site-packages start-up (an editable install's import hook
alone costs ~10-15 ms), and `python -c pass` for the machine's own start-up cost.

    .venv/bin/python bench/bench_lblog.py [--ves 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lbvm.fakeproc import FakeVe, write_node

REPO = Path(__file__).resolve().parents[1]


def fake_node(root: Path, count: int) -> None:
    ves = [
        FakeVe(
            ve=str(1000 + i),
            cpu_jiffies=50_000_000 + i * 7_919,
            uptime_s=86_400.0 * (1 + i % 90),
            mem_bytes=(256 + (i * 37) % 3840) << 20,
            mem_limit_bytes=(4096 << 20) if i % 3 else None,
            failcnt=i % 5,
            disk_bytes=(2 + i % 50) << 30,
            disk_limit_bytes=100 << 30,
        )
        for i in range(count)
    ]
    write_node(
        root,
        ves=ves,
        cpus=64,
        mem_bytes=1 << 40,
        busy_jiffies=9_876_543_210,
        idle_jiffies=12_345_678_901,
        load=(12.5, 11.0, 10.25),
    )


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """One run: (wall seconds, CPU seconds, peak RSS MiB) of that child alone (wait4)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{argv[0]} failed ({child.returncode}): {err.read().decode()}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def measure(argv: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """Medians of wall ms and CPU ms, and the peak RSS MiB, of ``runs`` runs after a warm-up."""
    run(argv, env)
    results = [run(argv, env) for _ in range(runs)]
    wall = statistics.median(r[0] for r in results) * 1000
    cpu = statistics.median(r[1] for r in results) * 1000
    return wall, cpu, max(r[2] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ves", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    lblog = shutil.which("lblog", path=str(Path(sys.executable).parent)) or "lblog"
    with tempfile.TemporaryDirectory(prefix="bench-lblog-") as tmp:
        root, spool = Path(tmp) / "root", Path(tmp) / "spool"
        spool.mkdir()
        fake_node(root, args.ves)
        common = [
            "collect",
            "--proc-root",
            str(root),
            "--spool",
            str(spool),
            "--node",
            "bench1",
            "--backlog",
            str(Path(tmp) / "backlog"),
        ]
        # Installed packages run from compiled .pyc files; this environment may forbid
        # writing them (PYTHONDONTWRITEBYTECODE), so cache them in the temp dir instead.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        ms, cpu, rss = measure([lblog, *common], env, args.runs)
        print(
            f"lblog collect, {args.ves} VEs, {args.runs} runs: median wall {ms:.1f} ms, "
            f"median CPU {cpu:.1f} ms, peak RSS {rss:.1f} MB (targets: 50 ms, 25 MB)"
        )
        env_s = dict(env, PYTHONPATH=str(REPO))
        argv_s = [sys.executable, "-S", "-m", "lblog.cli", *common]
        ms_s, cpu_s, rss_s = measure(argv_s, env_s, args.runs)
        print(
            f"python -S -m lblog.cli collect (no site-packages start-up): median wall "
            f"{ms_s:.1f} ms, CPU {cpu_s:.1f} ms, peak RSS {rss_s:.1f} MB"
        )
        base, base_cpu, _ = measure([sys.executable, "-c", "pass"], env, args.runs)
        print(
            f"for scale, this machine starts 'python -c pass' in {base:.1f} ms "
            f"(CPU {base_cpu:.1f} ms); load average {os.getloadavg()[0]:.2f}"
        )
        written = len(list((spool / "incoming" / "bench1").glob("*.json")))
        print(f"spool files written: {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
