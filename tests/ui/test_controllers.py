"""Each controller on its own, without a MainWindow: real ViewerState, ReviewStore, JobRunner and
widgets, with the status line and error messages collected in lists."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QDockWidget, QLabel, QWidget

from ui.controllers.ai_run import AiRunController
from ui.controllers.jobs import JobDispatch
from ui.controllers.quiz import Quiz
from ui.controllers.reports import ReportsController
from ui.controllers.review import ReviewController
from ui.controllers.screen_lock import ScreenLockController
from ui.controllers.study_opening import StudyOpeningController, viewer_load_job
from ui.controllers.teaching import TeachingController
from ui.controllers.viewing import ViewingController
from ui.state import ViewerState
from ui.widgets.findings_panel import FindingsPanel
from ui.widgets.study_browser import StudyBrowser
from ui.workers import JobRunner
from workstation.config import read_settings
from workstation.imaging.windowing import PRESETS
from workstation.inference.findings import Finding
from workstation.inference.registry import find_model
from workstation.inference.runner import Analysis
from workstation.jobs import CancelToken, Progress, run_job
from workstation.library import StudyLibrary
from workstation.review.store import ReviewStore
from workstation.review.users import PermissionDenied, add_user


class Messages:
    """Stands in for the window's status line and error box."""

    def __init__(self) -> None:
        self.status: list[str] = []
        self.errors: list[str] = []

    def fail(self, message: str) -> None:
        self.errors.append(message)


@pytest.fixture(scope="module")
def phantom(small_phantom_dir: Path, tmp_path_factory) -> dict:
    home = tmp_path_factory.mktemp("load-home")
    return run_job(viewer_load_job([small_phantom_dir / "dicom"], home, None, CancelToken()))


@pytest.fixture
def parts(qtbot, home: Path):
    home.mkdir(parents=True, exist_ok=True)
    store = ReviewStore.in_home(home)
    runner = JobRunner()
    messages = Messages()
    admin = add_user(store, None, "admin", "correct horse", "admin")
    users = {"admin": admin, "reader": add_user(store, admin, "dr.lee", "battery staple", "radiologist"),
             "trainee": add_user(store, admin, "trainee", "battery staple", "trainee")}
    yield {"home": home, "store": store, "state": ViewerState(), "runner": runner, "messages": messages,
           "jobs": JobDispatch(runner, messages.status.append), "panel": FindingsPanel(), "quiz": Quiz(),
           "users": users}
    runner.cancel()
    runner.wait(10)


def _review(parts) -> ReviewController:
    messages = parts["messages"]
    return ReviewController(parts["state"], parts["store"], parts["panel"], parts["quiz"], messages.status.append,
                            messages.fail)


def _ai(parts, review: ReviewController) -> AiRunController:
    messages = parts["messages"]
    return AiRunController(parts["state"], parts["jobs"], review, parts["quiz"], parts["panel"], QLabel(), QLabel(),
                           messages.status.append, messages.fail)


def _analysis(volume, centres_mm: list) -> Analysis:
    findings = [Finding(n + 1, tuple(float(v) for v in centre), (0.0, 0.0, 0.0), 8.0, 268.0, 20.0, 0.9, "solid",
                        "test-model", "1") for n, centre in enumerate(centres_mm)]
    return Analysis("test-model", "1", "sha-of-test-weights", "cpu", 0.5, 0.1,
                    np.zeros(volume.shape, np.float32), findings, [], "For testing only.")


def _settings(home: Path) -> QSettings:
    return QSettings(str(home / "settings.ini"), QSettings.Format.IniFormat)


def _show(parts, phantom: dict) -> None:
    parts["state"].set_volume(phantom["volume"], None, [], phantom["summaries"])


def test_job_dispatch_hands_the_result_to_its_starter_and_refuses_a_second_job(parts, qtbot) -> None:
    jobs, release, results = parts["jobs"], threading.Event(), []

    def job(cancel):
        yield Progress(0, 1, "waiting")
        release.wait(10)
        return 42

    with qtbot.waitSignal(jobs.started):
        assert jobs.start(job, "First job", results.append)
    assert not jobs.start(job, "Second job", lambda _result: pytest.fail("the refused job's handler ran"))
    assert parts["messages"].status[-1] == "Another job is still running; cancel it first (Esc)"
    with qtbot.waitSignal(parts["runner"].finished, timeout=10000):
        release.set()
    assert results == [42]


