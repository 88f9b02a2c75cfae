"""The state every command shares: the config and the store, opened only when first used."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from lbvm.config import Config


@dataclass
class State:
    """Held in ``ctx.obj``; ``config`` and ``engine`` load lazily so --help stays cheap."""

    config_path: Path | None = None
    _config: Config | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from lbvm.config import load

            self._config = load(self.config_path)
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from lbvm.store.engine import connect

            self._engine = connect(self.config.database)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


pass_state = click.make_pass_decorator(State, ensure=True)
