"""Find spool files safely, oldest first, and read one.

Scanning never follows a symlink (a link could point out of the spool); reading opens with
O_NOFOLLOW. Decoding is strict (lblog.spool.decode plus the header checks of
lbvm.store.parse, which turns whole chunks of files into columns for the ingest).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lblog import spool as spoolfmt
from lbvm.store.parse import read_file

_STAMP = re.compile(r"(\d{8}T\d{6}(?:\.\d+)?)Z?\.json$")


@dataclass(frozen=True)
class SpoolFile:
    node: str  # the directory under incoming/: the ledger's key with the name
    name: str
    path: Path


@dataclass(frozen=True)
class Scan:
    files: tuple[SpoolFile, ...]
    skipped: tuple[str, ...]  # why each ignored entry was ignored (symlinks, odd names)


def _order(f: SpoolFile) -> tuple[str, str, str]:
    """Collection time first (from the name), so batches go forward in time for all nodes."""
    m = _STAMP.search(f.name)
    return (m.group(1) if m else "", f.node, f.name)


def scan(spool: Path) -> Scan:
    """Every ``incoming/<node>/*.json`` regular file, oldest first; symlinks are skipped."""
    incoming = Path(spool) / "incoming"
    files: list[SpoolFile] = []
    skipped: list[str] = []
    if not incoming.is_dir() or incoming.is_symlink():
        return Scan((), ())
    with os.scandir(incoming) as nodes:
        node_entries = sorted(nodes, key=lambda e: e.name)
    for nd in node_entries:
        if nd.name.startswith("."):
            continue
        if nd.is_symlink():
            skipped.append(f"{nd.path}: symlink ignored (spool folders must be real folders)")
            continue
        if not nd.is_dir(follow_symlinks=False):
            continue
        if not spoolfmt.NODE_NAME.match(nd.name) or ".." in nd.name:
            skipped.append(f"{nd.path}: not a valid node name, folder ignored")
            continue
        with os.scandir(nd.path) as entries:
            for e in entries:
                if e.name.startswith(".") or not e.name.endswith(spoolfmt.SUFFIX):
                    continue
                if e.is_symlink():
                    skipped.append(f"{e.path}: symlink ignored (spool files must be real files)")
                    continue
                if e.is_file(follow_symlinks=False):
                    files.append(SpoolFile(nd.name, e.name, Path(e.path)))
    files.sort(key=_order)
    return Scan(tuple(files), tuple(skipped))


def read(f: SpoolFile) -> dict[str, Any]:
    """Read and check one file; raises LbvmError (bad content) or OSError (I/O)."""
    return read_file(f.node, str(f.path))[0]
