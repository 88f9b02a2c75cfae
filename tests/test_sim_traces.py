"""Trace readers: PlanetLab (names with spaces), GWA-T-12 and a site's own store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lbvm.errors import ConfigError, ParseError
from lbvm.sim import scenario as sc
from lbvm.sim.gwa import read_gwa
from lbvm.sim.storetrace import read_lbvm
from lbvm.sim.traces import CLOUDSIM_VM_TYPES, MIB, read_planetlab, ve_ids
from lbvm.store.engine import connect
from lbvm.store.schema import nodes, ve_samples

TRACES = Path(__file__).parent / "fixtures" / "traces"


def test_planetlab_reads_files_with_spaces_sorted_with_cloudsim_types() -> None:
    trace = read_planetlab(TRACES / "planetlab")
    assert trace.n_ves == 5 and trace.n_steps == 12
    assert trace.sources[1] == "aladdin_planetlab_extranet_uni-passau_de_ rnp_dcc_ufjf"
    assert trace.ves[1] == "aladdin_planetlab_extranet_uni-passau_de__rnp_dcc_ufjf"
    # VM i gets type i mod 4: 2,500 / 2,000 / 1,000 / 500 MIPS, then 2,500 again.
    assert trace.cpu_size.tolist() == [2.5, 2.0, 1.0, 0.5, 2.5]
    assert trace.mem_size[2] == 1740 * MIB and trace.mem_size[3] == 613 * MIB
    first = (TRACES / "planetlab" / trace.sources[0]).read_text().split()
    assert trace.cpu[0, 0] == pytest.approx(int(first[0]) / 100 * 2.5)
    assert (trace.mem[3] == 613 * MIB).all()


def test_planetlab_bad_line_names_file_and_line() -> None:
    with pytest.raises(ParseError, match=r"metis_mcs_suffolk_edu_ yale_p4p:7: '4x'"):
        read_planetlab(TRACES / "planetlab-bad")


def test_planetlab_rejects_out_of_range_and_short_files(tmp_path: Path) -> None:
    (tmp_path / "a b").write_text("1\n2\n3\n")
    (tmp_path / "c").write_text("1\n2\n")
    with pytest.raises(ParseError, match=r"c: 2 values, but a b has 3"):
        read_planetlab(tmp_path)
    (tmp_path / "c").write_text("1\n101\n3\n")
    with pytest.raises(ParseError, match=r"c:2: '101'"):
        read_planetlab(tmp_path)


def test_planetlab_memory_types_are_configurable() -> None:
    trace = read_planetlab(TRACES / "planetlab", types=CLOUDSIM_VM_TYPES[:1])
    assert (trace.cpu_size == 2.5).all()


def test_ve_ids_are_safe_and_unique() -> None:
    assert ve_ids(["a b", "a_b", "-x", "a b"]) == ("a_b", "a_b-2", "x", "a_b-3")


def test_gwa_resamples_to_the_interval() -> None:
    trace = read_gwa(TRACES / "gwa", interval=600.0)
    assert trace.ves == ("1", "2", "3")
    text = (TRACES / "gwa" / "1.csv").read_text().splitlines()[1:]
    rows = [[float(x) for x in line.split(";\t")] for line in text]
    start = rows[0][0] // 600 * 600
    assert trace.start == start
    step0 = [r[3] for r in rows if (r[0] - start) // 600 == 0]
    assert trace.cpu[0, 0] == pytest.approx(np.mean(step0) / 1000)
    assert trace.mem_size[0] == 16777216 * 1024
    # VM 3 starts 900 s later: not running in the first interval.
    assert np.isnan(trace.cpu[2, 0]) and not np.isnan(trace.cpu[2, 2])


def test_gwa_bad_value_names_file_and_line() -> None:
    with pytest.raises(ParseError, match=r"2\.csv:4: CPU usage \[MHZ\] 'n/a'"):
        read_gwa(TRACES / "gwa-bad")


def test_gwa_missing_column(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Timestamp [ms];\tCPU cores\n1;\t2\n")
    with pytest.raises(ParseError, match=r"x\.csv:1: no column"):
        read_gwa(tmp_path)


def test_lbvm_store_trace_keeps_where_ves_ran(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = connect(url)
    with engine.begin() as conn:
        conn.execute(nodes.insert(), [
            {"name": n, "cpus": 8.0, "mem_bytes": 8 << 30, "maintenance": False}
            for n in ("a1", "a2", "b1", "b2")])
        conn.execute(ve_samples.insert(), [
            {"ve": ve, "node": node, "ts": 1000.0 + 300 * i, "cpu_used": 0.5 + i,
             "mem_bytes": 1 << 30, "disk_bytes": 2 << 30}
            for ve, node in (("101", "a1"), ("102", "b2")) for i in range(3)])
    engine.dispose()
    trace, cluster = read_lbvm(url, sc.SimScenario(), interval=300.0)
    assert trace.ves == ("101", "102") and trace.nodes == ("a1", "b2")
    assert trace.cpu[0].tolist() == [0.5, 1.5, 2.5]
    assert trace.disk.tolist() == [2 << 30, 2 << 30]
    assert cluster.nodes == ("a1", "a2", "b1", "b2")
    assert cluster.pairs == ("pair1", "pair1", "pair2", "pair2")


def test_lbvm_source_must_be_something_we_know(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a config file"):
        read_lbvm(tmp_path, sc.SimScenario())
