"""End to end: the monitor's check evacuates a node in maintenance and moves the affinity
group on it as a unit (config [[groups]] -> build_problem -> balance -> validator ->
automation -> simulate executor -> journal)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import select
from test_monitor import engine_of, make_site

from lbvm import journal
from lbvm.monitor import Monitor, MonitorSettings
from lbvm.store.queries import set_maintenance
from lbvm.store.schema import ves


def test_check_moves_the_group_off_a_maintenance_node_as_a_unit(tmp_path: Path) -> None:
    site = make_site(tmp_path)
    truth = {f.name: f.read_text().strip() for f in (tmp_path / "cluster").iterdir()}
    node, _ = Counter(truth.values()).most_common(1)[0]
    pair = sorted(ve for ve, n in truth.items() if n == node)[:2]
    site.write_text(site.read_text() + "\n[[groups]]\nname = \"shop\"\nkind = \"affinity\"\n"
                    f"ves = [\"{pair[0]}\", \"{pair[1]}\"]\n")
    monitor = Monitor(site, settings=MonitorSettings(automation="automatic"))
    monitor.run_once()  # ingest; the check may repair what the generated cluster needs
    eng = engine_of(site)
    with eng.begin() as conn:
        where = dict(conn.execute(select(ves.c.ve, ves.c.node)).all())
        set_maintenance(conn, where[pair[0]], True)
    assert where[pair[0]] == where[pair[1]]
    drained = where[pair[0]]

    result = monitor.run_once()
    assert result.active and result.status == "done", result
    frame = journal.moves_frame(eng)
    mine = frame[frame["ve"].isin(pair)]
    assert set(mine["state"]) == {"done"} and len(mine) == 2
    assert (mine["src"] == drained).all() and mine["dst"].nunique() == 1
    assert mine["reason"].str.contains("moves as a unit").all()
    with eng.connect() as conn:
        after = dict(conn.execute(select(ves.c.ve, ves.c.node)).all())
    assert after[pair[0]] == after[pair[1]] != drained
