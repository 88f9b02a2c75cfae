"""Parameter types shared by commands."""

from __future__ import annotations

from typing import Any

import click


class Duration(click.ParamType):
    """'90s', '5m', '24h', '14d' or a number of seconds -> seconds (float)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        from lbvm.config import parse_duration
        from lbvm.errors import ConfigError

        if isinstance(value, float):
            return value
        try:
            seconds = parse_duration(value, "duration")
        except ConfigError:
            self.fail(f"{value!r} is not a duration such as 90s, 5m, 24h or 14d", param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than zero", param, ctx)
        return seconds


DURATION = Duration()
