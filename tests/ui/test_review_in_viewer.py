"""The review workflow in the viewer: keys, progress, add missed, undo, sign, permissions,
screen lock, reading time, and an end-to-end read of the demo case verified by the audit."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from ui.main_window import MainWindow
from workstation.cli import main as cli
from workstation.review import audit
from workstation.review.users import PermissionDenied, add_user

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run


@pytest.fixture
def users(loaded: MainWindow):
    admin = add_user(loaded.store, None, "admin", "correct horse", "admin")
    reader = add_user(loaded.store, admin, "dr.lee", "battery staple", "radiologist")
    trainee = add_user(loaded.store, admin, "trainee", "battery staple", "trainee")
    return admin, reader, trainee


@pytest.fixture
def users_of_window(window: MainWindow):
    admin = add_user(window.store, None, "admin", "correct horse", "admin")
    return admin, add_user(window.store, admin, "dr.lee", "battery staple", "radiologist")


def _run_ai(window: MainWindow, qtbot) -> None:
    with qtbot.waitSignal(window.runner.succeeded, timeout=180000):
        window.ai.run_ai()
    qtbot.waitUntil(lambda: not window.runner.busy)


def _active(window: MainWindow, qtbot) -> None:
    with qtbot.waitActive(window):
        window.activateWindow()
    window.views["axial"].setFocus()


def test_keys_decide_add_undo_and_sign(loaded: MainWindow, users, qtbot) -> None:
    _admin, reader, _trainee = users
    loaded.review.set_user(reader)
    _run_ai(loaded, qtbot)
    session = loaded.review.session
    total = len(session.findings())
    assert total >= 1 and loaded.findings_panel.progress_label.text().startswith(f"0 of {total} decided")
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_A)
    assert session.progress() == (1, total)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.progress() == (0, total)
    loaded.review.add_missed()
    axial = loaded.views["axial"]
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=QPoint(axial.width() // 2 + 20, axial.height() // 2))
    added = [s for s in session.findings() if s.source == "clinician"]
    assert len(added) == 1 and added[0].decision == "accepted"
    loaded.review.edit_finding("ground-glass", 9.0)
    assert [s for s in session.findings() if s.source == "clinician"][0].type == "ground-glass"
    tree = loaded.findings_panel.tree
    tree.setCurrentItem(tree.topLevelItem(0))  # the AI's most probable finding; decisions move to the next
    for index in range(total):
        loaded.review.reject_finding("vessel") if index % 2 else loaded.review.accept_finding()
    assert session.progress() == (total + 1, total + 1)
    assert f"{total + 1} of {total + 1} decided" in loaded.findings_panel.progress_label.text()
    loaded.review.sign_study("Findings as listed.", password="battery staple")
    assert session.signed and "signed" in loaded.findings_panel.progress_label.text()
    assert audit.verify(loaded.store.connection).ok


def test_a_trainee_cannot_sign_and_the_reason_is_shown(loaded: MainWindow, users, qtbot) -> None:
    loaded.review.set_user(users[2])
    loaded.review.sign_study("x", confirm_undecided=True)
    assert "A trainee may not sign" in loaded.error_box.text()
    assert not loaded.review.session.signed


def test_lock_hides_patient_data_until_the_same_user_or_an_admin(loaded: MainWindow, users, qtbot,
                                                                  monkeypatch) -> None:
    admin, reader, trainee = users
    loaded.review.set_user(reader)
    # the dialog is tested by hand; here: the logic
    monkeypatch.setattr(loaded.screen_lock, "_ask_unlock", lambda: None)
    loaded.screen_lock.idle.tick(now=loaded.screen_lock.idle.last_input + 10 * 60 + 1)
    assert loaded.screen_lock.locked and loaded.central_stack.currentWidget() is loaded.lock_page
    assert loaded.windowTitle() == "Workstation (locked)"
    assert not loaded.findChild(type(loaded.findings_panel)).isVisible()
    with pytest.raises(PermissionDenied):
        loaded.screen_lock.unlock(trainee)
    loaded.screen_lock.unlock(admin)
    assert not loaded.screen_lock.locked and loaded.views["axial"].isVisible()
    actions = [row[0] for row in loaded.store.connection.execute("SELECT action FROM audit")]
    assert "lock" in actions and "unlock" in actions


def test_reading_time_counts_activity_not_idle(loaded: MainWindow, users) -> None:
    loaded.review.set_user(users[1])
    idle, start = loaded.screen_lock.idle, time.monotonic()
    idle.timer.stop()  # the real one-second timer ticked while the fixtures loaded: only the ticks below count
    idle.pending_s = 0.0
    idle.last_input = start
    for second in range(20):  # active: input a moment ago
        idle.tick(now=start + 1)
    for second in range(30):  # idle for over a minute: not reading
        idle.tick(now=start + 120)
    idle.flush()
    assert loaded.review.session.active_seconds == pytest.approx(20)


def test_end_to_end_read_of_the_demo_case_by_keyboard(window: MainWindow, qtbot, home: Path, capsys) -> None:
    admin = add_user(window.store, None, "admin", "correct horse", "admin")
    window.review.set_user(add_user(window.store, admin, "dr.lee", "battery staple", "radiologist"))
    with qtbot.waitSignal(window.runner.succeeded, timeout=120000):
        window.opening.open_demo()
    qtbot.waitUntil(lambda: not window.runner.busy)
    _run_ai(window, qtbot)
    total = len(window.review.session.findings())
    assert total >= 1  # the model finds the two largest of the six demo nodules (see its card)
    _active(window, qtbot)
    for _ in range(total):
        qtbot.keyClick(window.views["axial"], Qt.Key.Key_A)
    assert window.review.session.progress() == (total, total)
    window.review.sign_study("Demo case read end to end.", password="battery staple")
    assert window.review.session.signed
    capsys.readouterr()
    assert cli(["audit", "verify"]) == 0
    assert "audit trail ok" in capsys.readouterr().out


def test_sign_offers_the_report_preview_then_save_keeps_and_audits_it(loaded: MainWindow, users, qtbot,
                                                                      tmp_path) -> None:
    from pypdf import PdfReader

    loaded.review.set_user(users[0])  # the admin sets the institution; the radiologist reads
    loaded.reports.set_institution("Clinique du Lac")
    loaded.review.set_user(users[1])
    _run_ai(loaded, qtbot)
    loaded.review.accept_finding()
    with qtbot.waitSignal(loaded.runner.finished, timeout=60000):
        loaded.review.sign_study("Reviewed.", undecided_reason="test: the rest later", export_after=True,
                                 password="battery staple")
    qtbot.waitUntil(lambda: loaded.reports.report_preview is not None and loaded.reports.report_preview.isVisible())
    preview = loaded.reports.report_preview
    assert preview.page_count() >= 2 and "signed by dr.lee" in preview.summary.text()

    def colours_shown() -> int:  # QPdfView renders pages on a thread; a Qt widget, so grab() sees them
        page = preview.view.grab().toImage()
        return len({page.pixel(x, y) for x in range(0, page.width(), 7) for y in range(0, page.height(), 7)})

    qtbot.waitUntil(lambda: colours_shown() > 40, timeout=20000)  # text and key images, not a blank page
    preview.view.grab().save(str(tmp_path / "preview.png"))
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    assert preview.save(blocked / "r.pdf") is None and "Cannot save the report" in preview.summary.text()
    target = tmp_path / "kept" / "report.pdf"
    assert preview.save(target) == target and not preview.isVisible()
    text = "\n".join(p.extract_text() for p in PdfReader(str(target)).pages)
    assert "Clinique du Lac" in text and "Electronically signed by dr.lee" in text and "Reviewed." in text
    row = loaded.store.connection.execute("SELECT user, action, new_value FROM audit ORDER BY seq DESC").fetchone()
    assert row[:2] == ("dr.lee", "exported") and str(target) in row[2]
    assert "recorded in the audit trail" in loaded.status_label.text()


def test_export_report_needs_the_export_right(loaded: MainWindow, users, qtbot) -> None:
    loaded.review.set_user(users[2])  # trainee
    loaded.reports.export_report()
    assert "may not export" in loaded.error_box.text() and not loaded.runner.busy


def test_reason_picker_by_keyboard_and_moving_a_finding_by_click(loaded: MainWindow, users, qtbot) -> None:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QComboBox, QInputDialog

    loaded.review.set_user(users[1])
    _run_ai(loaded, qtbot)
    session = loaded.review.session
    tree = loaded.findings_panel.tree
    tree.setCurrentItem(tree.topLevelItem(0))
    first = loaded.findings_panel.current_id()
    picked: list[str] = []

    def answer_with_keys() -> None:  # R opened the modal reason picker: choose the third reason by keys
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog):
            QTimer.singleShot(50, answer_with_keys)
            return
        combo = dialog.findChild(QComboBox)  # the list has the keyboard focus in the picker
        qtbot.keyClick(combo, Qt.Key.Key_Down)
        qtbot.keyClick(combo, Qt.Key.Key_Down)
        picked.append(dialog.textValue())
        qtbot.keyClick(combo, Qt.Key.Key_Return)

    _active(loaded, qtbot)
    QTimer.singleShot(50, answer_with_keys)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_R)
    state = next(s for s in session.findings() if s.id == first)
    assert picked == ["artefact"] and state.decision == "rejected" and state.reason == "artefact"

    tree.setCurrentItem(tree.topLevelItem(0))
    moved = loaded.findings_panel.current_id()
    before = next(s for s in session.findings() if s.id == moved).center_mm
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_M, Qt.KeyboardModifier.ShiftModifier)
    axial = loaded.views["axial"]
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=QPoint(axial.width() // 2 - 30, axial.height() // 2))
    after = next(s for s in session.findings() if s.id == moved).center_mm
    assert after != before and "Moved finding" in loaded.status_label.text()
    old = loaded.store.connection.execute("SELECT old_value FROM audit WHERE action = 'finding_edited'").fetchone()
    assert old is not None and str(round(before[0], 2))[:5] in old[0]  # the old centre stays in the record


def test_first_run_tour_names_the_device_and_walks_the_review_keys(loaded: MainWindow, qtbot) -> None:
    from ui.dialogs.welcome import TOUR

    loaded.show_tour()
    tour = loaded.tour
    qtbot.waitUntil(lambda: "per chest CT" in tour.device_label.text(), timeout=60000)
    seen = []
    while tour.isVisible():
        seen.append(tour.pages.currentWidget())
        qtbot.mouseClick(tour.next, Qt.MouseButton.LeftButton)
    assert len(seen) == 1 + len(TOUR) and tour.result() == tour.DialogCode.Accepted
    texts = " ".join(page.text() for page in seen[1:])
    for key in ("<b>A</b>", "<b>R</b>", "<b>Shift+M</b>", "<b>Ctrl+Z</b>", "<b>Ctrl+Shift+E</b>"):
        assert key in texts


def test_quiz_hides_the_ai_then_scores_marks_beside_it(loaded: MainWindow, users, qtbot, small_phantom_dir) -> None:
    import json

    truth = json.loads((small_phantom_dir / "truth.json").read_text())["nodules"]
    answers = [{"center_mm": n["centre_mm"], "diameter_mm": n["diameter_mm"], "type": "solid"} for n in truth]
    with loaded.store.transaction() as connection:  # as a pack import leaves it (import itself: core tests)
        connection.execute("INSERT INTO teaching_cases VALUES (?, 'p1', 'case-01', ?, 'Look at both bases.', "
                           "'admin', 'now')", (loaded.state.volume.metadata.study_uid, json.dumps(answers)))
    loaded.review.set_user(users[2])  # a trainee
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_Q,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert loaded.quiz.case is not None and not loaded.findings_dock.isVisible()
    loaded.ai.run_ai()
    assert "hidden until you submit" in loaded.error_box.text() and not loaded.runner.busy
    loaded.review.undo_decision()
    assert "quiz is in progress" in loaded.error_box.text()
    for point in (truth[0]["centre_mm"], [0.0, 0.0, 0.0]):  # a hit and a false mark
        qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_M)
        loaded.review.on_point_clicked(point)  # (the click-to-point path is covered by the add/move tests)
    with qtbot.waitSignal(loaded.runner.finished, timeout=180000):
        loaded.teaching.submit_quiz()
    qtbot.waitUntil(lambda: loaded.teaching.quiz_result is not None and loaded.teaching.quiz_result.isVisible())
    table = loaded.teaching.quiz_result.table
    cells = [[table.item(r, c).text() if table.item(r, c) else "" for c in range(3)] for r in range(table.rowCount())]
    assert cells[0][1] == "found" and ["Your mark 2", "false mark", ""] in cells
    assert f"1 of {len(truth)} nodules found" in loaded.teaching.quiz_result.summary.text()
    row = loaded.store.connection.execute("SELECT trainee, hits, false_marks FROM quiz_attempts").fetchone()
    assert row == ("trainee", 1, 1) and loaded.findings_dock.isVisible() and loaded.quiz.case is None


def test_presentation_mode_hides_every_identifier(loaded: MainWindow, users, qtbot, small_phantom_dir) -> None:
    from workstation.jobs import run_job
    from workstation.library import StudyLibrary

    meta = loaded.state.volume.metadata
    loaded.review.set_user(users[1])
    run_job(StudyLibrary(loaded.home).import_job([small_phantom_dir / "dicom"]))
    loaded.browser.reload()
    assert meta.patient_name in loaded.browser.tree.topLevelItem(0).text(0)
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_F12)
    assert loaded.state.presentation
    assert meta.patient_name not in loaded.windowTitle() and "presentation" in loaded.windowTitle()
    assert loaded.views["axial"].texts["top_left"].GetInput() == ""
    browser = loaded.browser.tree.topLevelItem(0)
    assert browser.text(0) == "(hidden)" and browser.text(1) == "(hidden)"
    _run_ai(loaded, qtbot)
    loaded.review.accept_finding()
    with qtbot.waitSignal(loaded.runner.finished, timeout=60000):
        loaded.reports.export_report()
    qtbot.waitUntil(lambda: loaded.reports.report_preview is not None)
    from pypdf import PdfReader

    text = "\n".join(p.extract_text() for p in PdfReader(str(loaded.reports.report_preview.preview.path)).pages)
    assert meta.patient_id not in text and "(hidden)" in text
    assert not loaded.reports.report_preview.save_button.isEnabled()
    loaded.reports.report_preview.reject()
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_F12)
    assert meta.patient_id in loaded.views["axial"].texts["top_left"].GetInput()


def test_demo_case_read_entirely_by_keyboard_then_the_audit_verifies(window: MainWindow, qtbot, capsys) -> None:
    """Issue #5's end-to-end: open the demo case, run the AI, decide every finding by keys (rejects
    through the reason picker), sign with impression and Lung-RADS dialogs, verify the audit."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QComboBox, QDialogButtonBox, QInputDialog, QLineEdit, QPlainTextEdit

    admin = add_user(window.store, None, "admin", "correct horse", "admin")
    window.review.set_user(add_user(window.store, admin, "dr.kim", "battery staple", "radiologist"))
    with qtbot.waitSignal(window.runner.finished, timeout=180000):
        window.opening.open_demo()
    _active(window, qtbot)
    with qtbot.waitSignal(window.runner.finished, timeout=180000):
        qtbot.keyClick(window.views["axial"], Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
    session = window.review.session
    total = len(session.findings())
    assert total >= 1
    answered: list[str] = []

    def answer() -> None:  # whatever modal dialog is up, answer it with keys as a reader would
        dialog = QApplication.activeModalWidget()
        if isinstance(dialog, QInputDialog):
            text = dialog.findChild(QPlainTextEdit)
            secret = dialog.findChild(QLineEdit)
            if secret is not None and secret.echoMode() == QLineEdit.EchoMode.Password:  # the e-signature
                qtbot.keyClicks(secret, "battery staple")
                answered.append("password")
                qtbot.keyClick(secret, Qt.Key.Key_Return)
            elif text is not None:  # the impression
                qtbot.keyClicks(text, "Nodules as listed; no other findings.")
                answered.append("impression")
                qtbot.mouseClick(dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok),
                                 Qt.MouseButton.LeftButton)
            else:  # a picker: reason (first entry: vessel) or Lung-RADS (the suggestion)
                answered.append(dialog.findChild(QComboBox).currentText())
                qtbot.keyClick(dialog.findChild(QComboBox), Qt.Key.Key_Return)
        if len(answered) < 99:
            QTimer.singleShot(50, answer)

    QTimer.singleShot(50, answer)
    for index in range(total):
        _active(window, qtbot)
        qtbot.keyClick(window.views["axial"], Qt.Key.Key_R if index % 2 else Qt.Key.Key_A)
        qtbot.waitUntil(lambda: session.progress()[0] == index + 1, timeout=5000)
    _active(window, qtbot)  # (the reason picker had the focus)
    qtbot.keyClick(window.views["axial"], Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: session.signed, timeout=10000)
    answered.extend(["stop"] * 99)
    assert "impression" in answered and "password" in answered and (total < 2 or "vessel" in answered)
    assert any(a in ("1", "2", "3", "4A", "4B") for a in answered)  # the Lung-RADS suggestion, confirmed
    window.reports.export_offer.reject()  # "Export the report now?" - not now
    states = session.findings()
    assert [s.decision for s in states].count("rejected") == total // 2
    assert all(s.reason == "vessel" for s in states if s.decision == "rejected")
    assert cli(["audit", "verify"]) == 0 and "audit trail ok" in capsys.readouterr().out