def test_study_opening_shows_a_library_study_and_remembers_it(parts, small_phantom_dir, qtbot) -> None:
    home, messages = parts["home"], parts["messages"]
    run_job(StudyLibrary(home).import_job([small_phantom_dir / "dicom"]))
    key = StudyLibrary(home).studies()[0]["key"]
    settings = _settings(home)
    opening = StudyOpeningController(home, settings, parts["state"], parts["jobs"], StudyBrowser(home),
                                     parts["panel"], QLabel(), messages.status.append, messages.fail)
    opening.open_target("no such study")
    assert messages.errors and parts["runner"].busy is False
    with qtbot.waitSignal(opening.loaded, timeout=60000):
        opening.open_study(key)
    qtbot.waitUntil(lambda: not parts["runner"].busy)
    assert parts["state"].volume is not None and parts["state"].volume.shape[1:] == (128, 128)
    assert opening.current_study_key == key and settings.value("last_study") == key
    assert messages.status[-1].startswith("Loaded ")


def test_review_accepting_a_finding_records_the_decision_in_the_store(parts, phantom) -> None:
    _show(parts, phantom)
    review = _review(parts)
    review.set_user(parts["users"]["reader"])
    review.session.record_analysis(_analysis(phantom["volume"], [parts["state"].crosshair]),
                                   phantom["volume"].metadata.series_uid)
    review.refresh_findings()
    tree = parts["panel"].tree
    assert tree.topLevelItemCount() == 1 and len(parts["state"].markers) == 1
    tree.setCurrentItem(tree.topLevelItem(0))
    review.accept_finding()
    row = parts["store"].connection.execute("SELECT user, action FROM decisions").fetchone()
    assert row == ("dr.lee", "accept") and review.session.progress() == (1, 1)
    parts["quiz"].case = object()  # while a quiz runs, decisions are refused
    review.undo_decision()
    assert "quiz is in progress" in parts["messages"].errors[-1] and review.session.progress() == (1, 1)


def test_ai_refuses_to_run_without_a_volume_then_shows_an_analysis(parts, phantom) -> None:
    review = _review(parts)
    ai = _ai(parts, review)
    ai.run_ai()
    assert parts["messages"].status[-1] == "Open a study first" and not parts["runner"].busy
    _show(parts, phantom)
    ai.on_analysis(_analysis(phantom["volume"], [parts["state"].crosshair]))
    assert parts["state"].heatmap is not None and "test-model 1" in ai.overlay_label.text()
    assert parts["panel"].tree.topLevelItemCount() == 1 and parts["messages"].status[-1].startswith("1 finding(s)")
    ai.bundle = find_model()
    parts["state"].set_overlay(threshold=ai.bundle.operating_points[0].threshold)
    assert ai.operating_label.text().startswith(f"Model card at threshold {ai.bundle.operating_points[0].threshold:g}")
    assert ai.operating_label.text().endswith("not real annotated nodules")  # #19: which data


def test_teaching_quiz_hides_the_ai_then_scores_the_marks(parts, phantom, small_phantom_dir, monkeypatch) -> None:
    truth = json.loads((small_phantom_dir / "truth.json").read_text())["nodules"]
    answers = [{"center_mm": n["centre_mm"], "diameter_mm": n["diameter_mm"], "type": "solid"} for n in truth]
    _show(parts, phantom)
    with parts["store"].transaction() as connection:
        connection.execute("INSERT INTO teaching_cases VALUES (?, 'p1', 'case-01', ?, '', 'admin', 'now')",
                           (phantom["volume"].metadata.study_uid, json.dumps(answers)))
    messages, review = parts["messages"], _review(parts)
    ai = _ai(parts, review)
    opening = StudyOpeningController(parts["home"], _settings(parts["home"]), parts["state"], parts["jobs"],
                                     StudyBrowser(parts["home"]), parts["panel"], QLabel(), messages.status.append,
                                     messages.fail)
    dock = QDockWidget("AI findings")
    teaching = TeachingController(parts["home"], parts["store"], parts["state"], parts["quiz"], parts["jobs"], opening,
                                  review, ai, opening.browser, parts["panel"], dock, QLabel(), messages.status.append,
                                  messages.fail)
    review.set_user(parts["users"]["trainee"])
    teaching.start_quiz()
    assert parts["quiz"].active and dock.isHidden() and parts["state"].heatmap is None
    ai.run_ai()
    assert "hidden until you submit" in messages.errors[-1] and not parts["runner"].busy
    review.add_missed()
    review.on_point_clicked(truth[0]["centre_mm"])
    assert len(parts["quiz"].marks) == 1
    # the model's own run is covered by the window's quiz test; here the AI answers at once
    monkeypatch.setattr(ai, "run_ai", lambda on_analysis: on_analysis(_analysis(phantom["volume"], [])))
    teaching.submit_quiz()
    row = parts["store"].connection.execute("SELECT trainee, hits, false_marks FROM quiz_attempts").fetchone()
    assert row == ("trainee", 1, 0) and not parts["quiz"].active and not dock.isHidden()
    assert len(parts["state"].markers) == len(truth) + 1  # the answer key and the trainee's mark
    teaching.quiz_result.close()


