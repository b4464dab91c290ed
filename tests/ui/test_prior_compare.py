"""The linked prior in the real window (#24 item 3): Compare with prior... offers the most recent
comparable prior, the alignment runs as a job to its end, the prior shows beside the current axial
view, and crosshair (both ways), scrolling, window/level and zoom follow through the registration;
Shift+P toggles it; the selected finding's match is named. The comparison a radiologist aligned is
recorded for the read and is the one its report prints (matched rows, the prior's key images); aligned
again, the recorded alignment is reused; after signing, another is only an addendum with a reason."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QInputDialog

import subprocess

from tests.prior_pair import write_pair
from ui.dialogs.prior_choice import NONE_TEXT
from ui.main_window import MainWindow
from ui.widgets.prior_view import POOR_STYLE
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.reporting.content import content_from_store
from workstation.review.comparison_record import recorded_comparison
from workstation.review.priors import describe_pair, pair_of
from workstation.review.session import ReviewSession
from workstation.review.users import add_user, login

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_pair(tmp_path_factory.mktemp("prior-ui"))


@pytest.fixture
def opened(window: MainWindow, pair: dict, qtbot) -> MainWindow:
    """The follow-up open in the viewer, its prior in the library read by dr_lee, dr_lee logged in."""
    library = StudyLibrary(window.home)
    run_job(library.import_job([pair["prior"], pair["follow"]]))
    truth = pair["truth"]
    studies = {s["study_uid"]: s for s in library.studies()}
    prior_uid = next(uid for uid in studies if uid != truth["study_uid"])
    reader = add_user(window.store, add_user(window.store, None, "admin", PASSWORD, "admin"), "dr_lee", PASSWORD,
                      "radiologist")
    session = ReviewSession(window.store, login(window.store, reader.username, PASSWORD), prior_uid)
    for nodule in truth["prior_nodules"]:
        session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
    window.review.set_user(login(window.store, reader.username, PASSWORD))
    with qtbot.waitSignal(window.opening.loaded, timeout=30000):
        window.opening.open_study(studies[truth["study_uid"]]["key"])
    qtbot.waitUntil(lambda: not window.runner.busy)
    with qtbot.waitActive(window):
        window.activateWindow()
    window.views["axial"].setFocus()
    return window


def _middle(view) -> QPoint:
    return QPoint(view.width() // 2, view.height() // 2)


def _wheel(view, steps: int) -> None:
    """`steps` notches of the wheel, one event each."""
    position = QPointF(_middle(view))
    for _ in range(abs(steps)):
        QApplication.sendEvent(view, QWheelEvent(position, view.mapToGlobal(position), QPoint(0, 0),
                                                 QPoint(0, 120 if steps > 0 else -120), Qt.MouseButton.NoButton,
                                                 Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False))


def _drag(qtbot, view, button, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(view, button, pos=start)
    for fraction in (0.25, 0.5, 0.75, 1.0):
        qtbot.mouseMove(view, start + (end - start) * fraction)
    qtbot.mouseRelease(view, button, pos=end)


def _on_screen(view, point_mm) -> tuple[float, float]:
    """Where a view draws a patient point: Qt pixels right of the view's middle, and the global y."""
    x, y = view._display_of(np.asarray(point_mm))
    width, height = view.GetRenderWindow().GetSize()
    ratio = view.devicePixelRatioF()
    return (x - width / 2) / ratio, view.mapToGlobal(QPoint(0, 0)).y() + (height - y) / ratio


def _read_with_truth_findings(window: MainWindow, truth: dict) -> None:
    """The current read: the nodules where the follow-up's truth has them, added by the reader."""
    for nodule in truth["current_nodules"]:
        window.review.session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
    window.review.refresh_findings()


