"""Widget tests need a real display (CI runs the suite under xvfb-run): VTK views render
through GLX, so Qt's offscreen platform cannot stand in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pytest.skip("UI tests need a display: run the suite under xvfb-run", allow_module_level=True)

from ui.controllers.study_opening import viewer_load_job  # noqa: E402
from ui.main_window import MainWindow  # noqa: E402
from workstation.jobs import CancelToken, run_job  # noqa: E402


@pytest.fixture
def window(qtbot, home: Path) -> MainWindow:
    win = MainWindow(home)
    qtbot.addWidget(win)
    win.resize(1400, 1000)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def loaded(window: MainWindow, small_phantom_dir: Path, qtbot) -> MainWindow:
    """The window showing the small phantom (loaded synchronously: the worker has its own test)."""
    result = run_job(viewer_load_job([small_phantom_dir / "dicom"], window.home, None, CancelToken()))
    window.opening.on_loaded(result)
    qtbot.wait(50)
    return window


def record_fake_run(window: MainWindow, user, probabilities=(0.9, 0.5, 0.31), diameter_mm: float = 8.0):
    """A recorded model run without running a model (seconds, not a minute): findings at the
    phantom's middle slice with these probabilities and a heatmap blob at each, shown as Run AI
    shows its result. `user` must be logged in on the window."""
    import numpy as np

    from workstation.inference.findings import Finding
    from workstation.inference.runner import Analysis
    from workstation.review.analyses import record_analysis

    volume = window.state.volume
    k, j, i = (np.array(volume.shape) // 2).tolist()
    heatmap = np.zeros(volume.shape, dtype=np.float32)
    findings = []
    for n, probability in enumerate(probabilities):
        column = i - 30 + 25 * n
        heatmap[k - 2:k + 3, j - 3:j + 4, column - 3:column + 4] = probability
        centre = tuple(float(v) for v in volume.voxel_to_patient((column, j, k)))
        findings.append(Finding(n + 1, centre, (float(column), float(j), float(k)), diameter_mm, 200.0, 20.0,
                                probability, "solid", "demo", "0.1"))
    analysis = Analysis("demo", "0.1", "ab" * 32, "CPU", min(probabilities), 1.0, heatmap, findings, [], "Test run.")
    run = record_analysis(window.store, user, volume.metadata.study_uid, volume.metadata.series_uid, analysis)
    window.ai.on_recorded(run)
    return run
