"""Teaching packs and quizzes: import and export de-identified packs; a trainee answers a
teaching case with the AI and the answer key hidden, then sees both beside their marks. A
teaching case opened by a trainee (or with nobody logged in) is always a quiz: it starts at
the first slice, with no AI result, heatmap or marker shown and the AI not runnable until the
answers are submitted."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QDockWidget, QFileDialog, QInputDialog, QLabel, QWidget

from ui.controllers.ai_run import AiRunController
from ui.controllers.jobs import JobDispatch
from ui.controllers.quiz import Quiz
from ui.controllers.review import ReviewController
from ui.controllers.study_opening import StudyOpeningController
from ui.dialogs.quiz_result import QuizResultDialog
from ui.state import ViewerState, volume_summaries
from ui.widgets.findings_panel import FindingsPanel
from ui.widgets.study_browser import StudyBrowser
from workstation.errors import WorkstationError
from workstation.inference.runner import Analysis
from workstation.review.store import ReviewStore
from workstation.teaching.pack import PackCase, export_pack_job, import_pack_job, teaching_case
from workstation.teaching.quiz import submit_quiz


class TeachingController(QObject):
    """Owns the quiz in progress (`quiz`, shared with review and AI, which stay hidden meanwhile)."""

    def __init__(self, home: Path, store: ReviewStore, state: ViewerState, quiz: Quiz, jobs: JobDispatch,
                 opening: StudyOpeningController, review: ReviewController, ai: AiRunController,
                 browser: StudyBrowser, findings_panel: FindingsPanel, findings_dock: QDockWidget,
                 overlay_label: QLabel, status: Callable[[str], None], fail: Callable[[str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home, self.store, self.state, self.quiz, self.jobs = Path(home), store, state, quiz, jobs
        self.opening, self.review, self.ai = opening, review, ai
        self.browser, self.findings_panel, self.findings_dock = browser, findings_panel, findings_dock
        self.overlay_label = overlay_label
        self._status, self._fail = status, fail
        self.quiz_result: QuizResultDialog | None = None

    def import_pack(self, path: Path | None = None) -> None:
        """Verify a teaching pack and add its cases (with their answer keys) to the library."""
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self.parent(), "Import a teaching pack", str(Path.home()),
                                                    "Teaching pack (*.zip)")
            if not chosen:
                return
            path = Path(chosen)
        store, home = self.store, self.home
        who = self.review.user.username if self.review.user else "unknown"
        self.jobs.start(lambda cancel: import_pack_job(path, home, store, imported_by=who, cancel=cancel),
                        f"Importing the teaching pack {path.name}", self._on_pack_imported)

    def _on_pack_imported(self, cases: list[PackCase]) -> None:
        self.browser.reload()
        self._status(f"Imported {len(cases)} teaching case(s); open one and start the quiz (Ctrl+Shift+Q)")

    def export_pack(self, path: Path | None = None, notes: str | None = None) -> None:
        """The open study, de-identified, with its accepted findings as the answer key."""
        user, study = self.review.user, self.opening.current_study_key
        if user is None or not user.can("export") or study is None:
            self._fail("Log in as a radiologist or admin and open a library study to export it as a pack")
            return
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self.parent(), "Export a teaching pack",
                                                    str(Path.home() / "case.zip"), "Teaching pack (*.zip)")
            if not chosen:
                return
            path = Path(chosen)
        if notes is None:
            notes, ok = QInputDialog.getMultiLineText(self.parent(), "Teaching pack", "Notes for the trainees")
            if not ok:
                return
        store, home, who = self.store, self.home, user.username
        self.jobs.start(lambda cancel: export_pack_job(home, store, [study], path, notes=notes, created_by=who,
                                                       cancel=cancel),
                        "Exporting a de-identified teaching pack",
                        lambda written: self._status(f"Wrote the teaching pack {written}"))

    def on_study_loaded(self) -> None:
        """A study was (re)loaded: an unsubmitted quiz ends, and a teaching case opened by anyone
        but a radiologist or an admin becomes a quiz at once: the AI and the answer key never show first."""
        self.end_quiz()
        self.quiz_for_trainee()

    def quiz_for_trainee(self) -> None:
        """The open teaching case as a quiz when the user is a trainee or nobody is logged in (also
        when a trainee logs in on it); a quiz in progress goes on."""
        volume, user = self.state.volume, self.review.user
        if volume is None or self.quiz.active or (user is not None and user.role != "trainee"):
            return
        if teaching_case(self.store, volume.metadata.study_uid) is not None:
            self.start_quiz()

    def end_quiz(self) -> None:
        """An unsubmitted quiz is left, unscored (another study was opened, or the same one again)."""
        if self.quiz.active:
            self.quiz.case, self.quiz.marks, self.quiz.submitting = None, [], False
            self.findings_dock.show()

    def start_quiz(self) -> None:
        """Answer the open teaching case: AI and answer key hidden until submitted."""
        volume = self.state.volume
        case = teaching_case(self.store, volume.metadata.study_uid) if volume is not None else None
        if case is None:
            self._fail("Open a teaching case first (import a pack: workstation pack import PACK.zip)")
            return
        self.quiz.case, self.quiz.marks, self.quiz.submitting = case, [], False
        self.findings_panel.clear()
        self.findings_dock.hide()
        self.state.set_heatmap(None, ())
        self.state.set_markers([])
        self.state.set_tool("crosshair")
        # the first slice, mid-plane: nothing the trainee sees first points at an answer
        i, j = (volume.shape[2] - 1) / 2, (volume.shape[1] - 1) / 2
        self.state.set_crosshair(volume.voxel_to_patient((round(i), round(j), 0)))
        self.overlay_label.setText("Quiz: AI and answers hidden until you submit")
        self._status(f"Quiz on {case.name}: M then click marks a suspected nodule; Ctrl+Return submits")

    def submit_quiz(self) -> None:
        if self.quiz.case is None or self.review.user is None:
            self._fail("Start a quiz on a teaching case first (Ctrl+Shift+Q)")
            return
        self.quiz.submitting = True
        self.ai.run_ai(self._finish_quiz)  # the AI's answer, for the side-by-side comparison

    def _finish_quiz(self, analysis: Analysis) -> None:
        case, self.quiz.submitting = self.quiz.case, False
        try:
            result = submit_quiz(self.store, self.review.user, case, self.quiz.marks,
                                 [f.center_mm for f in analysis.findings])
        except WorkstationError as exc:
            self._fail(str(exc))
            return
        self.quiz.case = None
        self.findings_dock.show()
        self.state.set_heatmap(analysis.heatmap, volume_summaries(self.state.volume, analysis.heatmap)["heat_maxima"])
        self.state.set_markers([(np.array(a["center_mm"]), a["diameter_mm"] / 2) for a in case.answers]
                               + [(np.array(m), 4.0) for m in self.quiz.marks])
        self.overlay_label.setText(f"Overlay: {analysis.model_name} {analysis.model_version} heatmap; markers: "
                                   "answer key and your marks")
        self.quiz_result = QuizResultDialog(result, self.parent())
        self.quiz_result.open()
        self._status(f"Quiz submitted: {result.summary()}")
