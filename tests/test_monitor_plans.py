"""The recommend level end to end: the nightly run stores a plan, `lbm plan --show/--apply`
check it against the cluster as it is now, and `lbm automation` sets a VE's own level."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from test_monitor import make_site

from lbm.cli import main
from lbvm import journal
from lbvm.monitor import Monitor, MonitorSettings
from lbvm.store.engine import connect
from lbvm.store.schema import plans, ves


def lbm(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(cfg), *args])


@pytest.fixture
def recommended(tmp_path: Path) -> tuple[Path, int]:
    """A site whose nightly run at the recommend level stored a plan; (config, plan id)."""
    cfg = make_site(tmp_path)
    mon = Monitor(cfg, settings=MonitorSettings(automation="recommend", threshold=5))
    result = mon.run_once(nightly=True)
    mon.engine.dispose()
    assert result.moved == 0 and result.stored_plan is not None
    return cfg, result.stored_plan


def where(cfg: Path) -> dict[str, str]:
    engine = connect(f"sqlite:///{cfg.parent / 'lbvm.db'}")
    with engine.connect() as conn:
        got = {str(r[0]): str(r[1]) for r in conn.execute(sa.select(ves.c.ve, ves.c.node))}
    engine.dispose()
    return got


def test_show_then_apply_then_never_again(recommended: tuple[Path, int]) -> None:
    cfg, plan_id = recommended
    shown = lbm(cfg, "plan", "--show", str(plan_id), "--format", "json")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["valid"] and doc["plan_id"] == plan_id and doc["plan_state"] == "open"
    assert doc["moves"] and all(isinstance(m["mandatory"], bool) for m in doc["moves"])

    applied = lbm(cfg, "plan", "--apply", str(plan_id), "--yes", "--format", "json")
    assert applied.exit_code == 0, applied.output
    after = where(cfg)
    assert all(after[m["ve"]] == m["to"] for m in doc["moves"])
    engine = connect(f"sqlite:///{cfg.parent / 'lbvm.db'}")
    assert set(journal.moves_frame(engine)["state"]) == {"done"}
    assert journal.get_plan(engine, plan_id).state == "applied"
    engine.dispose()

    again = lbm(cfg, "plan", "--apply", str(plan_id), "--yes")
    assert again.exit_code == 1 and f"plan {plan_id} is applied, not open" in again.output


def test_a_stale_plan_is_refused_whole(recommended: tuple[Path, int]) -> None:
    cfg, plan_id = recommended
    engine = connect(f"sqlite:///{cfg.parent / 'lbvm.db'}")
    stored = journal.get_plan(engine, plan_id)
    last = stored.plan.moves[-1]
    with engine.begin() as conn:  # someone moved the plan's last VE meanwhile
        conn.execute(sa.update(ves).where(ves.c.ve == last.ve).values(node=last.dst))
    before = where(cfg)
    got = lbm(cfg, "plan", "--apply", str(plan_id), "--yes")
    assert got.exit_code == 1 and "refused" in got.output
    assert f"{last.ve} is on {last.dst} at this point, not {last.src}" in got.output
    assert where(cfg) == before  # not even the moves that still fit were made
    assert journal.moves_frame(engine).empty
    assert journal.get_plan(engine, plan_id).state == "open"
    engine.dispose()


def test_apply_asks_first(recommended: tuple[Path, int]) -> None:
    cfg, plan_id = recommended
    before = where(cfg)
    got = CliRunner().invoke(main, ["--config", str(cfg), "plan", "--apply", str(plan_id)],
                             input="n\n")
    assert got.exit_code == 1 and "nothing moved" in got.output
    assert where(cfg) == before


def test_plan_options_that_do_not_go_together(recommended: tuple[Path, int]) -> None:
    cfg, _ = recommended
    assert lbm(cfg, "plan", "--show", "1", "--apply", "1").exit_code == 2
    assert lbm(cfg, "plan", "--yes").exit_code == 2
    missing = lbm(cfg, "plan", "--show", "999")
    assert missing.exit_code == 1 and "plan 999 is not stored" in missing.output


def test_automation_command_sets_and_clears_a_ve_level(tmp_path: Path) -> None:
    cfg = make_site(tmp_path)
    Monitor(cfg).run_once()  # ingest: the store knows the VEs
    got = lbm(cfg, "automation", "101", "recommend")
    assert got.exit_code == 0 and "VE 101 is at automation level recommend" in got.output
    engine = connect(f"sqlite:///{tmp_path / 'lbvm.db'}")

    def level() -> str | None:
        with engine.connect() as conn:
            return conn.execute(sa.select(ves.c.automation).where(ves.c.ve == "101")).scalar()

    assert level() == "recommend"
    assert lbm(cfg, "automation", "101", "default").exit_code == 0 and level() is None
    bad = lbm(cfg, "automation", "nope", "report")
    assert bad.exit_code == 1 and "unknown VE 'nope'" in bad.output
    assert lbm(cfg, "automation", "101", "sometimes").exit_code == 2
    engine.dispose()


def test_a_ve_at_recommend_in_an_automatic_cluster_is_stored_not_moved(tmp_path: Path) -> None:
    cfg = make_site(tmp_path)
    probe = Monitor(cfg, settings=MonitorSettings(automation="recommend", threshold=5))
    first = probe.run_once(nightly=True)
    assert first.stored_plan is not None
    chosen = journal.get_plan(probe.engine, first.stored_plan).plan.moves[0].ve
    probe.engine.dispose()
    assert lbm(cfg, "automation", chosen, "recommend").exit_code == 0

    mon = Monitor(cfg, settings=MonitorSettings(automation="automatic", threshold=5))
    result = mon.run_once(nightly=True)
    moved = journal.moves_frame(mon.engine)
    assert result.moved > 0 and chosen not in set(moved["ve"])
    assert result.stored_plan is not None
    kept = journal.get_plan(mon.engine, result.stored_plan).plan.moves
    assert {m.ve for m in kept} == {chosen}
    with mon.engine.connect() as conn:
        states = conn.execute(sa.select(plans.c.state).order_by(plans.c.id)).scalars().all()
    assert states == ["superseded", "open"]
    mon.engine.dispose()