def _compare(window: MainWindow, qtbot) -> None:
    """Ctrl+Shift+P, the offered prior accepted; the alignment job run to its end."""
    qtbot.keyClick(window.views["axial"], Qt.Key.Key_P,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = window.prior.dialog
    assert dialog is not None and dialog.isVisible()
    texts = [dialog.list.item(row).text() for row in range(dialog.list.count())]
    assert len(texts) == 2 and "(most recent comparable)" in texts[0] and texts[1] == NONE_TEXT
    assert dialog.list.currentRow() == 0  # the most recent comparable prior is offered
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        dialog.accept()
        assert window.progress.isVisible() and window.cancel_button.isVisible()  # progress and cancel
    qtbot.waitUntil(lambda: window.prior.comparison is not None, timeout=5000)


def test_the_prior_is_linked_beside_the_current(opened: MainWindow, pair: dict, qtbot) -> None:
    window, truth = opened, pair["truth"]
    _read_with_truth_findings(window, truth)

    # Esc cancels the alignment; None compares nothing
    window.prior.choose_prior()
    with qtbot.waitSignal(window.runner.cancelled, timeout=30000):
        window.prior.dialog.accept()
        qtbot.keyClick(window.views["axial"], Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.runner.busy)
    assert window.prior.comparison is None and not window.prior.view.isVisible()
    assert window.status_label.text() == "Cancelled" and not window.progress.isVisible()
    window.prior.choose_prior()
    window.prior.dialog.choose(1)
    window.prior.dialog.accept()
    assert window.prior.comparison is None and not window.prior.shown and not window.runner.busy
    assert window.status_label.text() == "No prior compared"

    _compare(window, qtbot)
    prior, comparison, state = window.prior, window.prior.comparison, window.state
    prior_view, axial = prior.prior_slice_view, window.views["axial"]
    assert prior.shown and prior.view.isVisible() and not window.views["coronal"].isVisible()
    assert "alignment good" in prior.view.alignment.text().lower()
    assert len(prior.prior_state.markers) == len(truth["prior_nodules"])  # the prior's accepted findings drawn
    # the radiologist chose this prior for an unsigned read: recorded for it (audited), said in the header
    recorded = window.store.connection.execute(
        "SELECT user, object_id FROM audit WHERE action = 'comparison_recorded' AND study_uid = ?",
        (truth["study_uid"],)).fetchall()
    assert recorded == [("dr_lee", str(comparison.comparison.id))] and comparison.recorded
    assert prior.view.report_line.text().startswith("In the report: this comparison, recorded by dr_lee")
    assert not prior.view.report_button.isVisible()

    # the crosshair on a current nodule lands on the same nodule in the prior (its truth)
    match = truth["matches"][0]
    current = next(n for n in truth["current_nodules"] if n["id"] == match["current_id"])
    before = next(n for n in truth["prior_nodules"] if n["id"] == match["prior_id"])
    window.viewing.centre_on(np.array(current["centre_mm"]))
    np.testing.assert_allclose(prior.prior_state.crosshair, comparison.to_prior(state.crosshair), atol=1e-6)
    assert np.linalg.norm(prior.prior_state.crosshair - np.array(before["centre_mm"])) < 3.0
    assert prior_view.slice_index() == round(comparison.prior_volume.patient_to_voxel(before["centre_mm"])[2])

    # a click in the current axial, then in the prior: the other side follows through the transform
    target = _middle(axial) + QPoint(40, -30)
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=target)
    np.testing.assert_allclose(state.crosshair, axial.world_at(target.x(), target.y()), atol=1.0)
    np.testing.assert_allclose(prior.prior_state.crosshair, comparison.to_prior(state.crosshair), atol=1e-6)
    target = _middle(prior_view) + QPoint(-35, 25)
    qtbot.mouseClick(prior_view, Qt.MouseButton.LeftButton, pos=target)
    np.testing.assert_allclose(prior.prior_state.crosshair, prior_view.world_at(target.x(), target.y()), atol=1.0)
    np.testing.assert_allclose(state.crosshair, comparison.to_current(prior.prior_state.crosshair), atol=1e-6)

    # scrolling either view scrolls the other
    z_current, z_prior = axial.slice_index(), prior_view.slice_index()
    _wheel(axial, 3)
    assert axial.slice_index() == z_current + 3 and prior_view.slice_index() != z_prior
    np.testing.assert_allclose(prior.prior_state.crosshair, comparison.to_prior(state.crosshair), atol=1e-6)
    z_current = axial.slice_index()
    _wheel(prior_view, -2)
    assert axial.slice_index() < z_current
    np.testing.assert_allclose(state.crosshair, comparison.to_current(prior.prior_state.crosshair), atol=1e-6)

    # window/level and zoom, both ways
    _drag(qtbot, axial, Qt.MouseButton.LeftButton, _middle(axial), _middle(axial) + QPoint(60, 30))
    assert prior.prior_state.window == state.window
    _drag(qtbot, prior_view, Qt.MouseButton.LeftButton, _middle(prior_view), _middle(prior_view) + QPoint(-40, 0))
    assert state.window == prior.prior_state.window
    qtbot.keyClick(axial, Qt.Key.Key_2)  # a preset reaches the prior too
    assert prior.prior_state.window == state.window
    _drag(qtbot, axial, Qt.MouseButton.RightButton, _middle(axial), _middle(axial) + QPoint(0, -60))
    assert prior_view.half_height_mm / prior_view.height() == pytest.approx(axial.half_height_mm / axial.height())
    # the same anatomy at the same place in each view and at the same height on the screen, though the
    # prior view starts lower, under its header
    np.testing.assert_allclose(_on_screen(prior_view, prior.prior_state.crosshair),
                               _on_screen(axial, state.crosshair), atol=3)

    # Shift+P toggles the prior: the 2x2 comes back, then the prior again
    qtbot.keyClick(axial, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert not prior.shown and not prior.view.isVisible() and window.views["coronal"].isVisible()
    qtbot.keyClick(axial, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert prior.shown and prior.view.isVisible()
    np.testing.assert_allclose(prior.prior_state.crosshair, comparison.to_prior(state.crosshair), atol=1e-6)

    # F (one view / 2x2) leaves the comparison for the single view; Shift+P brings it back
    qtbot.keyClick(axial, Qt.Key.Key_F)
    assert not prior.view.isVisible() and axial.isVisible() and not window.views["coronal"].isVisible()
    qtbot.keyClick(axial, Qt.Key.Key_F)
    assert window.views["coronal"].isVisible() and not prior.view.isVisible()
    qtbot.keyClick(axial, Qt.Key.Key_P, Qt.KeyboardModifier.ShiftModifier)
    assert prior.view.isVisible() and not window.views["coronal"].isVisible()

    # the selected finding's match in the prior, as the truth has it
    seen = set()
    for _ in truth["current_nodules"]:
        window.findings_panel.select_next(1)
        text = prior.view.match.text()
        assert text.startswith("Selected finding #") and prior.view.match.isVisible()
        seen.add(text.split(":")[1].split()[0])
    assert seen == {m["status"] for m in truth["matches"]} | {"new"}

    # a poor alignment is said: the header turns red and a message says it
    poor = comparison.recorded_as(replace(comparison.comparison, id=None, registration=replace(
        comparison.registration, lung_overlap=0.55)))
    prior._on_compared(poor)
    assert "alignment poor" in prior.view.alignment.text().lower() and "compare by eye" in prior.view.alignment.text()
    assert prior.view.alignment.styleSheet() == POOR_STYLE
    assert window.error_box is not None and "poorly aligned" in window.error_box.text()
    assert prior.view.report_button.isVisible() and prior.view.report_button.text() == "Use this prior in the report"
    assert "comparison with this prior recorded earlier" in prior.view.report_line.text()  # never replaced unasked
    assert recorded_comparison(window.store, truth["study_uid"]).id == comparison.comparison.id

    # another study opened: the comparison and the prior's voxels go, the 2x2 is back
    with qtbot.waitSignal(window.opening.loaded, timeout=30000):
        window.opening.open_study(comparison.prior_study["key"])
    assert prior.comparison is None and prior.prior_state.volume is None and not prior.view.isVisible()
    assert window.views["coronal"].isVisible()


def test_the_recorded_comparison_is_the_one_the_report_prints(opened: MainWindow, pair: dict, qtbot, tmp_path,
                                                               monkeypatch) -> None:
    window, truth, prior = opened, pair["truth"], opened.prior
    uid = truth["study_uid"]
    _read_with_truth_findings(window, truth)
    _compare(window, qtbot)
    shown = prior.comparison
    assert shown.recorded and not shown.reused

    # each finding's line in the viewer is its row in the report's comparison
    report = content_from_store(window.store, uid, window.state.volume).comparison
    assert report.comparison.id == shown.comparison.id
    for _ in truth["current_nodules"]:
        window.findings_panel.select_next(1)
        number = next(s.number for s in window.review.session.findings()
                      if s.id == window.findings_panel.current_id())
        assert prior.view.match.text() == f"Selected finding {describe_pair(pair_of(list(report.pairs), number))}"

    # signed (password asked as an electronic signature), then the report: the prior's key images in it
    window.review.sign_study(impression="Compared with the prior.", export_after=False, password=PASSWORD)
    assert window.review.session.signed
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.reports.export_report()
    qtbot.waitUntil(lambda: window.reports.report_preview is not None, timeout=10000)
    exported = window.reports.report_preview.preview
    assert exported.content.comparison.comparison.id == shown.comparison.id
    text = subprocess.run(["pdftotext", "-layout", str(exported.path), "-"], check=True, capture_output=True,
                          text=True).stdout
    assert "Comparison" in text and "Lung-RADS with comparison" in text
    assert "images are not available" not in text
    assert sum(f"now and prior finding P{m['prior_id']}" in text for m in truth["matches"]) == len(truth["matches"])
    (tmp_path / "viewer-report.pdf").write_bytes(exported.path.read_bytes())
    window.reports.report_preview.reject()

    # aligned again: the recorded comparison and its alignment are reused, nothing new recorded
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        prior.compare_with(shown.prior_study)
    qtbot.waitUntil(lambda: prior.comparison is not shown, timeout=5000)
    assert prior.comparison.reused and prior.comparison.comparison.id == shown.comparison.id
    assert window.store.connection.execute("SELECT COUNT(*) FROM comparisons WHERE study_uid = ?",
                                           (uid,)).fetchone()[0] == 1

    # after signing another comparison is only an addendum, its reason asked; the signed report keeps its own
    other = prior.comparison.recorded_as(replace(prior.comparison.comparison, id=None))
    prior._on_compared(other)
    assert prior.view.report_button.isVisible() and "(addendum)" in prior.view.report_button.text()
    assert recorded_comparison(window.store, uid).id == shown.comparison.id  # not recorded unasked
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("", True))
    prior.view.report_button.click()
    assert window.status_label.text() == "Not recorded: an addendum needs a reason"
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("prior re-aligned", True))
    prior.view.report_button.click()
    newest = recorded_comparison(window.store, uid)
    assert newest.after_signing and newest.addendum_reason == "prior re-aligned" and newest.recorded_by == "dr_lee"
    assert recorded_comparison(window.store, uid, as_signed=True).id == shown.comparison.id
    assert "(addendum)" in prior.view.report_line.text() and not prior.view.report_button.isVisible()
    window.review.set_user(None)  # logged out (or locked): still said to be in the report, nothing offered
    assert prior.view.report_line.text().startswith("In the report") and not prior.view.report_button.isVisible()


def test_a_study_without_priors_says_so(window: MainWindow, small_phantom_dir: Path, qtbot) -> None:
    run_job(StudyLibrary(window.home).import_job([small_phantom_dir / "dicom"]))
    with qtbot.waitSignal(window.opening.loaded, timeout=30000):
        window.opening.open_study(StudyLibrary(window.home).studies()[0]["key"])
    qtbot.waitUntil(lambda: not window.runner.busy)
    window.prior.toggle_prior()  # no comparison yet: Shift+P offers the priors, and there are none
    assert window.prior.dialog is None and window.status_label.text().startswith("No earlier study of this patient")


def test_no_two_actions_share_a_key() -> None:
    from ui.actions import ACTIONS

    keys = [spec.shortcut for spec in ACTIONS if spec.shortcut]
    assert len(keys) == len(set(keys)), sorted(k for k in keys if keys.count(k) > 1)
    assert {"Shift+P", "Ctrl+Shift+P"} <= set(keys)