def test_reports_refuse_a_trainee_and_preview_a_signed_read(parts, phantom, qtbot) -> None:
    _show(parts, phantom)
    messages, review = parts["messages"], _review(parts)
    reports = ReportsController(parts["home"], _settings(parts["home"]), parts["store"], parts["state"], review,
                                parts["jobs"], messages.status.append, messages.fail)
    review.signed.connect(reports.after_signing)
    review.set_user(parts["users"]["trainee"])
    reports.export_report()
    assert "may not export" in messages.errors[-1] and not parts["runner"].busy
    reports.set_institution("  Clinique du Lac ")  # a trainee may not change the clinic's settings
    assert "may not administer" in messages.errors[-1] and "institution" not in read_settings(parts["home"])
    review.set_user(parts["users"]["admin"])
    reports.set_institution("  Clinique du Lac ")
    assert read_settings(parts["home"])["institution"] == "Clinique du Lac"
    changed = parts["store"].connection.execute("SELECT user, new_value FROM audit WHERE action = 'settings_changed'")
    assert changed.fetchone() == ("admin", '"Clinique du Lac"')
    review.set_user(parts["users"]["reader"])
    with qtbot.waitSignal(parts["runner"].finished, timeout=60000):
        review.sign_study("Nothing found.", export_after=True, password="battery staple")
    qtbot.waitUntil(lambda: reports.report_preview is not None)
    assert reports.report_preview.page_count() >= 1 and messages.status[-1].startswith("Report ready to save")
    reports.report_preview.reject()


def test_screen_lock_waits_for_the_same_user_or_an_admin(parts, monkeypatch, qtbot) -> None:
    review = _review(parts)
    review.set_user(parts["users"]["reader"])
    lock = ScreenLockController(parts["store"], review, 60.0, parts["messages"].status.append)
    monkeypatch.setattr(lock, "_ask_unlock", lambda: None)  # the dialog is tested by hand
    with qtbot.waitSignal(lock.lock_changed) as locked:
        lock.idle.tick(now=lock.idle.last_input + 61)
    assert lock.locked and locked.args == [True]
    with pytest.raises(PermissionDenied):
        lock.unlock(parts["users"]["trainee"])
    assert lock.locked
    with qtbot.waitSignal(lock.lock_changed) as unlocked:
        lock.unlock(parts["users"]["admin"])
    assert not lock.locked and unlocked.args == [False]
    actions = [row[0] for row in parts["store"].connection.execute("SELECT action FROM audit")]
    assert "lock" in actions and "unlock" in actions
    lock.stop()


def test_viewing_shows_only_the_active_view_and_applies_presets(parts, qtbot) -> None:
    views = {name: QWidget() for name in ("axial", "coronal", "sagittal", "3d")}
    container = QWidget()
    qtbot.addWidget(container)
    for view in views.values():
        view.setParent(container)
    container.show()
    viewing = ViewingController(parts["state"], views, StudyBrowser(parts["home"]), parts["messages"].status.append)
    viewing.set_active_view("coronal")
    viewing.toggle_layout()
    assert [name for name, view in views.items() if view.isVisible()] == ["coronal"]
    viewing.toggle_layout()
    assert all(view.isVisible() for view in views.values())
    viewing.apply_preset("bone")
    assert parts["state"].window == PRESETS["bone"]


def test_a_job_started_before_the_last_one_is_delivered_waits_its_turn(parts, qtbot) -> None:
    """The earlier job's thread has ended but its result is still queued for the GUI thread: a new
    job is refused until that result reached its own handler, never handed to the new one."""
    def job_returning(value):
        def make(cancel):
            yield Progress(1, 1, "done")
            return value
        return make

    jobs, received = parts["jobs"], []
    assert jobs.start(job_returning("first"), "first", lambda result: received.append(("first", result)))
    parts["runner"].wait(10)  # the thread is gone; nothing delivered yet (no events processed)
    assert not jobs.start(job_returning("second"), "second", lambda result: received.append(("second", result)))
    qtbot.waitUntil(lambda: not parts["runner"].busy)
    assert received == [("first", "first")]
    assert jobs.start(job_returning("second"), "second", lambda result: received.append(("second", result)))
    qtbot.waitUntil(lambda: not parts["runner"].busy)
    assert received == [("first", "first"), ("second", "second")]
