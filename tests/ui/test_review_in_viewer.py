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


@pytest.fixture
def users(loaded: MainWindow):
    admin = add_user(loaded.store, None, "admin", "correct horse", "admin")
    reader = add_user(loaded.store, admin, "dr.lee", "battery staple", "radiologist")
    trainee = add_user(loaded.store, admin, "trainee", "battery staple", "trainee")
    return admin, reader, trainee


def _run_ai(window: MainWindow, qtbot) -> None:
    with qtbot.waitSignal(window.runner.succeeded, timeout=180000):
        window.run_ai()
    qtbot.waitUntil(lambda: not window.runner.busy)


def _active(window: MainWindow, qtbot) -> None:
    with qtbot.waitActive(window):
        window.activateWindow()
    window.views["axial"].setFocus()


def test_keys_decide_add_undo_and_sign(loaded: MainWindow, users, qtbot) -> None:
    _admin, reader, _trainee = users
    loaded.set_user(reader)
    _run_ai(loaded, qtbot)
    session = loaded.session
    total = len(session.findings())
    assert total >= 1 and loaded.findings_panel.progress_label.text().startswith(f"0 of {total} decided")
    _active(loaded, qtbot)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_A)
    assert session.progress() == (1, total)
    qtbot.keyClick(loaded.views["axial"], Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert session.progress() == (0, total)
    loaded.add_missed()
    axial = loaded.views["axial"]
    qtbot.mouseClick(axial, Qt.MouseButton.LeftButton, pos=QPoint(axial.width() // 2 + 20, axial.height() // 2))
    added = [s for s in session.findings() if s.source == "clinician"]
    assert len(added) == 1 and added[0].decision == "accepted"
    loaded.edit_finding("ground-glass", 9.0)
    assert [s for s in session.findings() if s.source == "clinician"][0].type == "ground-glass"
    tree = loaded.findings_panel.tree
    tree.setCurrentItem(tree.topLevelItem(0))  # the AI's most probable finding; decisions move to the next
    for index in range(total):
        loaded.reject_finding("vessel") if index % 2 else loaded.accept_finding()
    assert session.progress() == (total + 1, total + 1)
    assert f"{total + 1} of {total + 1} decided" in loaded.findings_panel.progress_label.text()
    loaded.sign_study("Findings as listed.")
    assert session.signed and "signed" in loaded.findings_panel.progress_label.text()
    assert audit.verify(loaded.store.connection).ok


def test_a_trainee_cannot_sign_and_the_reason_is_shown(loaded: MainWindow, users, qtbot) -> None:
    loaded.set_user(users[2])
    loaded.sign_study("x", confirm_undecided=True)
    assert "A trainee may not sign" in loaded.error_box.text()
    assert not loaded.session.signed


def test_lock_hides_patient_data_until_the_same_user_or_an_admin(loaded: MainWindow, users, qtbot,
                                                                  monkeypatch) -> None:
    admin, reader, trainee = users
    loaded.set_user(reader)
    monkeypatch.setattr(loaded, "_ask_unlock", lambda: None)  # the dialog is tested by hand; here: the logic
    loaded.idle.tick(now=loaded.idle.last_input + 10 * 60 + 1)
    assert loaded.locked and loaded.central_stack.currentWidget() is loaded.lock_page
    assert loaded.windowTitle() == "Workstation (locked)"
    assert not loaded.findChild(type(loaded.findings_panel)).isVisible()
    with pytest.raises(PermissionDenied):
        loaded.unlock(trainee)
    loaded.unlock(admin)
    assert not loaded.locked and loaded.views["axial"].isVisible()
    actions = [row[0] for row in loaded.store.connection.execute("SELECT action FROM audit")]
    assert "lock" in actions and "unlock" in actions


def test_reading_time_counts_activity_not_idle(loaded: MainWindow, users) -> None:
    loaded.set_user(users[1])
    idle, start = loaded.idle, time.monotonic()
    idle.last_input = start
    for second in range(20):  # active: input a moment ago
        idle.tick(now=start + 1)
    for second in range(30):  # idle for over a minute: not reading
        idle.tick(now=start + 120)
    idle.flush()
    assert loaded.session.active_seconds == pytest.approx(20)


def test_end_to_end_read_of_the_demo_case_by_keyboard(window: MainWindow, qtbot, home: Path, capsys) -> None:
    admin = add_user(window.store, None, "admin", "correct horse", "admin")
    window.set_user(add_user(window.store, admin, "dr.lee", "battery staple", "radiologist"))
    with qtbot.waitSignal(window.runner.succeeded, timeout=120000):
        window.open_demo()
    qtbot.waitUntil(lambda: not window.runner.busy)
    _run_ai(window, qtbot)
    total = len(window.session.findings())
    assert total >= 1  # the model finds the two largest of the six demo nodules (see its card)
    _active(window, qtbot)
    for _ in range(total):
        qtbot.keyClick(window.views["axial"], Qt.Key.Key_A)
    assert window.session.progress() == (total, total)
    window.sign_study("Demo case read end to end.")
    assert window.session.signed
    capsys.readouterr()
    assert cli(["audit", "verify"]) == 0
    assert "audit trail ok" in capsys.readouterr().out
