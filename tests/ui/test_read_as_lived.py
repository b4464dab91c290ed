"""Issue #22, the read as a radiologist lives it: a quiz that cannot be cheated, honest signing
with undecided candidates, one number per finding, visible tool modes, signed slice positions,
the threshold slider filtering the list, `open PATH` importing, window presets and view reset.

No model runs here: `record_fake_run` records a run as the AI would, in milliseconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit

from tests.ui.conftest import record_fake_run
from ui.controllers.study_opening import viewer_load_job
from ui.controllers.viewing import preset_for_series
from ui.main_window import MainWindow
from workstation.imaging.volume import SeriesMetadata
from workstation.imaging.windowing import PRESETS
from workstation.jobs import CancelToken, run_job
from workstation.library import StudyLibrary
from workstation.review.users import add_user


@pytest.fixture
def users(loaded: MainWindow):
    admin = add_user(loaded.store, None, "admin", "correct horse", "admin")
    reader = add_user(loaded.store, admin, "dr.lee", "battery staple", "radiologist")
    trainee = add_user(loaded.store, admin, "trainee", "battery staple", "trainee")
    return admin, reader, trainee


def _focus(window: MainWindow, qtbot, view: str = "axial"):
    with qtbot.waitActive(window):
        window.activateWindow()
    window.views[view].setFocus()
    return window.views[view]


def _drag(qtbot, view, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, end)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)


def _middle(view) -> QPoint:
    return QPoint(view.width() // 2, view.height() // 2)


def _answer_next_dialog(qtbot, text: str | None, seen: list[str]) -> None:
    """Answer the next modal input dialog with `text` (None: cancel it); its label goes to `seen`."""
    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog):
            QTimer.singleShot(30, answer)
            return
        seen.append(dialog.labelText())
        if text is None:
            dialog.reject()
            return
        field = dialog.findChild(QLineEdit)
        qtbot.keyClicks(field, text)
        qtbot.keyClick(field, Qt.Key.Key_Return)

    QTimer.singleShot(30, answer)


def test_a_teaching_case_opens_as_a_quiz_for_a_trainee(loaded: MainWindow, users, small_phantom_dir,
                                                       qtbot) -> None:
    """The AI ran on the case before (its result is stored); a trainee opening it sees none of it,
    cannot run the AI, and starts at the first slice."""
    _admin, reader, trainee = users
    loaded.review.set_user(reader)
    record_fake_run(loaded, reader)
    study = loaded.state.volume.metadata.study_uid
    answers = [{"center_mm": list(loaded.state.markers[0][0]), "diameter_mm": 8.0, "type": "solid"}]
    with loaded.store.transaction() as connection:  # as a pack import leaves it
        connection.execute("INSERT INTO teaching_cases VALUES (?, 'p1', 'case-01', ?, '', 'admin', 'now')",
                           (study, json.dumps(answers)))
    loaded.review.set_user(trainee)
    assert loaded.quiz.active  # logging in on an open teaching case starts the quiz
    qtbot.keyClick(_focus(loaded, qtbot), Qt.Key.Key_M)
    loaded.review.on_point_clicked(loaded.state.crosshair)
    assert len(loaded.quiz.marks) == 1
    result = run_job(viewer_load_job([small_phantom_dir / "dicom"], loaded.home, None, CancelToken()))
    assert result["analysis"] is not None and result["heatmap"] is not None  # stored, and withheld below
    loaded.opening.on_loaded(result)  # opened again from the library: a fresh quiz, nothing of the AI shown
    assert loaded.quiz.active and loaded.quiz.marks == [] and not loaded.findings_dock.isVisible()
    assert loaded.state.heatmap is None and loaded.state.markers == []
    assert loaded.findings_panel.tree.topLevelItemCount() == 0 and "Quiz" in loaded.overlay_label.text()
    assert loaded.views["axial"].slice_index() == 0
    view = _focus(loaded, qtbot)
    qtbot.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    assert "hidden until you submit" in loaded.error_box.text() and not loaded.runner.busy
    loaded.state.set_overlay(threshold=0.5)  # the slider does not bring the AI's markers back
    assert loaded.state.markers == [] and loaded.findings_panel.tree.topLevelItemCount() == 0
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert loaded.mode_label.text().startswith("Mode: Quiz")
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=_middle(view))
    assert len(loaded.quiz.marks) == 1 and loaded.state.tool == "crosshair"


def test_a_radiologist_opens_a_teaching_case_normally(loaded: MainWindow, users) -> None:
    _admin, reader, _trainee = users
    with loaded.store.transaction() as connection:
        connection.execute("INSERT INTO teaching_cases VALUES (?, 'p1', 'case-01', '[]', '', 'admin', 'now')",
                           (loaded.state.volume.metadata.study_uid,))
    loaded.review.set_user(reader)
    assert not loaded.quiz.active


def test_signing_with_undecided_candidates_asks_why_and_records_it(loaded: MainWindow, users, qtbot) -> None:
    _admin, reader, _trainee = users
    loaded.review.set_user(reader)
    record_fake_run(loaded, reader)
    loaded.review.accept_finding()
    seen: list[str] = []
    _answer_next_dialog(qtbot, None, seen)  # cancelled: not signed
    loaded.review.sign_study("One nodule.", password="battery staple")
    assert not loaded.review.session.signed and "2 of 3 AI candidate(s) are undecided" in seen[0]
    _answer_next_dialog(qtbot, "second reader reviews the rest", seen)
    loaded.review.sign_study("One nodule.", password="battery staple")
    assert loaded.review.session.signed
    row = loaded.store.connection.execute("SELECT new_value FROM audit WHERE action = 'signed'").fetchone()
    signed = json.loads(row[0])
    assert signed["undecided"] == 2 and signed["undecided_reason"] == "second reader reviews the rest"


def test_one_number_per_finding_in_list_views_dialogs_and_audit(loaded: MainWindow, users, qtbot) -> None:
    """Database ids of another study come first; the viewer still says 1, 2, 3 as the report does."""
    _admin, reader, _trainee = users
    loaded.review.set_user(reader)
    with loaded.store.transaction() as connection:  # another study's findings take the low ids
        for n in range(5):
            connection.execute("INSERT INTO findings (study_uid, source, center_mm, created_by, created_at) "
                               "VALUES ('other', 'clinician', '[0, 0, 0]', 'x', 'now')")
    run = record_fake_run(loaded, reader)
    assert min(run.finding_ids) > 5
    tree = loaded.findings_panel.tree
    assert [tree.topLevelItem(r).text(0) for r in range(3)] == ["1", "2", "3"]
    assert [m[2] for m in loaded.state.markers] == [1, 2, 3]
    loaded.viewing.centre_on(loaded.state.markers[1][0])
    labels = {actor.GetInput() for actor in loaded.views["axial"].marker_labels}
    assert {"1", "2", "3"} <= labels  # all three lie in the middle slice, each ring labelled
    tree.setCurrentItem(tree.topLevelItem(1))
    seen: list[str] = []

    def answer_edit() -> None:  # the edit dialogs are titled with the finding's number
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog):
            QTimer.singleShot(30, answer_edit)
            return
        seen.append(dialog.windowTitle())
        dialog.reject()

    QTimer.singleShot(30, answer_edit)
    loaded.review.edit_finding()
    assert seen == ["Edit finding 2"]
    loaded.review.accept_finding()
    row = loaded.store.connection.execute("SELECT details FROM audit WHERE action = 'finding_accepted'").fetchone()
    assert json.loads(row[0])["finding"] == 2
    from workstation.reporting.lungrads import suggest_for_read

    assert suggest_for_read(loaded.review.session.findings()).driver == 2  # the Lung-RADS dialog's "finding 2"


def test_tool_modes_show_and_end_after_one_measurement(loaded: MainWindow, users, qtbot) -> None:
    _admin, reader, _trainee = users
    loaded.review.set_user(reader)
    axial = _focus(loaded, qtbot)
    before = loaded.state.crosshair.copy()
    assert loaded.mode_label.text() == "Mode: Crosshair"
    qtbot.keyClick(axial, Qt.Key.Key_D)
    assert loaded.state.tool == "ruler" and np.allclose(loaded.state.crosshair, before)  # D moves nothing
    assert loaded.mode_label.text().startswith("Mode: Ruler")
    coronal = loaded.views["coronal"]  # the tool is the window's, not only the view last touched
    assert coronal.cursor().shape() == Qt.CursorShape.CrossCursor
    _drag(qtbot, coronal, _middle(coronal), _middle(coronal) + QPoint(40, 0))
    assert coronal.measurement_text.startswith("distance") and np.allclose(loaded.state.crosshair, before)
    assert loaded.state.tool == "crosshair" and coronal.cursor().shape() == Qt.CursorShape.ArrowCursor
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=_middle(axial) + QPoint(25, 10))
    assert not np.allclose(loaded.state.crosshair, before)  # clicks move the crosshair again
    assert coronal.measurement_text.startswith("distance")  # the measurement stays on screen...
    qtbot.keyClick(axial, Qt.Key.Key_O)
    assert loaded.state.tool == "roi" and coronal.measurement_text == ""  # ...until the next one
    _drag(qtbot, axial, _middle(axial), _middle(axial) + QPoint(15, 0))
    assert axial.measurement_text.startswith("ROI") and loaded.state.tool == "crosshair"
    qtbot.keyClick(axial, Qt.Key.Key_M)  # after a measurement, M + click adds (not stuck)
    assert loaded.state.tool == "add" and axial.cursor().shape() == Qt.CursorShape.PointingHandCursor
    _drag(qtbot, axial, _middle(axial) + QPoint(-20, 0), _middle(axial) + QPoint(-18, 1))  # a shaky click
    assert [s.source for s in loaded.review.session.findings()] == ["clinician"]
    assert loaded.state.tool == "crosshair" and "Added finding 1" in loaded.status_label.text()
    qtbot.keyClick(axial, Qt.Key.Key_D)
    qtbot.keyClick(axial, Qt.Key.Key_Escape)  # Esc: back to the crosshair
    assert loaded.state.tool == "crosshair" and loaded.mode_label.text() == "Mode: Crosshair"
    qtbot.keyClick(axial, Qt.Key.Key_C)
    assert axial.crosshair.polydata.GetNumberOfLines() == 0
    qtbot.keyClick(axial, Qt.Key.Key_C)
    assert axial.crosshair.polydata.GetNumberOfLines() == 2


def test_every_view_shows_the_signed_patient_coordinate_of_its_slice(loaded: MainWindow) -> None:
    volume = loaded.state.volume
    point = volume.voxel_to_patient((40, 50, 3))
    loaded.state.set_crosshair(point)
    point = loaded.state.crosshair
    for view, axis in (("axial", 2), ("coronal", 1), ("sagittal", 0)):
        text = loaded.views[view].texts["top_right"].GetInput()
        assert f"{'xyz'[axis]} {point[axis]:.1f} mm" in text, (view, text)
    assert point[2] < 0 or point[1] < 0  # a negative coordinate is among them, printed with its sign


def test_the_threshold_slider_filters_the_list_and_markers_and_says_where_it_is(loaded: MainWindow, users) -> None:
    _admin, reader, _trainee = users
    loaded.review.set_user(reader)
    record_fake_run(loaded, reader)
    panel = loaded.findings_panel
    assert panel.tree.topLevelItemCount() == 3 and len(loaded.state.markers) == 3
    loaded.threshold_slider.setValue(70)
    assert panel.tree.topLevelItemCount() == 1 and panel.tree.topLevelItem(0).text(1) == "0.90"
    assert len(loaded.state.markers) == 1
    assert "threshold 0.70" in panel.threshold_label.text()
    assert panel.progress_label.text().startswith("0 of 3 decided; 2 below threshold 0.70 not shown")
    loaded.threshold_slider.setValue(40)
    assert panel.tree.topLevelItemCount() == 2


def test_open_path_imports_into_the_library_then_opens_it(window: MainWindow, small_phantom_dir, qtbot) -> None:
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.opening.open_target(str(small_phantom_dir / "dicom"))
    studies = StudyLibrary(window.home).studies()
    assert len(studies) == 1 and window.opening.current_study_key == studies[0]["key"]
    assert "imported into the library" in window.status_label.text()
    assert window.browser.tree.topLevelItemCount() == 1


def test_window_presets_follow_the_series_and_home_resets_the_views(loaded: MainWindow, qtbot) -> None:
    def meta(**fields) -> SeriesMetadata:
        return SeriesMetadata(**fields)

    assert preset_for_series(meta(body_part="HEAD")) == "brain"
    assert preset_for_series(meta(study_description="CT ABDOMEN PELVIS W CONTRAST")) == "abdomen"
    assert preset_for_series(meta(body_part="CHEST", study_description="CT ABDOMEN")) == "lung"
    assert preset_for_series(meta(series_description="Brain 5mm")) == "brain"
    assert preset_for_series(meta()) == "lung"
    assert loaded.state.window == PRESETS[preset_for_series(loaded.state.volume.metadata)]
    axial = _focus(loaded, qtbot)
    fitted = axial.half_height_mm
    axial.half_height_mm = 20.0
    axial.tilt(10)
    loaded.state.set_window(0, 100)
    qtbot.keyClick(axial, Qt.Key.Key_Home)
    assert axial.half_height_mm == pytest.approx(fitted) and axial.tilt_degrees == 0
    assert loaded.state.window == PRESETS["lung"]


def test_ctrl_l_locks_the_screen_at_once(loaded: MainWindow, users, qtbot, monkeypatch) -> None:
    loaded.review.set_user(users[1])
    monkeypatch.setattr(loaded.screen_lock, "_ask_unlock", lambda: None)
    qtbot.keyClick(_focus(loaded, qtbot), Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert loaded.screen_lock.locked and loaded.central_stack.currentWidget() is loaded.lock_page


def test_an_edit_says_the_new_volume_and_undo_replaces_the_message(loaded: MainWindow, users) -> None:
    loaded.review.set_user(users[1])
    record_fake_run(loaded, users[1])
    loaded.review.edit_finding("solid", 4.2)
    state = next(s for s in loaded.review.session.findings() if s.diameter_mm == 4.2)
    assert state.volume_mm3 == pytest.approx(np.pi / 6 * 4.2 ** 3)
    assert "volume 39 mm³" in loaded.status_label.text()
    loaded.review.undo_decision()
    assert loaded.status_label.text().startswith("Undone")


def test_the_heatmap_outline_leaves_the_lesion_visible(loaded: MainWindow, users, qtbot) -> None:
    loaded.review.set_user(users[1])
    record_fake_run(loaded, users[1])
    qtbot.keyClick(_focus(loaded, qtbot), Qt.Key.Key_H, Qt.KeyboardModifier.ShiftModifier)
    assert loaded.state.overlay_outline and loaded.outline_check.isChecked()
    axial, coronal = loaded.state.overlay_image(0), loaded.state.overlay_image(1)
    volume = loaded.state.volume
    i, j, k = np.rint(volume.patient_to_voxel(loaded.state.markers[0][0])).astype(int)
    assert set(np.unique(axial)) == {0.0, 1.0} and axial[k, j, i] == 0.0  # the lesion's centre is not covered
    assert axial[k, j, i - 3] == 1.0 and axial[k, j - 3, i] == 1.0  # its border in the axial plane is
    assert axial[k + 2, j, i] == 0.0 and axial[k + 2, j, i - 3] == 1.0  # every slice a ring: no cap
    assert coronal[k + 2, j, i] == 1.0 and coronal[k, j, i] == 0.0  # the coronal view's own border
    assert loaded.views["axial"]._overlay_shown is axial and loaded.views["coronal"]._overlay_shown is coronal
    loaded.state.set_overlay(threshold=0.95)  # above every finding: no outline left
    assert not loaded.state.overlay_image(0).any()
