"""The main window: study browser, 2x2 MPR + 3D views, histogram and overlay controls."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtWidgets import (
    QApplication, QCheckBox, QDockWidget, QFileDialog, QFormLayout, QGridLayout, QInputDialog, QLabel, QMainWindow, QMessageBox,
    QProgressBar, QStackedWidget,
    QPushButton, QSlider, QVBoxLayout, QWidget,
)

from ui.actions import build_actions, shortcuts_dialog
from ui.dialogs.login import LoginDialog
from ui.dialogs.quiz_result import QuizResultDialog
from ui.dialogs.report_preview import ReportPreviewDialog
from ui.idle import IdleWatcher
from ui.render.slice_view import SliceView
from ui.render.volume_view import VolumeView
from ui.state import ViewerState, volume_summaries
from ui.widgets.findings_panel import DECISION_COLUMN, FindingsPanel
from ui.widgets.histogram import HistogramPanel
from ui.widgets.study_browser import StudyBrowser
from ui.workers import JobRunner
from workstation.config import read_settings, write_setting
from workstation.demo import demo_truth_for, ensure_demo_case, truth_overlay
from workstation.dicom.load import load_largest_series_job
from workstation.errors import WorkstationError
from workstation.imaging.snapshot import save_thumbnail
from workstation.imaging.volume import masked_identifiers
from workstation.imaging.windowing import PRESETS
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import CancelToken, Job
from workstation.library import StudyLibrary, thumbnail_path
from workstation.teaching.pack import PackCase, export_pack_job, import_pack_job, teaching_case
from workstation.teaching.quiz import submit_quiz
from workstation.reporting.lungrads import CATEGORIES as LUNG_RADS_CATEGORIES
from workstation.reporting.lungrads import suggest_for_read
from workstation.reporting.study import ExportedReport, study_report_job
from workstation.review.session import FINDING_TYPES, REJECT_REASONS, ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import User, logout, record_lock, unlock

log = logging.getLogger("workstation.ui")
GRID_POSITIONS = {"axial": (0, 0), "coronal": (0, 1), "sagittal": (1, 0), "3d": (1, 1)}


def viewer_load_job(paths: list[Path], home: Path, study_key: str | None, cancel: CancelToken) -> Job[dict]:
    """Load the largest series at `paths`; for the demo case add its ground-truth overlay."""
    volume = yield from load_largest_series_job(paths, cancel)
    truth = demo_truth_for(volume, home)
    heatmap, markers = truth_overlay(volume, truth) if truth else (None, [])
    return {"volume": volume, "heatmap": heatmap, "markers": markers, "study_key": study_key,
            "summaries": volume_summaries(volume, heatmap),
            "overlay_source": "ground truth of the synthetic demo case (not AI)" if truth else ""}


def demo_job(home: Path, cancel: CancelToken) -> Job[dict]:
    """Generate the demo case if needed, import it into the library and load it."""
    from workstation.jobs import Progress

    yield Progress(0, 1, "Preparing the demo case")
    folder = ensure_demo_case(home)
    library = StudyLibrary(home)
    report = yield from library.import_job([folder], cancel)
    study_key = report.studies[0]
    series = library.series(study_key)
    return (yield from viewer_load_job([library.series_folder(series[0])], home, study_key, cancel))


class MainWindow(QMainWindow):
    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = Path(home)
        self.settings = QSettings(str(self.home / "settings.ini"), QSettings.Format.IniFormat)
        self.setWindowTitle("Workstation")
        self.state = ViewerState()
        self.runner = JobRunner()
        self.active_view = "axial"
        self.single_layout = False
        self.current_study_key: str | None = None
        self.overlay_source = ""
        self.error_box: QMessageBox | None = None
        self._warmed_up = False
        self.store = ReviewStore.in_home(self.home)
        self.user: User | None = None
        self.session: ReviewSession | None = None
        self.bundle = None
        self.analysis = None
        self.pending_click: tuple[str, int | None] | None = None  # ('add', None) or ('move', finding id)
        self.report_preview: ReportPreviewDialog | None = None
        self._on_done = None  # where the running job's result goes, when not the default dispatch
        self.export_offer: QMessageBox | None = None
        self.quiz_case: PackCase | None = None  # a teaching case being answered: AI and key hidden
        self.quiz_marks: list[tuple[float, float, float]] = []
        self.quiz_submitting = False
        self.quiz_result: QuizResultDialog | None = None

        self.views: dict[str, QWidget] = {name: SliceView(self.state, name) for name in ("axial", "coronal", "sagittal")}
        self.views["3d"] = VolumeView(self.state)
        for view in self.views.values():
            view.activated.connect(self._set_active_view)
            if isinstance(view, SliceView):
                view.point_clicked.connect(self._on_point_clicked)
        grid_widget = QWidget()
        self.grid = QGridLayout(grid_widget)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        for name, (row, column) in GRID_POSITIONS.items():
            self.grid.addWidget(self.views[name], row, column)
        self.lock_page = QLabel("Locked: patient data is hidden. Log in to continue.")
        self.lock_page.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.central_stack = QStackedWidget()
        self.central_stack.addWidget(grid_widget)
        self.central_stack.addWidget(self.lock_page)
        self.setCentralWidget(self.central_stack)
        self.locked = False
        self._docks_before_lock: list[QDockWidget] = []

        self.browser = StudyBrowser(self.home)
        self.browser.study_chosen.connect(self.open_study)
        self._dock("Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea).setMaximumWidth(420)
        self.findings_panel = FindingsPanel()
        self.findings_panel.finding_selected.connect(self.centre_on)
        self.findings_dock = self._dock("AI findings", self.findings_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.findings_dock.setMaximumWidth(420)
        self.histogram = HistogramPanel(self.state)
        self._dock("Histogram and overlay", self._side_panel(), Qt.DockWidgetArea.RightDockWidgetArea
                   ).setMaximumWidth(340)

        self.status_label = QLabel("Ready")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_job)
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

        self.runner.progress.connect(self._on_progress)
        self.runner.succeeded.connect(self._on_loaded)
        self.runner.failed.connect(self._on_failed)
        self.runner.cancelled.connect(lambda: self._set_status("Cancelled"))
        self.runner.finished.connect(self._on_job_finished)
        self.state.annotations_changed.connect(self._update_title)

        self.actions_by_key = build_actions(self)
        self.start_idle_watch()
        self._restore_settings()
        self.browser.reload()

    # -- layout -------------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _side_panel(self) -> QWidget:
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.addWidget(self.histogram, 1)
        form = QFormLayout()
        self.overlay_check = QCheckBox("Show heatmap (H)")
        self.overlay_check.setChecked(True)
        self.overlay_check.toggled.connect(lambda on: self.state.set_overlay(visible=on))
        self.opacity_slider = _slider(int(self.state.overlay_opacity * 100),
                                      lambda v: self.state.set_overlay(opacity=v / 100))
        self.threshold_slider = _slider(int(self.state.overlay_threshold * 100),
                                        lambda v: self.state.set_overlay(threshold=v / 100))
        self.overlay_label = QLabel("Overlay: none")
        self.overlay_label.setWordWrap(True)
        self.measure_label = QLabel("")
        self.measure_label.setWordWrap(True)
        form.addRow(self.overlay_check)
        form.addRow("Opacity", self.opacity_slider)
        form.addRow("Threshold", self.threshold_slider)
        self.operating_label = QLabel("")
        self.operating_label.setWordWrap(True)
        form.addRow(self.operating_label)
        form.addRow(self.overlay_label)
        form.addRow(self.measure_label)
        layout.addLayout(form)
        self.state.overlay_changed.connect(self._sync_overlay_controls)
        for name in ("axial", "coronal", "sagittal"):
            self.views[name].measurement_changed.connect(self.measure_label.setText)
        return panel

    def _sync_overlay_controls(self) -> None:
        self._update_operating_point()
        for widget, value in ((self.overlay_check, self.state.overlay_visible),
                              (self.opacity_slider, int(self.state.overlay_opacity * 100)),
                              (self.threshold_slider, int(self.state.overlay_threshold * 100))):
            widget.blockSignals(True)
            widget.setChecked(value) if isinstance(widget, QCheckBox) else widget.setValue(value)
            widget.blockSignals(False)

    def _set_active_view(self, name: str) -> None:
        self.active_view = name

    def toggle_layout(self) -> None:
        self.single_layout = not self.single_layout
        for name, view in self.views.items():
            view.setVisible(not self.single_layout or name == self.active_view)

    # -- opening studies ----------------------------------------------------------------------
    def open_target(self, target: str) -> None:
        """A path on disk, or a study reference from the library."""
        if Path(target).exists():
            self._start_load(lambda cancel: viewer_load_job([Path(target)], self.home, None, cancel),
                             f"Opening {target}")
            return
        try:
            study = StudyLibrary(self.home).find_study(target)
        except WorkstationError as exc:
            self._on_failed(str(exc))
            return
        self.open_study(study["key"])

    def open_study(self, study_key: str) -> None:
        try:
            library = StudyLibrary(self.home)
            series = max(library.series(study_key), key=lambda s: s["slices"])
            folder = library.series_folder(series)
        except (WorkstationError, ValueError) as exc:
            self._on_failed(f"The study cannot be opened: {exc}")
            return
        self._start_load(lambda cancel: viewer_load_job([folder], self.home, study_key, cancel), "Opening study")

    def open_demo(self) -> None:
        self._start_load(lambda cancel: demo_job(self.home, cancel), "Opening the demo case")

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder with a CT series")
        if folder:
            self.open_target(folder)

    def import_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder into the library")
        if folder:
            self._start_load(lambda cancel: StudyLibrary(self.home).import_job([Path(folder)], cancel),
                             f"Importing {folder}", on_done=self._on_imported)

    # -- teaching packs -------------------------------------------------------------------------
    def import_pack(self, path: Path | None = None) -> None:
        """Verify a teaching pack and add its cases (with their answer keys) to the library."""
        if path is None:
            chosen, _ = QFileDialog.getOpenFileName(self, "Import a teaching pack", str(Path.home()),
                                                    "Teaching pack (*.zip)")
            if not chosen:
                return
            path = Path(chosen)
        store, home, who = self.store, self.home, self.user.username if self.user else "unknown"
        self._start_load(lambda cancel: import_pack_job(path, home, store, imported_by=who, cancel=cancel),
                         f"Importing the teaching pack {path.name}", on_done=self._on_pack_imported)

    def _on_pack_imported(self, cases) -> None:
        self.browser.reload()
        self._set_status(f"Imported {len(cases)} teaching case(s); open one and start the quiz (Ctrl+Shift+Q)")

    def export_pack(self, path: Path | None = None, notes: str | None = None) -> None:
        """The open study, de-identified, with its accepted findings as the answer key."""
        if self.user is None or not self.user.can("export") or self.current_study_key is None:
            self._on_failed("Log in as a radiologist or admin and open a library study to export it as a pack")
            return
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Export a teaching pack", str(Path.home() / "case.zip"),
                                                    "Teaching pack (*.zip)")
            if not chosen:
                return
            path = Path(chosen)
        if notes is None:
            notes, ok = QInputDialog.getMultiLineText(self, "Teaching pack", "Notes for the trainees")
            if not ok:
                return
        store, home, who, study = self.store, self.home, self.user.username, self.current_study_key
        self._start_load(lambda cancel: export_pack_job(home, store, [study], path, notes=notes, created_by=who,
                                                        cancel=cancel),
                         "Exporting a de-identified teaching pack",
                         on_done=lambda written: self._set_status(f"Wrote the teaching pack {written}"))

    def _start_load(self, make_job, description: str, on_done=None) -> None:
        """Run a core job on the worker; its result goes to `on_done`, else to _on_loaded's dispatch."""
        if not self.runner.start(make_job, description):
            self._set_status("Another job is still running; cancel it first (Esc)")
            return
        self._on_done = on_done
        self.views["3d"].hold_full_quality(True)
        self._set_status(description)
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()

    def cancel_job(self) -> None:
        self.pending_click = None
        self.runner.cancel()

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self._set_status(message)

    def _on_loaded(self, result) -> None:
        if self._on_done is not None:
            handler, self._on_done = self._on_done, None
            handler(result)
            return
        if not isinstance(result, dict):  # an Analysis from "Run AI"
            self._on_analysis(result)
            return
        volume = result["volume"]
        self.findings_panel.clear()
        self.current_study_key = result["study_key"]
        self.overlay_source = result["overlay_source"]
        self.state.set_volume(volume, result["heatmap"], result["markers"], result.get("summaries"))
        if result["markers"]:  # start on the largest finding rather than an empty mid-slice
            centre, _radius = max(result["markers"], key=lambda marker: marker[1])
            self.state.set_crosshair(centre)
        self.overlay_label.setText(f"Overlay: {self.overlay_source}" if self.overlay_source else "Overlay: none")
        if self.current_study_key:
            self.settings.setValue("last_study", self.current_study_key)
            thumbnail = thumbnail_path(self.home, self.current_study_key)
            if not thumbnail.is_file():
                save_thumbnail(volume, thumbnail)
            self.browser.reload()
        self._update_title()
        self.analysis = None
        self._open_session()
        log.info("loaded %s slices of %s", volume.shape[0], volume.metadata.series_uid)
        warnings = "; ".join(volume.warnings)
        self._set_status(f"Loaded {volume.shape[0]} slices" + (f" - warning: {warnings}" if warnings else ""))

    def run_ai(self) -> None:
        """Run the default model on the open study, off the GUI thread, with progress and cancel."""
        volume = self.state.volume
        if volume is None:
            self._set_status("Open a study first")
            return
        if self.quiz_case is not None and not self.quiz_submitting:
            self._on_failed("The AI stays hidden until you submit your answers (Ctrl+Return)")
            return
        try:
            bundle = find_model()
        except WorkstationError as exc:
            self._on_failed(str(exc))
            return
        self.bundle = bundle
        self.state.set_overlay(threshold=bundle.default_threshold)
        self._start_load(lambda cancel: run_inference_job(volume, bundle, "auto", None, cancel),
                         f"Running {bundle.name} {bundle.version}")

    def _on_analysis(self, analysis) -> None:
        if self.quiz_submitting:
            self._finish_quiz(analysis)
            return
        volume = self.state.volume
        self.analysis = analysis
        self.state.set_heatmap(analysis.heatmap, volume_summaries(volume, analysis.heatmap)["heat_maxima"])
        self.overlay_source = f"{analysis.model_name} {analysis.model_version} heatmap"
        self.overlay_label.setText(f"Overlay: {self.overlay_source}. {analysis.notice}")
        self.findings_panel.show_model(analysis.model_name, analysis.model_version, analysis.device,
                                       analysis.threshold, analysis.notice,
                                       [f"Outside validated scope: {r}" for r in analysis.scope_warnings]
                                       + analysis.notes)
        self._update_operating_point()
        if self.session is not None and not self.session.has_analysis(analysis.model_sha256):
            # (the same model again: its findings are already there to review)
            self._review(lambda s: s.record_analysis(analysis, volume.metadata.series_uid))
        self._refresh_findings(analysis.findings if self.session is None else None)
        if self.findings_panel.tree.topLevelItemCount():
            self.findings_panel.select_next(1)
        scope = f" - outside validated scope: {'; '.join(analysis.scope_warnings)}" if analysis.scope_warnings else ""
        self._set_status(f"{len(analysis.findings)} finding(s) in {analysis.runtime_s:.1f} s{scope}")
        log.info("analysis by %s %s: %d findings", analysis.model_name, analysis.model_version,
                 len(analysis.findings))

    # -- review -------------------------------------------------------------------------------
    def set_user(self, user: User | None) -> None:
        self.user = user
        self.session = None
        if user is not None and self.state.volume is not None:
            self._open_session()
        self._set_status(f"Logged in as {user.username} ({user.role})" if user else "Not logged in")

    def _open_session(self) -> None:
        if self.user is None or self.state.volume is None:
            return
        try:
            self.session = ReviewSession(self.store, self.user, self.state.volume.metadata.study_uid)
        except WorkstationError as exc:
            self.session = None
            self._on_failed(str(exc))
        self._refresh_findings()

    def _refresh_findings(self, plain_findings=None) -> None:
        states = self.session.findings() if self.session is not None else list(plain_findings or [])
        status = {"signed": "signed", "in_review": "in review"}.get(self.session.status, "") if self.session else ""
        self.findings_panel.show_findings(states, status, self.state.volume)
        self.state.set_markers([(np.array(s.center_mm), s.diameter_mm / 2) for s in states
                                if getattr(s, "decision", "undecided") != "rejected"])

    def _review(self, action) -> bool:
        """Run a review action; errors (permissions, a full disk) become one clear message."""
        if self.quiz_case is not None:
            self._on_failed("A quiz is in progress: mark nodules with M, submit with Ctrl+Return")
            return False
        if self.session is None:
            self._on_failed("Log in and open a study to review findings")
            return False
        try:
            action(self.session)
        except WorkstationError as exc:
            self._on_failed(str(exc))
            return False
        self._refresh_findings()
        return True

    def _selected(self) -> int | None:
        finding = self.findings_panel.current_id()
        if finding is None:
            self._set_status("Select a finding first (N/P)")
        return finding

    def accept_finding(self) -> None:
        finding = self._selected()
        if finding is not None and self._review(lambda s: s.accept(finding)):
            self._select_next_undecided()

    def reject_finding(self, reason: str | None = None, text: str = "") -> None:
        finding = self._selected()
        if finding is None:
            return
        if reason is None:
            reason, ok = QInputDialog.getItem(self, "Reject finding", "Reason", list(REJECT_REASONS), 0, False)
            if not ok:
                return
            if reason == "other":
                text, ok = QInputDialog.getText(self, "Reject finding", "Why, in a few words")
                if not ok:
                    return
        if self._review(lambda s: s.reject(finding, reason, text)):
            self._select_next_undecided()

    def edit_finding(self, finding_type: str | None = None, diameter_mm: float | None = None) -> None:
        finding = self._selected()
        if finding is None or self.session is None:
            return
        current = next(s for s in self.session.findings() if s.id == finding)
        if finding_type is None:
            finding_type, ok = QInputDialog.getItem(self, "Edit finding", "Type", list(FINDING_TYPES),
                                                    FINDING_TYPES.index(current.type), False)
            if not ok:
                return
            diameter_mm, ok = QInputDialog.getDouble(self, "Edit finding",
                                                     "Long axis: longest diameter across one slice (mm)",
                                                     current.diameter_mm, 1.0, 100.0, 1)
            if not ok:
                return
        changes = {name: value for name, value in (("type", finding_type), ("diameter_mm", diameter_mm))
                   if value is not None and value != getattr(current, name)}
        if changes:
            self._review(lambda s: s.edit(finding, **changes))

    def add_missed(self) -> None:
        """The next left click in a slice view places a missed finding (size it with E); in a quiz, a mark."""
        if self.quiz_case is not None:
            self.pending_click = ("mark", None)
            self._set_status("Click the suspected nodule in a slice view (Esc to cancel)")
            return
        self.pending_click = ("add", None)
        self._set_status("Click the missed finding in a slice view (Esc to cancel)")

    def move_finding(self) -> None:
        """The next left click in a slice view becomes the selected finding's new centre."""
        finding = self._selected()
        if finding is not None:
            self.pending_click = ("move", finding)
            self._set_status(f"Click the new centre of finding {finding} in a slice view (Esc to cancel)")

    def _on_point_clicked(self, point) -> None:
        if self.pending_click is None:
            return
        (mode, finding), self.pending_click = self.pending_click, None
        centre = tuple(round(float(v), 2) for v in point)
        if mode == "mark":
            self.quiz_marks.append(centre)
            self.state.set_markers([(np.array(m), 4.0) for m in self.quiz_marks])
            self._set_status(f"{len(self.quiz_marks)} mark(s); M for another, Ctrl+Return submits")
            return
        if mode == "move":
            if self._review(lambda s: s.edit(finding, center_mm=centre)):
                self._set_status(f"Moved finding {finding} to {centre} mm (the old centre is kept in the record)")
            return
        if self._review(lambda s: s.add(centre, 6.0, "solid")):
            self.findings_panel.tree.setCurrentItem(
                self.findings_panel.tree.topLevelItem(self.findings_panel.tree.topLevelItemCount() - 1))
            self._set_status("Added a finding (6 mm, solid); E edits its type and size")

    def undo_decision(self) -> None:
        self._review(lambda s: s.undo())

    def sign_study(self, impression: str | None = None, confirm_undecided: bool | None = None,
                   export_after: bool | None = None, lung_rads: str | None = None, lung_rads_reason: str = "") -> None:
        if self.session is None:
            self._on_failed("Log in and open a study to sign it")
            return
        decided, total = self.session.progress()
        if decided < total and confirm_undecided is None:
            answer = QMessageBox.question(self, "Sign", f"{total - decided} finding(s) are undecided. Sign anyway?")
            confirm_undecided = answer == QMessageBox.StandardButton.Yes
        if decided < total and not confirm_undecided:
            return
        if impression is None:
            impression, ok = QInputDialog.getMultiLineText(self, "Sign", "Impression")
            if not ok:
                return
            chosen = self._ask_lung_rads()
            if chosen is None:
                return
            lung_rads, lung_rads_reason = chosen
        if self._review(lambda s: s.sign(impression, allow_undecided=bool(confirm_undecided), lung_rads=lung_rads,
                                         lung_rads_reason=lung_rads_reason)):
            self._set_status("Signed; later changes are addenda")
            if export_after is None:  # offered without blocking: the reader may go on to the next study
                self._offer_export()
            elif export_after:
                self.export_report()

    def _ask_lung_rads(self) -> tuple[str | None, str] | None:
        """The suggested category, confirmed or overridden (with a reason); None if cancelled."""
        suggestion = suggest_for_read(self.session.findings())
        category, ok = QInputDialog.getItem(
            self, "Lung-RADS", f"Suggested: {suggestion.category} ({suggestion.rule}).\nCategory for the report:",
            list(LUNG_RADS_CATEGORIES), LUNG_RADS_CATEGORIES.index(suggestion.category), False)
        if not ok:
            return None
        if category == suggestion.category:
            return None, ""
        reason, ok = QInputDialog.getText(self, "Lung-RADS", f"Why {category} instead of {suggestion.category}?")
        return (category, reason) if ok else None

    def _offer_export(self) -> None:
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        self.export_offer = QMessageBox(QMessageBox.Icon.Question, "Signed",
                                        "The read is signed. Export the report now?", buttons, self)
        self.export_offer.buttonClicked.connect(
            lambda button: self.export_offer.buttonRole(button) == QMessageBox.ButtonRole.YesRole
            and self.export_report())
        self.export_offer.open()

    # -- quiz ---------------------------------------------------------------------------------
    def start_quiz(self) -> None:
        """Answer the open teaching case: AI and answer key hidden until submitted."""
        volume = self.state.volume
        case = teaching_case(self.store, volume.metadata.study_uid) if volume is not None else None
        if case is None:
            self._on_failed("Open a teaching case first (import a pack: workstation pack import PACK.zip)")
            return
        self.quiz_case, self.quiz_marks, self.quiz_submitting = case, [], False
        self.findings_panel.clear()
        self.findings_dock.hide()
        self.state.set_heatmap(None, ())
        self.state.set_markers([])
        self.overlay_label.setText("Quiz: AI and answers hidden until you submit")
        self._set_status(f"Quiz on {case.name}: M then click marks a suspected nodule; Ctrl+Return submits")

    def submit_quiz(self) -> None:
        if self.quiz_case is None or self.user is None:
            self._on_failed("Start a quiz on a teaching case first (Ctrl+Shift+Q)")
            return
        self.quiz_submitting = True
        self.run_ai()  # the AI's answer, for the side-by-side comparison

    def _finish_quiz(self, analysis) -> None:
        case, self.quiz_submitting = self.quiz_case, False
        try:
            result = submit_quiz(self.store, self.user, case, self.quiz_marks,
                                 [f.center_mm for f in analysis.findings])
        except WorkstationError as exc:
            self._on_failed(str(exc))
            return
        self.quiz_case = None
        self.findings_dock.show()
        self.state.set_heatmap(analysis.heatmap, volume_summaries(self.state.volume, analysis.heatmap)["heat_maxima"])
        self.state.set_markers([(np.array(a["center_mm"]), a["diameter_mm"] / 2) for a in case.answers]
                               + [(np.array(m), 4.0) for m in self.quiz_marks])
        self.overlay_label.setText(f"Overlay: {analysis.model_name} {analysis.model_version} heatmap; markers: "
                                   "answer key and your marks")
        self.quiz_result = QuizResultDialog(result, self)
        self.quiz_result.open()
        self._set_status(f"Quiz submitted: {result.summary()}")

    # -- report -------------------------------------------------------------------------------
    def export_report(self) -> None:
        """Build the report off the GUI thread, then preview it; Save there keeps and audits it."""
        volume = self.state.volume
        if self.session is None or volume is None:
            self._on_failed("Log in and open a study to export its report")
            return
        if not self.user.can("export"):
            self._on_failed(f"A {self.user.role} may not export reports")
            return
        preview = self.home / "previews" / "report-preview.pdf"
        if self.state.presentation:  # the preview may be shown to an audience: identifiers masked, no saving
            volume = masked_identifiers(volume)
        store, who = self.store, self.user.username
        institution = read_settings(self.home).get("institution", "")
        self.report_preview = None
        self._start_load(lambda cancel: study_report_job(store, volume, preview, generated_by=who,
                                                         institution=institution, record=False, cancel=cancel),
                         "Building the report", on_done=self._show_report_preview)

    def _show_report_preview(self, result: ExportedReport) -> None:
        folder = Path(self.settings.value("report_folder", str(Path.home())))
        self.report_preview = ReportPreviewDialog(result, self.store, self.user.username, folder, self,
                                                  can_save=not self.state.presentation)
        self.report_preview.accepted.connect(self._on_report_saved)
        self.report_preview.open()
        self._set_status(f"Report ready to save ({self.report_preview.page_count()} pages)")

    def _on_report_saved(self) -> None:
        path = self.report_preview.saved_path
        self.settings.setValue("report_folder", str(path.parent))
        self._set_status(f"Report saved to {path} and recorded in the audit trail")

    def set_institution(self, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self, "Institution", "Name printed on every report page",
                                            text=read_settings(self.home).get("institution", ""))
            if not ok:
                return
        write_setting(self.home, "institution", name.strip())
        self._set_status(f"Reports will say: {name.strip() or '(no institution)'}")

    def _select_next_undecided(self) -> None:
        tree = self.findings_panel.tree
        for row in range(tree.topLevelItemCount()):
            if tree.topLevelItem(row).text(DECISION_COLUMN) == "undecided":
                tree.setCurrentItem(tree.topLevelItem(row))
                return

    # -- screen lock and reading time ----------------------------------------------------------
    def start_idle_watch(self) -> None:
        minutes = float(self.settings.value("lock_minutes", 10))
        self.idle = IdleWatcher(minutes * 60, self.lock_screen, self._add_reading_time, lambda: self.locked, self)
        QApplication.instance().installEventFilter(self.idle)

    def _add_reading_time(self, seconds: float) -> None:
        if self.session is not None:
            try:
                self.session.add_active_time(seconds)
            except WorkstationError as exc:
                log.warning("reading time not saved: %s", exc)

    def lock_screen(self) -> None:
        """Hide every patient identifier and image until the same user or an admin logs in."""
        if self.locked:
            return
        self.locked = True
        self._docks_before_lock = [d for d in self.findChildren(QDockWidget) if d.isVisible()]
        for dock in self._docks_before_lock:
            dock.hide()
        self.central_stack.setCurrentWidget(self.lock_page)
        self.setWindowTitle("Workstation (locked)")
        if self.user is not None:
            record_lock(self.store, self.user)
        QTimer.singleShot(0, self._ask_unlock)

    def _ask_unlock(self) -> None:
        if not self.locked or self.user is None:
            return
        dialog = LoginDialog(self.store, self, "Unlock", only_user=self.user.username)
        if dialog.exec() and dialog.user is not None:
            try:
                self.unlock(dialog.user)
            except WorkstationError as exc:  # someone else logged in: say so and ask again
                self._set_status(str(exc))
        if self.locked:
            QTimer.singleShot(0, self._ask_unlock)

    def unlock(self, user: User) -> None:
        unlock(self.store, self.user or user, user)
        self.locked = False
        self.central_stack.setCurrentIndex(0)
        for dock in self._docks_before_lock:
            dock.show()
        self._update_title()
        self.idle.last_input = time.monotonic()

    def _update_operating_point(self) -> None:
        """The threshold slider says what the model's card promises at that threshold."""
        bundle = self.bundle
        if bundle is None or not bundle.operating_points:
            self.operating_label.setText("")
            return
        threshold = self.state.overlay_threshold
        point = min(bundle.operating_points, key=lambda p: abs(p.threshold - threshold))
        self.operating_label.setText(f"Model card at threshold {point.threshold:g}: sensitivity "
                                     f"{point.sensitivity:.2f}, {point.false_positives_per_scan:.2f} false "
                                     f"positives per scan (nodules >= 6 mm)")

    def centre_on(self, point_mm) -> None:
        """Crosshair and every slice view's centre on a point (selecting a finding)."""
        self.state.set_crosshair(point_mm)
        for view in self.views.values():
            if isinstance(view, SliceView):
                view.centre_on(self.state.crosshair)

    def next_finding(self) -> None:
        self.findings_panel.select_next(1)

    def previous_finding(self) -> None:
        self.findings_panel.select_next(-1)

    def _on_imported(self, report) -> None:
        self.browser.reload()
        self._set_status(f"Imported {len(report.studies)} study(ies): {report.files_copied} file(s) copied, "
                         f"{report.files_already_present} already in the library")

    def _on_failed(self, message: str) -> None:
        """One clear sentence, in a box that does not block the event loop (details: log file)."""
        self._set_status(message)
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Workstation", message,
                                     QMessageBox.StandardButton.Ok, self)
        self.error_box.setModal(False)
        self.error_box.show()

    def _on_job_finished(self) -> None:
        self._on_done = None  # (a failed or cancelled job leaves no handler behind)
        self.views["3d"].hold_full_quality(False)
        self.progress.hide()
        self.cancel_button.hide()

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _update_title(self) -> None:
        volume = self.state.volume
        if volume is None or not self.state.identifiers_visible:
            self.setWindowTitle("Workstation - presentation mode" if self.state.presentation else "Workstation")
            return
        meta = volume.metadata
        self.setWindowTitle(f"Workstation - {meta.patient_name or meta.patient_id} - {meta.study_date}")

    # -- actions ------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        self.state.set_window(*PRESETS[name])

    def apply_3d_preset(self, name: str) -> None:
        self.views["3d"].set_preset(name)

    def toggle_overlay(self) -> None:
        self.state.set_overlay(visible=not self.state.overlay_visible)

    def toggle_patient_text(self) -> None:
        self.state.toggle_patient_text()

    def toggle_presentation(self) -> None:
        """One key for lectures: names, IDs, dates hidden in the views, title, browser and report preview."""
        self.state.set_presentation(not self.state.presentation)
        self.browser.hide_identifiers = self.state.presentation
        self.browser.reload()
        self._set_status("Presentation mode: patient identifiers hidden" if self.state.presentation
                         else "Presentation mode off")

    def set_tool(self, tool: str) -> None:
        view = self.views.get(self.active_view)
        if isinstance(view, SliceView):
            view.set_tool(tool)

    def show_tour(self) -> None:
        """The first-run welcome: AI device and time estimate, then the review keys."""
        from ui.dialogs.welcome import WelcomeTour

        self.tour = WelcomeTour(self)
        self.tour.open()

    def show_shortcuts(self) -> None:
        shortcuts_dialog(self).exec()

    # -- settings -----------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            self.resize(1500, 950)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        else:  # first run: room for the findings columns, the images get the rest
            docks = {dock.objectName(): dock for dock in self.findChildren(QDockWidget)}
            self.resizeDocks([docks["Studies"], docks["Histogram and overlay"]], [330, 280],
                             Qt.Orientation.Horizontal)
        self.active_view = str(self.settings.value("active_view", "axial"))
        if str(self.settings.value("single_layout", "false")) == "true":
            self.toggle_layout()

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._warmed_up:
            self._warmed_up = True
            QTimer.singleShot(0, self._warm_up_views)

    def _warm_up_views(self) -> None:
        for view in self.views.values():
            if view.isVisible():
                view.warm_up()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.idle.flush()
        if self.user is not None:
            try:
                logout(self.store, self.user)
            except WorkstationError as exc:
                log.warning("logout not recorded: %s", exc)
        self.idle.timer.stop()
        self.runner.cancel()
        self.runner.wait(5.0)
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("active_view", self.active_view)
        self.settings.setValue("single_layout", "true" if self.single_layout else "false")
        self.settings.sync()
        for view in self.views.values():
            view.shutdown()
        super().closeEvent(event)


def _slider(value: int, on_change) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(value)
    slider.valueChanged.connect(on_change)
    return slider
