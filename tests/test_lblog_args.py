"""``lblog collect``'s own reading of plain command lines agrees with argparse."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lblog.args import COLLECT, build_parser, parse_args, read_plain

VALUES = st.sampled_from(["/srv/x", "n1", "auto", "proc", "pacemaker", "none", "cgroup2", "7",
                          "0", "-3", "1.5", "nan", "x", "", "-v", "--print", "a=b"])  # fmt: skip
TOKENS = st.one_of(
    st.sampled_from([name for o in COLLECT for name in o.flags]),
    st.sampled_from(["--help", "-h", "--proc", "--prin", "--", "extra", "--version", "-vv"]),
    VALUES,
    st.builds(lambda o, v: f"{o}={v}", st.sampled_from([o.flags[-1] for o in COLLECT]), VALUES),
)


def argparse_reads(argv: list[str]) -> dict[str, object] | None:
    """What argparse makes of argv; None when it exits (help, version, usage error)."""
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return vars(build_parser().parse_args(argv))
    except SystemExit:
        return None


@given(st.lists(TOKENS, max_size=8))
def test_plain_reading_is_argparses_or_nothing(tokens):
    argv = ["collect", *tokens]
    plain = read_plain(argv)
    if plain is not None:
        assert vars(plain) == argparse_reads(argv)


@given(st.lists(st.sampled_from([o for o in COLLECT]), max_size=6), st.booleans())
def test_plain_command_lines_skip_argparse(options, equals):
    argv = ["collect"]
    for o in options:
        if o.flag:
            argv.append(o.flags[-1])
            continue
        value = o.choices[0] if o.choices else "42"
        argv += [f"{o.flags[-1]}={value}"] if equals else [o.flags[-1], value]
    plain = read_plain(argv)
    assert plain is not None
    assert vars(plain) == argparse_reads(argv)


@pytest.mark.parametrize(
    "argv",
    [[], ["--version"], ["collect", "--help"], ["collect", "--proc", "/"], ["collect", "x"],
     ["collect", "--node"], ["collect", "--node", "-x"], ["collect", "--print=yes"],
     ["collect", "--cpu-hz", "0"], ["collect", "--source", "xen"], ["collect", "--", "-v"]],
)  # fmt: skip
def test_anything_else_goes_to_argparse(argv):
    assert read_plain(argv) is None


def test_parse_args_fills_defaults_and_exits_like_argparse(capsys):
    args = parse_args(["collect", "--backlog", "/b"])
    assert args.backlog == "/b" and args.proc_root == "/" and args.lock_wait == 20.0
    assert args.print_path is False and args.spool is None and args.command == "collect"
    assert parse_args(["collect", "--spool", ""]).spool == "."  # as Path("") was
    with pytest.raises(SystemExit) as exc:
        parse_args(["collect", "--backlog-max", "0"])
    assert exc.value.code == 2
    assert "argument --backlog-max: 0 is not positive" in capsys.readouterr().err
    assert isinstance(build_parser(), argparse.ArgumentParser)
