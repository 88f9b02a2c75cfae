"""The ``lblog`` command: quiet success, one-line errors, exit codes, no heavy imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lblog import spool
from lblog.cli import main
from lblog.lock import locked
from lbvm.fakeproc import FakeVe, write_node

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path):
    ves = [FakeVe("101", 12_000, 600.0, 256 << 20, 512 << 20, 1, 3 << 30, 10 << 30),
           FakeVe("102", 34_000, 1200.0, 128 << 20, None)]  # fmt: skip
    write_node(tmp_path / "root", ves=ves, cpus=4, mem_bytes=8 << 30, busy_jiffies=5000,
               idle_jiffies=95000, load=(0.5, 0.25, 0.125))  # fmt: skip
    return tmp_path / "root"


def args(root: Path, tmp_path: Path, *extra: str) -> list[str]:
    return ["collect", "--proc-root", str(root), "--spool", str(tmp_path / "spool"),
            "--node", "n1", "--backlog", str(tmp_path / "backlog"),
            "--private-path", str(tmp_path), *extra]  # fmt: skip


def written(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "spool/incoming/n1").glob("*.json"))


def test_collect_is_quiet_and_writes_one_file(root, tmp_path, capsys):
    (tmp_path / "spool").mkdir()
    assert main(args(root, tmp_path)) == 0
    assert capsys.readouterr() == ("", "")
    (path,) = written(tmp_path)
    doc = spool.read(path)
    assert doc["node"] == "n1" and doc["cpu_hz"] == 1000
    assert [row[0] for row in doc["rows"]] == ["101", "102"]


def test_print_shows_the_path(root, tmp_path, capsys):
    (tmp_path / "spool").mkdir()
    assert main(args(root, tmp_path, "--print")) == 0
    assert capsys.readouterr().out == f"{written(tmp_path)[0]}\n"


def test_spool_from_environment(root, tmp_path, monkeypatch):
    other = tmp_path / "env-spool"
    other.mkdir()
    monkeypatch.setenv("LBLOG_SPOOL", str(other))
    argv = [a for a in args(root, tmp_path) if a not in ("--spool", str(tmp_path / "spool"))]
    assert main(argv) == 0
    assert len(list((other / "incoming/n1").glob("*.json"))) == 1


def test_parse_error_exits_1_with_one_line_and_writes_nothing(root, tmp_path, capsys):
    (tmp_path / "spool").mkdir()
    ubc = root / "proc/user_beancounters"
    lines = ubc.read_text().split("\n")
    assert "lockedpages" in lines[3]
    lines[3] = lines[3].replace("lockedpages", "locked pages")
    ubc.write_text("\n".join(lines))
    assert main(args(root, tmp_path)) == 1
    err = capsys.readouterr().err
    assert err == f"lblog: {ubc}:4: expected '<uid>:' first, not 'locked'\n"
    assert written(tmp_path) == [] and not (tmp_path / "backlog").exists()


def test_missing_spool_keeps_sample_in_backlog(root, tmp_path, capsys):
    assert main(args(root, tmp_path)) == 0
    err = capsys.readouterr().err
    assert err.startswith("lblog: spool ") and "sample kept in" in err
    assert len(list((tmp_path / "backlog").glob("n1-*.json"))) == 1
    (tmp_path / "spool").mkdir()  # storage is back: the next run flushes the backlog first
    assert main(args(root, tmp_path)) == 0
    assert len(written(tmp_path)) == 2
    assert list((tmp_path / "backlog").glob("*.json")) == []


def test_lock_held_exits_1(root, tmp_path, capsys):
    node_dir = tmp_path / "spool/incoming/n1"
    node_dir.mkdir(parents=True)
    with locked(node_dir / ".lock", 0):
        assert main(args(root, tmp_path, "--lock-wait", "0.1")) == 1
    assert "another lblog run still holds the lock" in capsys.readouterr().err
    assert written(tmp_path) == []


@pytest.mark.parametrize(
    "extra",
    [["--source", "xen"], ["--backlog-max", "0"], ["--node", "bad/name"], ["--bogus"]],
)
def test_usage_errors_exit_2(root, tmp_path, capsys, extra):
    argv = args(root, tmp_path)
    if extra[0] == "--node":
        argv[argv.index("--node") + 1] = extra[1]
        extra = []
    assert main([*argv, *extra]) == 2
    assert capsys.readouterr().err.startswith(("usage:", "lblog: invalid node name"))


def test_version_and_help(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("lblog ")
    assert main(["collect", "--help"]) == 0
    assert "example: lblog collect" in capsys.readouterr().out


def test_no_pandas_or_numpy_in_the_agent(root, tmp_path):
    """The agent must start fast on every node: nothing outside the standard library."""
    (tmp_path / "spool").mkdir()
    script = textwrap.dedent(f"""
        import sys
        before = set(sys.modules)  # what the interpreter and site loaded at start-up
        from lblog.cli import main
        rc = main({args(root, tmp_path)!r})
        # logging too: a run that has nothing to say does not pay for importing it; nor
        # for argparse (a plain command line), dataclasses, typing or pathlib (ms each)
        heavy = ("pandas", "numpy", "sqlalchemy", "lbvm", "logging", "argparse",
                 "dataclasses", "typing", "pathlib")
        heavy = sorted(m for m in heavy if m in sys.modules and m not in before)
        print(rc, heavy)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, cwd=REPO)  # fmt: skip
    assert done.stdout == "0 []\n", done.stderr
    assert len(written(tmp_path)) == 1


def test_console_script_end_to_end(root, tmp_path):
    (tmp_path / "spool").mkdir()
    exe = Path(sys.executable).with_name("lblog")
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    done = subprocess.run([str(exe), *args(root, tmp_path), "--print"], capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(written(tmp_path)[0])


def test_shipped_cron_and_systemd_commands_parse():
    import shlex

    from lblog.cli import build_parser

    share = REPO / "share"
    cron = [line for line in (share / "cron.d/lblog").read_text().split("\n")
            if line.startswith("*/5 ")]  # fmt: skip
    assert len(cron) == 1
    fields = cron[0].split(None, 6)
    assert fields[5] == "root"
    service = (share / "systemd/lblog.service").read_text()
    (exec_start,) = [x for x in service.split("\n") if x.startswith("ExecStart=")]
    timer = (share / "systemd/lblog.timer").read_text()
    assert "OnCalendar=*:0/5" in timer
    for command in (fields[6], exec_start.split("=", 1)[1]):
        argv = shlex.split(command)
        assert Path(argv[0]).name == "lblog"
        parsed = build_parser().parse_args(argv[1:])
        assert parsed.command == "collect"
        assert parsed.backlog == "/var/lib/lblog/backlog"
