"""Reports: the data read over a window, the plots, the HTML page, and `lbm report`."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_sample
from test_cli import lbm, ok
from test_cycle import GIB, HZ, STEP, write_cluster, write_config

from lblog import spool
from lblog.sample import VeRow
from lbvm.config import load
from lbvm.report import data as report_data
from lbvm.report import html, plots
from lbvm.store.engine import connect

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    """The 2-pair test cluster ingested, one move done, and VE 501 on vz2b whose failcnt
    grows by 3 then resets (a restart) and grows to 2."""
    path = write_config(tmp_path)
    end = time.time()
    write_cluster(tmp_path / "spool", end=end)
    for r, fails in enumerate((10, 13, 13, 2)):
        t = end - (3 - r) * STEP - 1
        row = VeRow("501", cpu_raw=int(0.5 * HZ * STEP * (r + 1)), uptime=1000.0 + r * STEP,
                    mem_bytes=2 * GIB, mem_limit_bytes=4 * GIB, disk_bytes=GIB, failcnt=fails)
        spool.write(tmp_path / "spool", make_sample("vz2b", t, [row]))
    ok(path, "ingest")
    ok(path, "migrate", "201", "vz2a", "--yes")
    return path


def collect(cfg: Path) -> report_data.ReportData:
    config = load(cfg)
    engine = connect(config.database)
    try:
        return report_data.collect(engine, config, since=3600)
    finally:
        engine.dispose()


def test_bucket_size_keeps_plots_readable() -> None:
    assert report_data.bucket_size(3600) == 300
    assert report_data.bucket_size(86400) == 900
    assert report_data.bucket_size(30 * 86400) / 300 % 1 == 0
    assert 30 * 86400 / report_data.bucket_size(30 * 86400) <= report_data.MAX_BUCKETS


def test_utilisation_is_the_mean_of_node_totals_over_capacity() -> None:
    series = pd.DataFrame({"node": ["a", "a", "a", "b"], "ts": [10.0, 20.0, 310.0, 20.0],
                           "cpu": [2.0, 4.0, 8.0, 1.0], "mem": [1.0, 3.0, 2.0, 4.0]})
    capacity = pd.DataFrame({"node": ["a", "b", "c"], "cpus": [8.0, 4.0, 8.0],
                             "mem_bytes": [8.0, 8.0, 8.0]})
    cpu, mem = report_data.utilisation(series, capacity, 0.0, 300.0, 2)
    assert list(cpu.to_numpy()[0]) == [pytest.approx(3 / 8), 1.0]
    assert cpu.to_numpy()[1, 0] == 0.25 and np.isnan(cpu.to_numpy()[1, 1])
    assert cpu.loc["c"].isna().all(), "a node without samples has no value, not 0"
    assert mem.to_numpy()[0, 0] == 0.25
    score = report_data.imbalance(cpu, mem, {"cpu": 1.0, "mem": 1.0})
    expected = np.std([3 / 8, 0.25]) + np.std([0.25, 0.5])
    assert score[0.0] == pytest.approx(expected) and score[300.0] == 0.0


def test_collect_reads_the_window(cfg: Path) -> None:
    data = collect(cfg)
    s = data.summary
    assert (s.nodes, s.pairs, s.ves) == (4, 2, 10)
    assert (s.moves_done, s.moves_failed, s.moves_other) == (1, 0, 0)
    assert s.no_failover == () and s.quarantined == 0
    assert list(data.cpu_util.index) == ["vz1a", "vz1b", "vz2a", "vz2b"]
    # vz1a runs six VEs of 1 core on 8 cores
    assert np.nanmax(data.cpu_util.loc["vz1a"].to_numpy()) == pytest.approx(6 / 8, rel=0.02)
    assert s.score_end is not None and s.score_end > 0.1
    assert data.top_ves["ve"].iloc[0] in {str(101 + i) for i in range(6)}
    assert list(data.failcnt["delta"]) == [3, 2], "growth, then the value after a reset"
    assert s.failcnt_events == 2
    assert data.top_ves.set_index("ve").loc["501", "failcnt"] == 5
    assert list(data.headroom.index) == ["pair1", "pair2"]


def test_plots_are_pngs_with_content(cfg: Path) -> None:
    made = {p.name: p for p in plots.render_all(collect(cfg))}
    assert set(made) == {"utilisation", "headroom", "imbalance", "migrations", "top-ves",
                         "failcnt"}
    for plot in made.values():
        assert plot.png.startswith(PNG_MAGIC)
        image = _decode(plot.png)
        assert image.shape[0] > 100 and image.shape[1] > 500
        assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 20, plot.name


def test_an_empty_store_gives_a_page_with_notes(tmp_path: Path) -> None:
    config = load(write_config(tmp_path))
    engine = connect(config.database)
    try:
        data = report_data.collect(engine, config, since=3600)
    finally:
        engine.dispose()
    assert plots.render_all(data) == []
    page = html.page(data, [])
    assert "pair headroom unavailable: the store has no samples yet" in page
    assert "No samples in the window." in page and "<img" not in page


def test_html_is_self_contained(cfg: Path) -> None:
    data = collect(cfg)
    page = html.page(data, plots.render_all(data))
    assert not re.search(r"""(src|href)=["'](https?:|//)""", page), "no external resources"
    assert "@import" not in page and "<link" not in page
    uris = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(uris) == 6
    for uri in uris:
        assert base64.b64decode(uri).startswith(PNG_MAGIC)
    assert "4 nodes" in page and "2 HA pairs, 10 VEs" in page and "1 / 0" in page


