"""`lbm demo` end to end: /proc files -> lblog -> spool -> ingest -> plan -> validate -> execute."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lbm.cli import main
from lbvm.demo import generate, prepare_dir
from lbvm.errors import LbvmError


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("demo") / "site"
    result = CliRunner().invoke(
        main, ["demo", "--dir", str(folder), "--pairs", "3", "--ves", "40", "--rounds", "4"]
    )
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_demo_balances_and_repairs_failover(demo_run: tuple[Path, str]) -> None:
    _, out = demo_run
    assert "validated" in out
    before, after = map(float, re.search(r"imbalance score: ([\d.]+) -> ([\d.]+)", out).groups())
    assert after < before / 2
    broken = re.search(r"could not fail over: (\d+) before, (\d+) after", out)
    assert broken and int(broken.group(2)) == 0
    assert "lblog collect: 24 spool files" in out
    assert "0 quarantined" in out


def test_demo_folder_is_a_working_site(demo_run: tuple[Path, str]) -> None:
    folder, out = demo_run
    cfg = str(folder / "lbvm.toml")
    runner = CliRunner()
    listing = runner.invoke(main, ["--config", cfg, "list", "--format", "json"])
    assert listing.exit_code == 0, listing.output
    ves = json.loads(listing.output)
    assert len(ves) == 40
    assert {v["node"] for v in ves} <= {f"vz{p}{s}" for p in (1, 2, 3) for s in "ab"}
    # Every planned move is journalled as done, and the store agrees with the last move.
    moves = int(re.search(r"executed on the simulate backend: (\d+)/(\d+)", out).group(1))
    log = runner.invoke(main, ["--config", cfg, "log", "--format", "json", "--limit", "1000"])
    assert log.exit_code == 0, log.output
    done = [e for e in json.loads(log.output) if "done:" in str(e.get("message", ""))]
    assert len(done) == moves > 0
    # Planning again on the balanced cluster finds (almost) nothing worth doing.
    again = runner.invoke(main, ["--config", cfg, "plan", "--format", "json"])
    assert again.exit_code == 0, again.output
    assert len(json.loads(again.output)["moves"]) <= 2


def test_generated_cluster_is_skewed_but_possible() -> None:
    cluster = generate(pairs=4, ves=80, seed=1)
    per_node = {n.name: 0 for n in cluster.nodes}
    for ve in cluster.ves:
        per_node[ve.node] += ve.mem_bytes
    caps = {n.name: n.mem_bytes for n in cluster.nodes}
    utils = sorted(per_node[n] / caps[n] for n in per_node)
    assert utils[-1] <= 0.97  # no node starts physically overfull
    assert utils[-1] - utils[0] > 0.3  # but the load is uneven


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(LbvmError, match="not made by `lbm demo`"):
        prepare_dir(tmp_path)
    assert (tmp_path / "precious.txt").exists()


def test_demo_pairs_report_healthy_drbd(demo_run: tuple[Path, str]) -> None:
    """Each demo node's /proc/drbd travels in the spool; every pair is judged healthy."""
    folder, _ = demo_run
    result = CliRunner().invoke(
        main, ["--config", str(folder / "lbvm.toml"), "pairs", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    pairs = json.loads(result.output)
    assert len(pairs) == 3 and {p["ha"] for p in pairs} == {"healthy"}
