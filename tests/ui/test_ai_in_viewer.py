"""Run AI from the viewer: progress on the worker, heatmap into the overlay, findings listed with
the model's identity and notice, selecting one centres the views, scope banner when outside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ui.controllers.study_opening import viewer_load_job
from ui.main_window import MainWindow
from ui.widgets.findings_panel import COLUMNS
from workstation.cli import main as cli
from workstation.jobs import CancelToken, run_job
from workstation.library import StudyLibrary
from workstation.review.users import add_user, login

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run


def test_run_ai_lists_findings_and_centres_views(loaded: MainWindow, qtbot) -> None:
    with qtbot.waitSignal(loaded.runner.succeeded, timeout=120000):
        loaded.ai.run_ai()
    qtbot.waitUntil(lambda: not loaded.runner.busy)
    panel = loaded.findings_panel
    assert "lung-nodule-demo" in panel.model_label.text() and "not for diagnosis" in panel.model_label.text()
    assert loaded.state.heatmap is not None and loaded.state.heatmap.shape == loaded.state.volume.shape
    assert "lung-nodule-demo" in loaded.overlay_label.text()
    count = panel.tree.topLevelItemCount()
    assert count == len(loaded.state.markers) and count >= 1
    header, size = panel.tree.header(), COLUMNS.index("mm")  # probability and size seen without scrolling
    assert COLUMNS.index("Prob.") < size and header.sectionViewportPosition(size) + header.sectionSize(size) \
        <= panel.tree.viewport().width(), (header.sectionViewportPosition(size), panel.tree.viewport().width())
    panel.tree.setCurrentItem(panel.tree.topLevelItem(count - 1))
    centre = panel.tree.topLevelItem(count - 1).data(0, 0x0100)
    np.testing.assert_allclose(loaded.state.crosshair, centre, atol=1.0)
    axial = loaded.views["axial"]
    np.testing.assert_allclose((axial.centre - centre) @ axial.frame.right, 0, atol=1.0)  # centred in view


def test_scope_banner_on_thick_slices(window: MainWindow, real_ct: Path, qtbot) -> None:
    window.opening.on_loaded(run_job(viewer_load_job([real_ct / "chest-5mm-lesion14mm"], window.home, None,
                                              CancelToken())))
    with qtbot.waitSignal(window.runner.succeeded, timeout=120000):
        window.ai.run_ai()
    qtbot.waitUntil(lambda: not window.runner.busy)
    assert window.findings_panel.banner.isVisible()
    assert "Outside validated scope: slice thickness 5 mm" in window.findings_panel.banner.text()


def _analyses(window: MainWindow) -> list[tuple]:
    return window.store.connection.execute("SELECT id, created_by, details FROM analyses ORDER BY id").fetchall()


def test_a_headless_run_opens_in_the_viewer_without_a_re_run(window: MainWindow, small_phantom_dir: Path,
                                                             monkeypatch, qtbot) -> None:
    """`workstation analyze STUDY --as USER`, then the viewer on that study: the recorded findings,
    heatmap and model are shown, and the model does not run again (#27)."""
    monkeypatch.setenv("WORKSTATION_PASSWORD", "correct horse battery")
    assert cli(["import", str(small_phantom_dir / "dicom")]) == 0
    assert cli(["users", "add", "boss", "--role", "admin"]) == 0
    assert cli(["analyze", "1", "--as", "boss"]) == 0
    recorded = window.store.connection.execute("SELECT count(*) FROM findings").fetchone()[0]
    assert recorded >= 1

    def no_model_run(*args, **kwargs):
        raise AssertionError("the model ran again")

    monkeypatch.setattr("workstation.inference.runner.run_inference_job", no_model_run)
    monkeypatch.setattr("ui.controllers.ai_run.run_inference_job", no_model_run)
    key = StudyLibrary(window.home).studies()[0]["key"]
    with qtbot.waitSignal(window.opening.recorded_run_shown, timeout=60000):
        window.opening.open_study(key)
    qtbot.waitUntil(lambda: not window.runner.busy)
    panel = window.findings_panel
    assert panel.tree.topLevelItemCount() == recorded  # nobody logged in: listed read-only
    assert "lung-nodule-demo" in panel.model_label.text() and "No AI result yet" not in panel.model_label.text()
    assert window.state.heatmap is not None and window.state.heatmap.shape == window.state.volume.shape
    assert "recorded" in window.overlay_label.text() and "boss" in window.overlay_label.text()
    assert len(window.state.markers) == recorded
    window.review.set_user(login(window.store, "boss", "correct horse battery"))  # a reader logs in: same list
    assert panel.tree.topLevelItemCount() == recorded
    assert [row[1] for row in _analyses(window)] == ["boss"]


def test_run_ai_in_the_viewer_is_recorded_each_time(loaded: MainWindow, qtbot) -> None:
    reader = add_user(loaded.store, None, "admin", "correct horse", "admin")
    loaded.review.set_user(reader)
    for _ in range(2):
        with qtbot.waitSignal(loaded.runner.succeeded, timeout=180000):
            loaded.ai.run_ai()
        qtbot.waitUntil(lambda: not loaded.runner.busy)
    runs = _analyses(loaded)
    assert [row[1] for row in runs] == ["admin", "admin"]
    assert json.loads(runs[1][2])["repeats"] == runs[0][0]
    findings = loaded.store.connection.execute("SELECT count(*) FROM findings").fetchone()[0]
    assert findings == loaded.findings_panel.tree.topLevelItemCount() >= 1  # proposed once, not twice
    assert loaded.store.connection.execute(
        "SELECT count(*) FROM audit WHERE action = 'analysis_run' AND user = 'admin'").fetchone()[0] == 2