def test_lbm_report_text_html_and_png(cfg: Path, tmp_path: Path) -> None:
    out = ok(cfg, "report", "--since", "1h", "--html", str(tmp_path / "r.html"),
             "--png", str(tmp_path / "png"))
    assert "cluster: 4 nodes in 2 HA pairs, 10 VEs" in out
    assert "pairs that could not fail over: none" in out
    assert "moves: 1 done, 0 failed, 0 other" in out
    assert "Beancounter failures: 2 sample(s) where failcnt grew" in out
    assert re.search(r"501\s+vz2b\s+5", out), "failcnt growth per VE"
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
    written = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert written == ["failcnt.png", "headroom.png", "imbalance.png", "migrations.png",
                       "top-ves.png", "utilisation.png"]
    quiet = ok(cfg, "report", "--quiet", "--html", str(tmp_path / "again.html"))
    assert quiet == "" and (tmp_path / "again.html").exists()
    assert not list(tmp_path.glob(".*.tmp")), "temporary files are renamed, never left"


def test_report_into_a_missing_folder_is_one_line(cfg: Path, tmp_path: Path) -> None:
    result = lbm(cfg, "report", "--html", str(tmp_path / "no" / "such" / "r.html"))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "cannot write there" in result.output
    assert result.output.count("\n") == 1


def _decode(png: bytes) -> np.ndarray:
    from matplotlib.image import imread

    return np.asarray(imread(io.BytesIO(png), format="png"))


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
            *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed")
def test_the_page_renders_in_a_real_browser(cfg: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    ok(cfg, "report", "--quiet", "--since", "1h", "--html", str(page))
    shot = tmp_path / "shot.png"
    done = _chromium([f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri()],
                     tmp_path / "profile")
    assert shot.exists(), done.stderr[-2000:]
    image = _decode(shot.read_bytes())
    assert image.shape[:2] == (2000, 1280)
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 200, "a blank or unstyled page"
    for log in (done.stderr,):
        assert "Uncaught" not in log and "ERROR:CONSOLE" not in log
    dom = _chromium(["--dump-dom", page.as_uri()], tmp_path / "profile2")
    assert 'data-plots="6"' in dom.stdout and 'data-plots-ok="yes"' in dom.stdout, (
        dom.stderr[-2000:])
    assert "Uncaught" not in dom.stderr and "ERROR:CONSOLE" not in dom.stderr