def test_teaching_pack_export_and_import_from_the_viewer(window: MainWindow, users_of_window, qtbot,
                                                          small_phantom_dir, tmp_path) -> None:
    from workstation.jobs import run_job
    from workstation.library import StudyLibrary
    from workstation.teaching.pack import teaching_case

    run_job(StudyLibrary(window.home).import_job([small_phantom_dir / "dicom"]))
    key = StudyLibrary(window.home).studies()[0]["key"]
    window.review.set_user(users_of_window[1])
    with qtbot.waitSignal(window.runner.finished, timeout=120000):
        window.opening.open_study(key)
    window.review.session.add(tuple(window.state.crosshair), 8.0, "solid")
    pack = tmp_path / "lecture.zip"
    with qtbot.waitSignal(window.runner.finished, timeout=120000):
        window.teaching.export_pack(pack, notes="One solid nodule.")
    assert pack.is_file() and "Wrote the teaching pack" in window.status_label.text()
    with qtbot.waitSignal(window.runner.finished, timeout=120000):
        window.teaching.import_pack(pack)
    assert "Imported 1 teaching case" in window.status_label.text()
    studies = StudyLibrary(window.home).studies()
    assert len(studies) == 2 and window.browser.tree.topLevelItemCount() == 2
    case = next(teaching_case(window.store, s["study_uid"]) for s in studies
                if teaching_case(window.store, s["study_uid"]))
    assert case.notes == "One solid nodule." and len(case.answers) == 1


