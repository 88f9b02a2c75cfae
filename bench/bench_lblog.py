"""Time `lblog collect` on a fake OpenVZ node with 500 VEs.

Runs the `lblog` console script as a subprocess, end to end (collect, then the spool file
written atomically with fsync): one warm-up run, then five timed runs; prints the median
wall and CPU time and the peak RSS of the timed runs (per child, from wait4). Targets:
median <= 50 ms, peak RSS <= 25 MB.

Installs timed, one run of each in turn so that all see the same machine load:
"dev", the console script of the environment running this bench (`make` installs the
checkout editable); "production", a plain `pip install --no-deps` of a copy of the checkout
into a new temporary venv, as an operator installs the agent (pip may fetch the build
backend, setuptools, from the package index or its cache; without it that line is skipped
with the reason); with --against REV (repeatable), the same production install of git
revision REV, for before/after figures. `python -c pass` in each gives the machine's own
start-up cost. --stages prints where a dev run's CPU goes: the imports once, then each
stage's median CPU over five calls in one process (warm, so a little under a run's).

    .venv/bin/python bench/bench_lblog.py [--ves 500] [--runs 5] [--dev-only] [--against REV]
                                          [--stages]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
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


# Starts one child and reports its wall time and wait4 usage. It runs in a small
# `python -S` of its own: Linux counts the parent's resident memory at the moment it starts
# a child into the child's peak RSS, and this bench, with the fake node in memory, is
# bigger than lblog itself.
RUNNER = """
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
err = child.stderr.read()
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
if code:
    sys.exit(f"{sys.argv[1]} failed ({code}): {err.decode()}")
print(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)
"""


# CPU of a run's stages, in one process: imports once (cold, as a run pays them), then the
# median of five calls of each stage.
STAGES = """
import time  # nothing else before the imports are timed: statistics alone loads re
start = time.process_time()
from lblog.cli import main
imported = time.process_time() - start
import os, statistics, sys
from lblog import collect, openvz, spool
root, out = sys.argv[1:]
bc_text = open(os.path.join(root, "proc/user_beancounters")).read()
sample = collect.collect(root, "bench1")
def cpu(call):
    times = []
    for _ in range(5):
        t = time.process_time()
        call()
        times.append(time.process_time() - t)
    return f"{statistics.median(times) * 1000:5.1f} ms"
print(f"  imports of lblog.cli (all a run loads): {imported * 1000:5.1f} ms")
print(f"  collect: {cpu(lambda: collect.collect(root, 'bench1'))}")
print(f"    of which parse_beancounters: {cpu(lambda: openvz.parse_beancounters(bc_text, 'b'))}")
print(f"  spool.encode: {cpu(lambda: spool.encode(sample))}")
print(f"  spool.put (encode, write, fsync, rename): {cpu(lambda: spool.put(out, sample))}")
"""


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """One run: (wall seconds, CPU seconds, peak RSS MiB) of that child alone (wait4)."""
    done = subprocess.run(
        [sys.executable, "-S", "-c", RUNNER, *argv], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip())
    wall, cpu, rss = map(float, done.stdout.split())
    return wall, cpu, rss


def measure(
    commands: dict[str, list[str]], env: dict[str, str], runs: int
) -> dict[str, tuple[float, float, float]]:
    """Per command: medians of wall ms and CPU ms, and the peak RSS MiB, of ``runs`` runs
    after a warm-up; the commands take turns, so each sees the same machine load."""
    for argv in commands.values():
        run(argv, env)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            results[name].append(run(argv, env))
    return {
        name: (
            statistics.median(r[0] for r in rs) * 1000,
            statistics.median(r[1] for r in rs) * 1000,
            max(r[2] for r in rs),
        )
        for name, rs in results.items()
    }


def install(tmp: Path, rev: str | None) -> Path | str:
    """A new venv with the checkout (or git revision ``rev``) pip-installed into it, not
    editable and without dependencies (the agent needs none); its bin/ directory, or why
    it could not be made."""
    src, venv = tmp / "src", tmp / "venv"
    src.mkdir(parents=True)
    files = ["pyproject.toml", "README.md", "lblog", "lbvm", "lbm", "algorithms"]
    if rev is None:
        for name in files:
            if (REPO / name).is_dir():
                shutil.copytree(
                    REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy(REPO / name, src / name)
    else:
        archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev, *files],
                                 capture_output=True, timeout=120)  # fmt: skip
        if archive.returncode != 0:
            return f"git archive {rev} failed: {archive.stderr.decode().strip()}"
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(src, filter="data")
    steps = [
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        [sys.executable, "-m", "pip", "--python", str(venv / "bin/python"), "install",
         "--quiet", "--no-deps", "--no-cache-dir", str(src)],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:]
            return f"{' '.join(step[:4])} failed: {' '.join(last)}"
    return venv / "bin"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ves", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dev-only", action="store_true", help="skip the production install")
    parser.add_argument(
        "--against", metavar="REV", action="append", default=[], help="also time revision REV"
    )
    parser.add_argument("--stages", action="store_true", help="CPU of a run's stages")
    args = parser.parse_args()
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
        installs = {"dev (this environment)": Path(sys.executable).parent}
        wanted = {} if args.dev_only else {"production (pip install, new venv)": None}
        for rev in args.against:
            wanted[f"production of {rev}"] = rev
        for i, (name, rev) in enumerate(wanted.items()):
            made = install(Path(tmp) / f"install{i}", rev)
            if isinstance(made, str):
                print(f"{name}: skipped, {made}")
            else:
                installs[name] = made
        # Installed packages run from compiled .pyc files; this environment may forbid
        # writing them (PYTHONDONTWRITEBYTECODE), so cache them in the temp dir instead.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        commands = {}
        for name, bindir in installs.items():
            commands[name] = [str(bindir / "lblog"), *common]
        for name, bindir in installs.items():
            if not name.startswith("production of"):  # the same interpreter as production's
                commands[f"{name}: python -c pass"] = [str(bindir / "python"), "-c", "pass"]
        print(f"lblog collect, {args.ves} VEs, {args.runs} runs after a warm-up "
              f"(targets: 50 ms, 25 MB); load average {os.getloadavg()[0]:.2f}")  # fmt: skip
        for name, (ms, cpu, rss) in measure(commands, env, args.runs).items():
            print(f"{name}: median wall {ms:.1f} ms, CPU {cpu:.1f} ms, peak RSS {rss:.1f} MB")
        if args.stages:
            argv = [sys.executable, "-c", STAGES, str(root), str(Path(tmp) / "stages")]
            out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
            print("dev run, CPU by stage:\n" + out.stdout.rstrip())
        written = len(list((spool / "incoming" / "bench1").glob("*.json")))
        print(f"spool files written: {written}; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
