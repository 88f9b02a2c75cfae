"""The agent's value objects behave like the frozen dataclasses they replace."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import pytest

from lblog.deliver import Delivery
from lblog.ha.report import HaReport, HaSample, with_ha
from lblog.openvz import Quota, VeStat
from lblog.sample import NodeTotals, Sample, VeRow

TOTALS = NodeTotals(2, 100, 900, 8 << 30, 4 << 30, 0.5, 0.25, 0.125)


def sample(*ves: VeRow) -> Sample:
    return Sample("n1", 1.5, "openvz", 1000, 100, TOTALS, ves)


def test_defaults_keywords_and_positions():
    row = VeRow("101", 5, mem_bytes=7)
    assert (row.ve, row.cpu_raw, row.uptime, row.mem_bytes) == ("101", 5, None, 7)
    assert row.beancounters == {}
    assert VeRow("1").beancounters is not VeRow("1").beancounters  # a new dict each time
    assert TOTALS.disk_total_bytes is None and TOTALS.load15 == 0.125
    assert sample().node == "n1" and sample().ves == ()


def test_equality_is_by_class_and_fields():
    assert VeRow("101", 5) == VeRow(ve="101", cpu_raw=5)
    assert VeRow("101", 5) != VeRow("101", 6)
    assert VeRow("101", beancounters={"x": (1, 2, 3, 4, 5)}) != VeRow("101")
    assert sample(VeRow("1")) == sample(VeRow("1"))
    assert sample() != with_ha(sample(), None)  # another class, as with dataclasses
    assert TOTALS != (2, 100, 900, 8 << 30, 4 << 30, 0.5, 0.25, 0.125, None, None)


def test_frozen():
    row = VeRow("101")
    with pytest.raises(AttributeError, match="cannot assign to field 've'"):
        row.ve = "102"
    with pytest.raises(AttributeError, match="cannot assign to field 'other'"):
        row.other = 1
    with pytest.raises(AttributeError, match="cannot delete field 'cpu_raw'"):
        del row.cpu_raw
    assert row.ve == "101"


def test_repr_hash_pickle_copy():
    assert repr(VeRow("7", 1)) == (
        "VeRow(ve='7', cpu_raw=1, uptime=None, mem_bytes=None, mem_limit_bytes=None, "
        "swap_bytes=None, disk_bytes=None, disk_limit_bytes=None, failcnt=None, beancounters={})"
    )
    assert hash(TOTALS) == hash(NodeTotals(2, 100, 900, 8 << 30, 4 << 30, 0.5, 0.25, 0.125))
    with pytest.raises(TypeError):  # the beancounters dict is not hashable
        hash(VeRow("7"))
    ha = with_ha(sample(VeRow("7", 1)), HaReport(drbd_status="absent"))
    for value in (TOTALS, sample(VeRow("7")), ha, Delivery(Path("/x"), True, reason="why")):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value


def test_ha_sample_extends_sample():
    base = sample(VeRow("7"))
    ha = with_ha(base, HaReport(drbd_status="ok"))
    assert isinstance(ha, HaSample) and isinstance(ha, Sample)
    assert ha.ha == HaReport(drbd_status="ok") and ha.ves == base.ves and ha.node == "n1"
    assert HaSample("n1", 1.5, "openvz", 1000, 100, TOTALS, ()).ha is None
    assert repr(ha).startswith("HaSample(node='n1', ") and ", ha=HaReport(" in repr(ha)
    again = with_ha(ha, None)  # an HaSample's own report is replaced, not nested
    assert again.ha is None and again.totals is TOTALS


def test_named_tuples_stay_tuples():
    stat = VeStat(*range(11))
    assert stat.cpu == 0 + 1 + 2 and stat.uptime_fine == 6 and stat[3] == 3
    assert repr(Quota(1, 2, 3)) == "Quota(usage_kb=1, softlimit_kb=2, hardlimit_kb=3)"
    assert Quota(1, 2, 3) == (1, 2, 3) and Quota(1, 2, 0).limit_bytes is None
