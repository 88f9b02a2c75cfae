"""``Record``: a frozen value object written by hand, for the agent's hot path.

It behaves like a frozen dataclass: the subclass's own ``__init__`` takes its fields
positionally or by keyword (setting them with ``object.__setattr__``); ``==`` holds between
objects of the same class with equal fields; ``repr``, ``hash`` and pickling follow the
fields; assignment raises AttributeError. Importing ``dataclasses`` and running the code it
generates would cost the agent several milliseconds on every cron run.
"""

from __future__ import annotations


class Record:
    """Frozen value object: subclasses list their fields, in order, in ``_fields``."""

    __slots__: tuple[str, ...] = ()
    _fields: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self._fields])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{self.__class__.__qualname__}({inner})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return self.__class__, self._values()
