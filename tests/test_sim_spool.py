"""`--trace-format lbvm` from a spool folder: incoming/ and done/ replayed, the original
untouched, bad files named, and the replay through the CLI on the spool's own pairs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lblog.sample import VeRow
from lbm.cli import main
from lbvm.errors import ConfigError, ParseError
from lbvm.sim import scenario as sc
from lbvm.sim.storetrace import read_lbvm

Writer = Callable[..., Path]
GIB = 1 << 30
HZ = 100  # jiffies per second in conftest.make_sample


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _history(write: Writer, spool: Path) -> None:
    """Four nodes, three VEs, four 5-minute samples each; the first two runs are in done/.

    VE 101 on a1 uses 0.5 then 1.5 then 1.0 cores, 102 on b2 a steady 2.0; 103 appears on
    a2 at the third run.
    """
    cpu = {"101": [0.0, 0.5, 1.5, 1.0], "102": [0.0, 2.0, 2.0, 2.0], "103": [0.0, 0.0, 0.0, 0.25]}
    home = {"101": "a1", "102": "b2", "103": "a2"}
    for i, t in enumerate((1200.0, 1500.0, 1800.0, 2100.0)):
        for node in ("a1", "a2", "b1", "b2"):
            rows = []
            for ve, where in home.items():
                if where != node or (ve == "103" and i < 2):
                    continue
                raw = int(sum(cpu[ve][: i + 1]) * 300 * HZ)
                rows.append(VeRow(ve, cpu_raw=raw, uptime=int(t), mem_bytes=GIB,
                                  disk_bytes=2 * GIB))
            path = write(node, t, rows, cpus=4, mem=8 * GIB)
            if i < 2:  # already ingested by the site: lbm ingest moved it to done/
                done = spool / "done" / node
                done.mkdir(parents=True, exist_ok=True)
                path.rename(done / path.name)


def test_spool_history_in_incoming_and_done(spool_dir: Path, write_sample: Writer) -> None:
    _history(write_sample, spool_dir)
    before = _tree(spool_dir)
    trace, cluster = read_lbvm(spool_dir, sc.SimScenario(), interval=300.0)
    assert _tree(spool_dir) == before  # the original is never changed
    assert trace.ves == ("101", "102", "103") and trace.nodes == ("a1", "b2", "a2")
    assert trace.start == 1200.0 and trace.n_steps == 4
    # rates come from the raw counters: the first sample of a VE has no rate yet
    assert np.isnan(trace.cpu[0, 0])
    assert trace.cpu[0, 1:].tolist() == pytest.approx([0.5, 1.5, 1.0])
    assert trace.cpu[1, 1:].tolist() == pytest.approx([2.0, 2.0, 2.0])
    assert np.isnan(trace.cpu[2, :3]).all()  # 103 was not there yet
    assert trace.mem[0].tolist() == [GIB] * 4 and trace.disk.tolist() == [2 * GIB] * 3
    # a bare spool pairs its nodes in name order, with the capacities they reported
    assert cluster.nodes == ("a1", "a2", "b1", "b2")
    assert cluster.pairs == ("pair1", "pair1", "pair2", "pair2")
    assert cluster.cpus.tolist() == [4.0] * 4 and cluster.mem_bytes.tolist() == [8 * GIB] * 4


def test_spool_replay_through_the_cli_on_its_own_pairs(spool_dir: Path,
                                                       write_sample: Writer) -> None:
    _history(write_sample, spool_dir)
    args = ["simulate", "--trace", str(spool_dir), "--trace-format", "lbvm",
            "--algorithm", "balance", "--algorithm", "consolidate", "--format", "json"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["trace"]["format"] == "lbvm" and doc["trace"]["steps"] == 4
    assert doc["scenario"]["placement"] == "trace" and doc["scenario"]["nodes"] == 4
    assert [r["algorithm"] for r in doc["results"]] == ["balance", "consolidate"]
    for result in doc["results"]:
        assert result["ves"] == 3 and result["plans"] == 4 and result["refused"] == 0
        assert result["slatah"] == 0.0 and result["energy_kwh"] > 0


def test_spool_with_a_bad_file_names_it(spool_dir: Path, write_sample: Writer) -> None:
    _history(write_sample, spool_dir)
    bad = spool_dir / "done" / "b1" / "b1-broken.json"
    bad.write_bytes(b'{"format": "lbvm-spool", "version": 1, ')
    before = _tree(spool_dir)
    with pytest.raises(ParseError, match=r"done/b1/b1-broken\.json: cannot be replayed"):
        read_lbvm(spool_dir, sc.SimScenario())
    assert _tree(spool_dir) == before


def test_spool_with_an_odd_node_count_asks_for_pairs(spool_dir: Path,
                                                     write_sample: Writer) -> None:
    write_sample("solo", 1200.0, [VeRow("101", cpu_raw=0, uptime=10, mem_bytes=GIB)])
    write_sample("solo", 1500.0, [VeRow("101", cpu_raw=3000, uptime=310, mem_bytes=GIB)])
    with pytest.raises(ConfigError, match="1 nodes cannot be paired"):
        read_lbvm(spool_dir, sc.SimScenario())
