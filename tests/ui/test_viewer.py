"""pytest-qt tests of every viewer interaction, on the real window with real VTK views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QTableWidget

from ui.actions import ACTIONS, shortcuts_dialog
from ui.main_window import MainWindow
from workstation.imaging.windowing import PRESETS


def _centre(view) -> QPoint:
    return QPoint(view.width() // 2, view.height() // 2)


def _wheel(view, steps: int) -> None:
    position = QPointF(_centre(view))
    event = QWheelEvent(position, view.mapToGlobal(position), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(view, event)


def _drag(qtbot, view, button, start: QPoint, end: QPoint, modifier=Qt.KeyboardModifier.NoModifier) -> None:
    qtbot.mousePress(view, button, modifier, start)
    for fraction in (0.25, 0.5, 0.75, 1.0):
        qtbot.mouseMove(view, start + (end - start) * fraction)
    qtbot.mouseRelease(view, button, modifier, end)


def test_wheel_and_keys_move_the_slice(loaded: MainWindow, qtbot) -> None:
    axial = loaded.views["axial"]
    start = axial.slice_index()
    _wheel(axial, 1)
    assert axial.slice_index() == start + 1
    _wheel(axial, -1)
    _wheel(axial, -1)
    assert axial.slice_index() == start - 1
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    assert axial.slice_index() == start
    qtbot.keyClick(axial, Qt.Key.Key_PageDown)
    assert axial.slice_index() == start - 10


def test_click_moves_the_crosshair_in_all_views(loaded: MainWindow, qtbot) -> None:
    axial, coronal, sagittal = (loaded.views[name] for name in ("axial", "coronal", "sagittal"))
    before = (coronal.slice_index(), sagittal.slice_index(), axial.slice_index())
    target = _centre(axial) + QPoint(60, -50)
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=target)
    clicked = axial.world_at(target.x(), target.y())
    np.testing.assert_allclose(loaded.state.crosshair, clicked, atol=1.0)
    ijk = loaded.state.volume.patient_to_voxel(loaded.state.crosshair)
    assert coronal.slice_index() == round(ijk[1]) != before[0]  # coronal follows the row
    assert sagittal.slice_index() == round(ijk[0]) != before[1]  # sagittal follows the column
    assert axial.slice_index() == before[2]  # the clicked plane itself stays
    # Ctrl + drag drags the crosshair
    _drag(qtbot, axial, Qt.MouseButton.LeftButton, target, target + QPoint(-40, 30), Qt.KeyboardModifier.ControlModifier)
    np.testing.assert_allclose(loaded.state.crosshair, axial.world_at(target.x() - 40, target.y() + 30), atol=1.0)


def test_left_drag_sets_window_level_right_drag_zooms_middle_drag_pans(loaded: MainWindow, qtbot) -> None:
    axial = loaded.views["axial"]
    centre, width = loaded.state.window
    _drag(qtbot, axial, Qt.MouseButton.LeftButton, _centre(axial), _centre(axial) + QPoint(80, 40))
    new_centre, new_width = loaded.state.window
    assert new_width > width and new_centre < centre
    assert loaded.histogram.region.getRegion() == pytest.approx((new_centre - new_width / 2, new_centre + new_width / 2))
    zoom = axial.half_height_mm
    _drag(qtbot, axial, Qt.MouseButton.RightButton, _centre(axial), _centre(axial) + QPoint(0, -60))
    assert axial.half_height_mm < zoom
    pan = axial.centre.copy()
    _drag(qtbot, axial, Qt.MouseButton.MiddleButton, _centre(axial), _centre(axial) + QPoint(50, 0))
    assert (axial.centre - pan) @ axial.frame.right < -5  # the image follows the mouse to the right


def test_number_keys_apply_presets_and_keys_toggle_overlay_and_text(loaded: MainWindow, qtbot) -> None:
    with qtbot.waitActive(loaded):
        loaded.activateWindow()
    loaded.views["axial"].setFocus()
    for key, name in ((Qt.Key.Key_2, "mediastinum"), (Qt.Key.Key_3, "bone"), (Qt.Key.Key_1, "lung")):
        qtbot.keyClick(loaded.views["axial"], key)
        assert loaded.state.window == PRESETS[name]
    visible = loaded.state.overlay_visible
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_H)
    assert loaded.state.overlay_visible is not visible
    assert loaded.overlay_check.isChecked() is not visible
    assert "PHANTOM" in loaded.views["axial"].texts["top_left"].GetInput()
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_T)
    assert loaded.views["axial"].texts["top_left"].GetInput() == ""
    assert "PHANTOM" not in loaded.windowTitle()


def test_ruler_and_roi(loaded: MainWindow, qtbot) -> None:
    axial = loaded.views["axial"]
    loaded.viewing.active_view = "axial"
    loaded.viewing.set_tool("ruler")
    start, end = _centre(axial), _centre(axial) + QPoint(100, 0)
    _drag(qtbot, axial, Qt.MouseButton.LeftButton, start, end)
    expected = np.linalg.norm(axial.world_at(end.x(), end.y()) - axial.world_at(start.x(), start.y()))
    assert axial.measurement_text == f"distance {expected:.1f} mm"
    assert expected > 10
    loaded.viewing.set_tool("roi")
    volume = loaded.state.volume
    from scipy import ndimage

    lung = ndimage.binary_erosion(volume.voxels[axial.slice_index()] < -750, iterations=4)
    j, i = np.argwhere(lung)[len(np.argwhere(lung)) // 2]  # well inside aerated lung
    point = volume.voxel_to_patient((i, j, axial.slice_index()))
    x, y = axial._display_of(point)
    centre = QPoint(int(x / axial.devicePixelRatioF()), int(axial.height() - y / axial.devicePixelRatioF()))
    _drag(qtbot, axial, Qt.MouseButton.LeftButton, centre, centre + QPoint(3, 0))
    assert axial.measurement_text.startswith("ROI")
    mean = float(axial.measurement_text.split("mean ")[1].split(" HU")[0])
    assert -1000 < mean < -700  # inside aerated lung


def test_oblique_tilt_and_reset(loaded: MainWindow, qtbot) -> None:
    axial = loaded.views["axial"]
    axial.setFocus()
    qtbot.keyClick(axial, Qt.Key.Key_BracketRight)
    assert axial.tilt_degrees == 5
    assert "tilt +5 deg" in axial.texts["top_right"].GetInput()
    qtbot.keyClick(axial, Qt.Key.Key_Backslash)
    assert axial.tilt_degrees == 0


def test_layout_toggle_and_settings_are_remembered(loaded: MainWindow, qtbot, home: Path) -> None:
    loaded.viewing.active_view = "coronal"
    loaded.viewing.toggle_layout()
    assert loaded.views["coronal"].isVisible() and not loaded.views["axial"].isVisible()
    loaded.resize(1234, 876)
    loaded.close()
    again = MainWindow(home)
    qtbot.addWidget(again)
    again.show()
    assert again.viewing.single_layout and again.viewing.active_view == "coronal"
    assert again.views["coronal"].isVisible() and not again.views["sagittal"].isVisible()
    assert again.size().width() == 1234


def test_loading_runs_on_the_worker_and_can_be_cancelled(window: MainWindow, small_phantom_dir: Path, qtbot) -> None:
    with qtbot.waitSignal(window.runner.cancelled, timeout=10000):
        window.opening.open_target(str(small_phantom_dir / "dicom"))
        assert window.cancel_button.isVisible()
        window.cancel_job()
    assert window.state.volume is None
    with qtbot.waitSignal(window.runner.succeeded, timeout=30000):
        window.opening.open_target(str(small_phantom_dir / "dicom"))
    qtbot.waitUntil(lambda: not window.runner.busy)
    assert window.state.volume is not None and window.state.volume.shape[1:] == (128, 128)
    assert not window.progress.isVisible()


def test_errors_arrive_as_one_sentence(window: MainWindow, tmp_path: Path, qtbot) -> None:
    (tmp_path / "note.txt").write_text("no images here")
    with qtbot.waitSignal(window.runner.failed, timeout=10000):
        window.opening.open_target(str(tmp_path))
    qtbot.waitUntil(lambda: window.error_box is not None)
    assert window.error_box.text().startswith("No CT series found")
    assert "Traceback" not in window.error_box.text()


def test_histogram_region_moves_the_window(loaded: MainWindow) -> None:
    loaded.histogram.region.setRegion((-200, 300))
    assert loaded.state.window == pytest.approx((50, 500))


def test_shortcuts_sheet_lists_every_action(loaded: MainWindow) -> None:
    dialog = shortcuts_dialog(loaded)
    table = dialog.findChild(QTableWidget)
    texts = {table.item(row, 1).text() for row in range(table.rowCount())}
    assert {spec.text for spec in ACTIONS} <= texts
    menu_texts = {action.text() for menu in loaded.menuBar().findChildren(type(loaded.menuBar().actions()[0].menu()))
                  for action in menu.actions()}
    assert {spec.text for spec in ACTIONS} <= menu_texts


def test_cursor_readout_shows_hu_and_patient_mm(loaded: MainWindow, qtbot) -> None:
    axial = loaded.views["axial"]
    target = _centre(axial) + QPoint(-30, 20)
    move = QMouseEvent(QEvent.Type.MouseMove, QPointF(target), QPointF(axial.mapToGlobal(target)),
                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(axial, move)  # a hover, no button held
    point = axial.world_at(target.x(), target.y())
    expected = loaded.state.value_at(point)
    text = axial.texts["bottom_right"].GetInput()
    assert text.startswith(f"{expected:.0f} HU")
    assert f"({point[0]:.1f}, {point[1]:.1f}, {point[2]:.1f}) mm" in text
