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
