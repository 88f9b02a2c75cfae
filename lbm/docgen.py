"""Generate docs/cli.md from the commands' own --help, so the reference never goes stale.

    python -m lbm.docgen > docs/cli.md

The prose around the reference (config, formats, exit codes) lives here; each command's
section is its --help text exactly as `lbm COMMAND --help` prints it. A test regenerates
the file and compares.
"""

from __future__ import annotations

import click

from lbm.cli import COMMANDS, main

WIDTH = 92

INTRO = """\
# `lbm`: the command line

`lbm` reads and acts on the LBVM store. Every command has `--help`, ending with an example.
The command reference below is generated from that help (`python -m lbm.docgen >
docs/cli.md`); a test fails when it is out of date.

```
lbm [--config PATH] [-v|-vv] COMMAND [OPTIONS]
```

## Configuration

`--config PATH` (or the environment variable `LBVM_CONFIG`) names the config file. Without
it, `lbm` uses `./lbvm.toml` when present, else `/etc/lbvm/lbvm.toml` when present, else
the built-in defaults (see `share/lbvm.toml.example` for every key). The config is read and
the store opened only by the commands that need them, so `lbm --help` is instant.

`-v` logs informational messages to stderr, `-vv` debug messages.

## Output formats

Listing commands take `--format table|json|csv` (default `table`):

- **table**: aligned plain text in human units: sizes in KiB/MiB/GiB, utilisation in %,
  CPU in cores (the column header says `(cores)`), times as `YYYY-mm-dd HH:MM:SSZ` (UTC),
  `-` for a missing value.
- **json**: a list of objects whose keys are the column names each command lists; raw
  numbers (bytes as integers, utilisation as a fraction such as `0.75`, CPU in cores),
  times as ISO-8601 UTC strings (`2026-01-01T00:00:00Z`), `null` for a missing value.
  Field names are stable: they change only with a note in the changelog.
- **csv**: a header line, then one line per row; values as in JSON, empty when missing,
  booleans `true`/`false`.

Units follow the column name: `*_bytes` and `mem*` are bytes, `*_util` and `*_share` a
fraction, `cpu*` cores, `ts`, `time`, `*_at`, `*_seen` times.

`lbm plan`, `rebalance`, `migrate` and `maintenance` print a plan document. JSON:

```json
{"algorithm": "balance", "score_before": 0.625, "score_after": 0.085,
 "moves": [{"ve": "101", "from": "vz1a", "to": "vz1b", "kind": "switchover",
            "bytes": 4294967296, "reason": "cpu 0.75→0.62 on vz1a; ..."}],
 "notes": [], "valid": true, "problems": []}
```

`kind` is `switchover` (inside a pair, the data is already mirrored) or `migrate` (to
another pair); `bytes` is what the move copies; `problems` lists the validator's reasons
when `valid` is false. When moves ran, the document adds `run_id`, `status` and, per move,
`state` and `exit_code`. CSV prints the moves only.

Long work (`ingest`, `report`) shows a progress bar on a terminal, and nothing in cron
(stderr not a terminal) or with `--format json`.

## Rules a move must keep

The validator's must-rules are never overridden, not even by `--force`: capacity
(`[balance].max_utilisation` after every move), failover headroom (the weaker node of every
pair could carry the pair, within `[balance].failover_overcommit`), pins and maintenance.
Should-rules (preferences) may be overridden with `lbm migrate --force`; none exist yet.

## Shell completion

`lbm completion bash|zsh|fish` prints click's completion script; the same scripts ship in
`share/completion/` (`lbm.bash`, `_lbm`, `lbm.fish`).

## Exit codes

| code | meaning |
|---|---|
| 0 | success (for `plan`, also when the plan would be refused: see `valid`) |
| 1 | {exit_1} |
| 2 | usage error: unknown command or option, bad option value (`--format`, `--sort`, a duration) |

## Commands
"""


EXIT_1 = (
    "an error, with a one-line message on stderr: bad or missing config, unreachable store, "
    "stale samples, unknown algorithm, unknown VE or node, a node in no pair, a plan refused "
    "by the validator (`rebalance`, `migrate`, `maintenance`), a failed move, confirmation "
    "declined"
)


def command_help(name: str) -> str:
    """`lbm NAME --help` as printed at a fixed width."""
    root = click.Context(main, info_name="lbm", terminal_width=WIDTH, max_content_width=WIDTH,
                         **main.context_settings)
    command = main.get_command(root, name)
    if command is None:
        raise KeyError(name)
    ctx = click.Context(command, info_name=name, parent=root, terminal_width=WIDTH,
                        max_content_width=WIDTH)
    return command.get_help(ctx)


def generate() -> str:
    parts = [INTRO.replace("{exit_1}", EXIT_1)]
    root = click.Context(main, info_name="lbm")
    for name in sorted(COMMANDS):
        command = main.get_command(root, name)
        if command is None or command.hidden:
            continue
        parts.append(f"\n### `lbm {name}`\n\n```text\n{command_help(name)}\n```\n")
    return "".join(parts)


if __name__ == "__main__":
    click.echo(generate(), nl=False)
