"""Run the AI on the open study: heatmap into the overlay, findings into the read, and what the
model's card promises at the chosen threshold."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QWidget

from ui.controllers.jobs import JobDispatch
from ui.controllers.quiz import Quiz
from ui.controllers.review import ReviewController
from ui.state import ViewerState, volume_summaries
from ui.widgets.findings_panel import FindingsPanel
from workstation.errors import WorkstationError
from workstation.inference.bundle import ModelBundle
from workstation.inference.registry import find_model
from workstation.inference.runner import Analysis, run_inference_job
from workstation.review.analyses import RecordedRun, StoredAnalysis, run_and_record_job
from workstation.review.session import ReviewSession

log = logging.getLogger("workstation.ui")


class AiRunController(QObject):
    """Owns the model bundle last run, for its operating points."""

    def __init__(self, state: ViewerState, jobs: JobDispatch, review: ReviewController, quiz: Quiz,
                 findings_panel: FindingsPanel, overlay_label: QLabel, operating_label: QLabel,
                 status: Callable[[str], None], fail: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.jobs, self.review, self.quiz = state, jobs, review, quiz
        self.findings_panel, self.overlay_label, self.operating_label = findings_panel, overlay_label, operating_label
        self._status, self._fail = status, fail
        self.bundle: ModelBundle | None = None
        self.run_threshold: float | None = None  # the threshold the shown run recorded its findings at
        self._listed_at: float | None = None
        state.overlay_changed.connect(self.update_operating_point)
        state.volume_changed.connect(self._forget_run)

    def _forget_run(self) -> None:
        """Another study: no run shown until its own is (show_recorded, or Run AI)."""
        self.run_threshold = self._listed_at = None
        self.bundle = None

    def run_ai(self, on_analysis: Callable[[Analysis], None] | None = None) -> None:
        """Run the default model on the open study, off the GUI thread, with progress and cancel;
        the result is shown, or goes to `on_analysis` (the quiz's comparison)."""
        volume = self.state.volume
        if volume is None:
            self._status("Open a study first")
            return
        if self.quiz.active and not self.quiz.submitting:
            self._fail("The AI stays hidden until you submit your answers (Ctrl+Return)")
            return
        try:
            bundle = find_model()
        except WorkstationError as exc:
            self._fail(str(exc))
            return
        self.bundle = bundle
        self.state.set_overlay(threshold=bundle.default_threshold)
        description = f"Running {bundle.name} {bundle.version}"
        session, user, store = self.review.session, self.review.user, self.review.store
        if session is not None and user is not None and on_analysis is None:
            # the same core job as `workstation analyze STUDY`: the run and its findings are recorded
            self.jobs.start(lambda cancel: run_and_record_job(store, user, volume, bundle, "auto", None, cancel),
                            description, self.on_recorded)
            return
        self.jobs.start(lambda cancel: run_inference_job(volume, bundle, "auto", None, cancel),
                        description, on_analysis or self.on_analysis)

    def on_recorded(self, run: RecordedRun) -> None:
        self._show(run.analysis)
        self.review.refresh_findings()
        self._after_run(run.analysis)

    def on_analysis(self, analysis: Analysis) -> None:
        """A run nobody is logged in to record: shown, its findings listed undecided."""
        self._show(analysis)
        self.review.refresh_findings(analysis.findings)
        self._after_run(analysis)

    def show_recorded(self, stored: StoredAnalysis) -> None:
        """A study opened after the AI ran on it (here or headless): its recorded result, no re-run.
        The heatmap is already in the state (loaded with the volume). In a quiz, nothing is shown."""
        if self.quiz.active:
            return
        self.run_threshold = stored.threshold
        self.overlay_label.setText(f"Overlay: {stored.model_name} {stored.model_version} heatmap, recorded "
                                   f"{stored.created_at[:16].replace('T', ' ')} UTC by {stored.created_by}. "
                                   f"{stored.notice}")
        self.findings_panel.show_model(stored.model_name, stored.model_version, stored.device, stored.threshold,
                                       stored.notice, [f"Outside validated scope: {r}" for r in stored.scope_warnings]
                                       + stored.notes)
        self.state.set_overlay(threshold=stored.threshold)
        try:
            bundle = find_model(stored.model_name)
        except WorkstationError:
            bundle = None  # the model is gone from this machine: its card cannot be quoted
        self.bundle = bundle if bundle is not None and bundle.weights_sha256 == stored.model_sha256 else None
        self.update_operating_point()
        if self.review.session is None:
            self.review.refresh_findings(ReviewSession.findings_of(self.review.store, stored.study_uid))

    def _show(self, analysis: Analysis) -> None:
        volume = self.state.volume
        self.run_threshold = analysis.threshold
        self.state.set_heatmap(analysis.heatmap, volume_summaries(volume, analysis.heatmap)["heat_maxima"])
        self.overlay_label.setText(f"Overlay: {analysis.model_name} {analysis.model_version} heatmap. "
                                   f"{analysis.notice}")
        self.findings_panel.show_model(analysis.model_name, analysis.model_version, analysis.device,
                                       analysis.threshold, analysis.notice,
                                       [f"Outside validated scope: {r}" for r in analysis.scope_warnings]
                                       + analysis.notes)

    def _after_run(self, analysis: Analysis) -> None:
        if self.findings_panel.tree.topLevelItemCount():
            self.findings_panel.select_next(1)
        scope = f" - outside validated scope: {'; '.join(analysis.scope_warnings)}" if analysis.scope_warnings else ""
        self._status(f"{len(analysis.findings)} finding(s) in {analysis.runtime_s:.1f} s{scope}")
        log.info("analysis by %s %s: %d findings", analysis.model_name, analysis.model_version,
                 len(analysis.findings))

    def update_operating_point(self) -> None:
        """The threshold slider says what the model's card promises at that threshold, and the
        findings list and markers follow it (the list's header names the threshold)."""
        threshold = self.state.overlay_threshold
        bundle = self.bundle
        point = (min(bundle.operating_points, key=lambda p: abs(p.threshold - threshold))
                 if bundle is not None and bundle.operating_points else None)
        if point is None:
            self.operating_label.setText("")
        else:
            self.operating_label.setText(f"Model card at threshold {point.threshold:g}: sensitivity "
                                         f"{point.sensitivity:.2f}, {point.false_positives_per_scan:.2f} false "
                                         f"positives per scan (nodules >= 6 mm), measured on {point.measured_on}")
        if self.run_threshold is None or self.quiz.active:
            return
        header = f"Showing AI findings at threshold {threshold:.2f}"
        if point is not None:
            header += (f" (operating point {point.threshold:g}: sensitivity {point.sensitivity:.2f}, "
                       f"{point.false_positives_per_scan:.2f} FP/scan)")
        if threshold < self.run_threshold - 1e-9:
            header += f"; the run kept nothing below {self.run_threshold:g}"
        self.findings_panel.show_threshold(header)
        if self._listed_at != threshold:
            self._listed_at = threshold
            self.review.refresh_findings()
