"""Run AI from the viewer: progress on the worker, heatmap into the overlay, findings listed with
the model's identity and notice, selecting one centres the views, scope banner when outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ui.controllers.study_opening import viewer_load_job
from ui.main_window import MainWindow
from ui.widgets.findings_panel import COLUMNS
from workstation.jobs import CancelToken, run_job


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
    header, size = panel.tree.header(), COLUMNS.index("Size")  # probability and size seen without scrolling
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
