"""docs/cli.md and share/completion/ are generated: regenerating gives the committed files."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lbm.cli import COMMANDS, main
from lbm.commands.completion import SHELLS, script
from lbm.docgen import generate

ROOT = Path(__file__).resolve().parents[1]
COMPLETION_FILES = {"bash": "lbm.bash", "zsh": "_lbm", "fish": "lbm.fish"}


def test_cli_reference_is_generated_from_help() -> None:
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == generate(), "docs/cli.md is stale: python -m lbm.docgen > docs/cli.md"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_appears_with_its_example(name: str) -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.help is not None
    example = next(line.strip() for line in command.help.splitlines()
                   if line.strip().startswith("Example: lbm "))
    assert f"### `lbm {name}`" in doc and example in doc


@pytest.mark.parametrize("shell", SHELLS)
def test_completion_scripts_are_generated(shell: str) -> None:
    result = CliRunner().invoke(main, ["completion", shell])
    assert result.exit_code == 0 and "_LBM_COMPLETE" in result.output
    assert result.output == script(shell)
    shipped = ROOT / "share" / "completion" / COMPLETION_FILES[shell]
    assert shipped.read_text() == result.output, f"regenerate: lbm completion {shell} > {shipped}"


def test_completion_completes_command_names() -> None:
    from click.shell_completion import ShellComplete

    names = [c.value for c in ShellComplete(main, {}, "lbm", "_LBM_COMPLETE")
             .get_completions([], "ma")]
    assert names == ["maintenance"]
