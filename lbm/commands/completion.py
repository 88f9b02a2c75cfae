"""`lbm completion SHELL`: click's completion script for bash, zsh or fish."""

from __future__ import annotations

import click

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_LBM_COMPLETE"


def script(shell: str) -> str:
    """The completion script ``lbm`` installs for ``shell`` (what share/completion holds)."""
    from click.shell_completion import get_completion_class

    from lbm.cli import main

    cls = get_completion_class(shell)
    if cls is None:
        raise click.BadParameter(f"no completion for {shell!r}", param_hint="SHELL")
    return cls(main, {}, "lbm", COMPLETE_VAR).source()


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for bash, zsh or fish.

    Install it once, e.g. bash: lbm completion bash > /etc/bash_completion.d/lbm; zsh: into
    a folder of $fpath as _lbm; fish: ~/.config/fish/completions/lbm.fish. The same files
    ship in share/completion/.

    Example: lbm completion bash > ~/.local/share/bash-completion/completions/lbm
    """
    click.echo(script(shell), nl=False)
