"""Integer codes for the names an ingest run meets (VEs, nodes).

Each batch hashes its names once; duplicates, rates, the run's cache, the row order and
the COPY's text fields then work on integer arrays. Codes live as long as the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np


class Names:
    """Name <-> code, with every name's UTF-8 bytes end to end (``blob``) for COPY."""

    def __init__(self) -> None:
        self.code: dict[str, int] = {}
        self.names: list[str] = []
        self.blob = np.zeros(0, dtype=np.uint8)
        self.start = np.zeros(0, dtype=np.int64)  # per code: offset in blob
        self.size = np.zeros(0, dtype=np.int64)  # per code: length in bytes
        self._rank: np.ndarray | None = None
        self._objects: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    def encode(self, values: Sequence[str]) -> np.ndarray:
        """Codes of ``values`` (int64), new names getting the next codes."""
        codes = np.fromiter(map(self.code.get, values, repeat(-1)), np.int64, len(values))
        new = np.flatnonzero(codes < 0)
        if len(new):
            added: list[str] = []
            for i in new.tolist():
                name = values[i]
                code = self.code.get(name)
                if code is None:
                    code = self.code[name] = len(self.names)
                    self.names.append(name)
                    added.append(name)
                codes[i] = code
            self._grow(added)
        return codes

    def _grow(self, added: list[str]) -> None:
        encoded = [name.encode() for name in added]
        size = np.fromiter(map(len, encoded), np.int64, len(encoded))
        start = len(self.blob) + np.cumsum(size) - size
        self.blob = np.concatenate([self.blob, np.frombuffer(b"".join(encoded), np.uint8)])
        self.start = np.concatenate([self.start, start])
        self.size = np.concatenate([self.size, size])
        self._rank = self._objects = None

    def rank(self) -> np.ndarray:
        """Per code, its position among all names in sorted order."""
        if self._rank is None:
            order = np.argsort(self.objects(), kind="stable")
            self._rank = np.empty(len(order), dtype=np.int64)
            self._rank[order] = np.arange(len(order))
        return self._rank

    def objects(self) -> np.ndarray:
        """Per code, its name (an object array)."""
        if self._objects is None:
            self._objects = np.array(self.names, dtype=object)
        return self._objects