def test_a_signed_read_is_sealed_for_a_trainee_and_amended_only_by_addendum(loaded: MainWindow, users,
                                                                            qtbot) -> None:
    """#20: radiologist rejects, signs; a trainee presses A on the same finding: refused, the
    signed content unchanged; the radiologist's addendum is recorded apart and said in the report."""
    from workstation.reporting.content import content_from_store

    _admin, reader, trainee = users
    loaded.review.set_user(reader)
    _run_ai(loaded, qtbot)
    tree = loaded.findings_panel.tree
    tree.setCurrentItem(tree.topLevelItem(0))
    rejected = loaded.findings_panel.current_id()
    loaded.review.reject_finding("outside lung")
    loaded.review.sign_study("No nodules.", undecided_reason="test: the rest later", export_after=False,
                             password="battery staple")
    assert loaded.review.session.signed
    decisions = loaded.store.connection.execute("SELECT count(*) FROM decisions").fetchone()[0]

    loaded.review.set_user(trainee)
    assert "read-only" in loaded.findings_panel.progress_label.text()
    for row in range(tree.topLevelItemCount()):
        if tree.topLevelItem(row).data(1, 0x0100) == rejected:
            tree.setCurrentItem(tree.topLevelItem(row))
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_A)
    assert loaded.error_box is not None, loaded.status_label.text()
    assert "may not change it" in loaded.error_box.text()
    loaded.review.begin_addendum("I think it is a nodule")
    assert "may not amend" in loaded.error_box.text()
    assert loaded.store.connection.execute("SELECT count(*) FROM decisions").fetchone()[0] == decisions

    loaded.review.set_user(reader)
    loaded.review.accept_finding()  # still sealed without an addendum
    assert "make an addendum" in loaded.error_box.text()
    loaded.review.begin_addendum("Second look: a juxtapleural nodule")
    loaded.review.accept_finding()
    content = content_from_store(loaded.store, loaded.state.volume.metadata.study_uid, loaded.state.volume)
    assert rejected in [f.finding_id for f in content.rejected]  # the signed content stays as signed
    assert len(content.addenda) == 1 and content.addenda[0].by == "dr.lee"
    assert content.addenda[0].why == "Second look: a juxtapleural nodule" and "accepted" in content.addenda[0].what
