"""Ids and host names that reach an argv are checked whole: no options, paths or newlines."""

from __future__ import annotations

import pytest

from lbvm.errors import ExecutorError
from lbvm.ids import check_host, check_ve


@pytest.mark.parametrize("ve", ["101", "web-a7f3", "1b2c3d4e-5f60-7182-93a4-b5c6d7e8f901", "ct@x"])
def test_good_ves(ve: str) -> None:
    assert check_ve(ve) == ve


@pytest.mark.parametrize("ve", ["", "-rf", "101\n", "a b", "../x", "a;b", "$(id)", "x" * 129])
def test_bad_ves(ve: str) -> None:
    with pytest.raises(ExecutorError, match="VE id"):
        check_ve(ve)


def test_proxmox_ids_are_integers() -> None:
    assert check_ve("101", numeric=True) == "101"
    with pytest.raises(ExecutorError, match="vmid"):
        check_ve("web1", numeric=True)


@pytest.mark.parametrize("host", ["vz1a", "node-2.example.org", "10.0.0.1", "vz_1"])
def test_good_hosts(host: str) -> None:
    assert check_host(host) == host


@pytest.mark.parametrize("host", ["", "-oProxy=x", "vz1\n", "a..b", "a b", "h/x", "x" * 254])
def test_bad_hosts(host: str) -> None:
    with pytest.raises(ExecutorError, match="host name"):
        check_host(host)
