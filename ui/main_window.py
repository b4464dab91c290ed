"""The main window: lays out the 2x2 MPR + 3D views, the docks and the status bar, and wires
them, the viewer state and the action registry to one controller per concern (ui/controllers/)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QCheckBox, QDockWidget, QFormLayout, QGridLayout, QLabel, QMainWindow, QMessageBox, QProgressBar, QPushButton,
    QSlider, QStackedWidget, QVBoxLayout, QWidget,
)

from ui.actions import build_actions, shortcuts_dialog
from ui.controllers.ai_run import AiRunController
from ui.controllers.jobs import JobDispatch
from ui.controllers.monitoring import MonitoringController
from ui.controllers.node_editor import NodeEditorController
from ui.controllers.prior_compare import PriorCompareController
from ui.controllers.quiz import Quiz
from ui.controllers.receiving import ReceivingController
from ui.controllers.reports import ReportsController
from ui.controllers.review import ReviewController
from ui.controllers.screen_lock import ScreenLockController
from ui.controllers.study_opening import StudyOpeningController
from ui.controllers.teaching import TeachingController
from ui.controllers.viewing import ViewingController
from ui.render.slice_view import SliceView
from ui.render.volume_view import VolumeView
from ui.state import TOOLS, ViewerState
from ui.widgets.findings_panel import FindingsPanel
from ui.widgets.histogram import HistogramPanel
from ui.widgets.study_browser import StudyBrowser
from ui.workers import JobRunner
from workstation.review.store import ReviewStore

GRID_POSITIONS = {"axial": (0, 0), "coronal": (0, 1), "sagittal": (1, 0), "3d": (1, 1)}


class MainWindow(QMainWindow):
    def __init__(self, home: Path) -> None:
        super().__init__()
        self.home = Path(home)
        self.settings = QSettings(str(self.home / "settings.ini"), QSettings.Format.IniFormat)
        self.setWindowTitle("Workstation")
        self.state = ViewerState()
        self.runner = JobRunner()
        self.store = ReviewStore.in_home(self.home)
        self.error_box: QMessageBox | None = None
        self._warmed_up = False
        self._size_docks_when_shown = False
        self._docks_before_lock: list[QDockWidget] = []
        self._lay_out()
        self._add_controllers()
        self._wire()
        self.actions_by_key = build_actions(self)
        self._restore_settings()
        self.browser.reload()

    # -- layout -------------------------------------------------------------------------------
    def _lay_out(self) -> None:
        self.views: dict[str, QWidget] = {name: SliceView(self.state, name)
                                          for name in ("axial", "coronal", "sagittal")}
        self.views["3d"] = VolumeView(self.state)
        grid_widget = QWidget()
        self.grid = QGridLayout(grid_widget)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        for name, (row, column) in GRID_POSITIONS.items():
            self.grid.addWidget(self.views[name], row, column)
        self.lock_page = QLabel("Locked: patient data is hidden. Log in to continue.")
        # at the top: the unlock dialog opens over the middle of the window
        self.lock_page.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
        self.lock_page.setContentsMargins(0, 40, 0, 0)
        self.lock_page.setStyleSheet("font-size: 16pt;")
        self.central_stack = QStackedWidget()
        self.central_stack.addWidget(grid_widget)
        self.central_stack.addWidget(self.lock_page)
        self.setCentralWidget(self.central_stack)

        self.browser = StudyBrowser(self.home)
        self._dock("Studies", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea).setMaximumWidth(640)
        self.findings_panel = FindingsPanel()
        self.findings_dock = self._dock("AI findings", self.findings_panel, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.findings_dock.setMaximumWidth(640)
        self.histogram = HistogramPanel(self.state)
        self._dock("Histogram and overlay", self._side_panel(), Qt.DockWidgetArea.RightDockWidgetArea
                   ).setMaximumWidth(340)

        self.status_label = QLabel("Ready")
        self.mode_label = QLabel()  # the tool in force: what the next left click does
        self.mode_label.setObjectName("mode-indicator")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.mode_label)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

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
        self.outline_check = QCheckBox("Outline only (Shift+H)")
        self.outline_check.setToolTip("The heatmap as a contour at the threshold, so the lesion stays visible")
        self.opacity_slider = _slider(int(self.state.overlay_opacity * 100))
        self.threshold_slider = _slider(int(self.state.overlay_threshold * 100))
        self.operating_label, self.overlay_label, self.measure_label = QLabel(""), QLabel("Overlay: none"), QLabel("")
        form.addRow(self.overlay_check)
        form.addRow(self.outline_check)
        form.addRow("Opacity", self.opacity_slider)
        form.addRow("Threshold", self.threshold_slider)
        for label in (self.operating_label, self.overlay_label, self.measure_label):
            label.setWordWrap(True)
            form.addRow(label)
        layout.addLayout(form)
        return panel

    # -- controllers and wiring ---------------------------------------------------------------
    def _add_controllers(self) -> None:
        status, fail = self.set_status, self.show_error
        self.jobs = JobDispatch(self.runner, status, self)
        self.viewing = ViewingController(self.state, self.views, self.browser, status, self)
        self.quiz = Quiz()
        self.review = ReviewController(self.state, self.store, self.findings_panel, self.quiz, status, fail, self)
        self.opening = StudyOpeningController(self.home, self.settings, self.state, self.jobs, self.browser,
                                              self.findings_panel, self.overlay_label, status, fail, self)
        self.ai = AiRunController(self.state, self.jobs, self.review, self.quiz, self.findings_panel,
                                  self.overlay_label, self.operating_label, status, fail, self)
        self.teaching = TeachingController(self.home, self.store, self.state, self.quiz, self.jobs, self.opening,
                                           self.review, self.ai, self.browser, self.findings_panel,
                                           self.findings_dock, self.overlay_label, status, fail, self)
        self.prior = PriorCompareController(self.home, self.state, self.jobs, self.review, self.viewing,
                                            self.findings_panel, self.views, self.grid, status, fail, self)
        self.reports = ReportsController(self.home, self.settings, self.store, self.state, self.review, self.jobs,
                                         status, fail, self.prior, self)
        lock_after_s = float(self.settings.value("lock_minutes", 10)) * 60
        self.screen_lock = ScreenLockController(self.store, self.review, lock_after_s, status, self)
        self.monitoring = MonitoringController(self.home, self.settings, self.review, status, fail, self)
        self.receiving = ReceivingController(self.home, self.settings, self.review, self.browser, status, fail,
                                             self)
        self.statusBar().addPermanentWidget(self.receiving.indicator)
        self.nodes = NodeEditorController(self.home, self.review, status, self)

    def _wire(self) -> None:
        for view in self.views.values():
            view.activated.connect(self.viewing.set_active_view)
            if isinstance(view, SliceView):
                view.point_clicked.connect(self.review.on_point_clicked)
                view.measurement_changed.connect(self.measure_label.setText)
        self.browser.study_chosen.connect(self.opening.open_study)
        self.findings_panel.finding_selected.connect(self.viewing.centre_on)
        self.overlay_check.toggled.connect(lambda on: self.state.set_overlay(visible=on))
        self.outline_check.toggled.connect(self.state.set_overlay_outline)
        self.state.tool_changed.connect(self._show_mode)
        self._show_mode()
        self.opacity_slider.valueChanged.connect(lambda v: self.state.set_overlay(opacity=v / 100))
        self.threshold_slider.valueChanged.connect(lambda v: self.state.set_overlay(threshold=v / 100))
        self.state.overlay_changed.connect(self._sync_overlay_controls)
        self.state.annotations_changed.connect(self._update_title)
        self.cancel_button.clicked.connect(self.cancel_job)
        self.jobs.started.connect(self._on_job_started)
        self.runner.progress.connect(self._on_progress)
        self.runner.failed.connect(self.show_error)
        self.runner.cancelled.connect(lambda: self.set_status("Cancelled"))
        self.runner.finished.connect(self._on_job_finished)
        self.opening.loaded.connect(self._update_title)
        self.opening.loaded.connect(self.review.open_session)
        self.opening.loaded.connect(self.teaching.on_study_loaded)  # before the recorded run is shown
        self.review.user_changed.connect(self.teaching.quiz_for_trainee)
        self.opening.recorded_run_shown.connect(self.ai.show_recorded)
        self.review.signed.connect(self.reports.after_signing)
        self.screen_lock.lock_changed.connect(self._show_locked)
        self.screen_lock.lock_changed.connect(self.monitoring.on_lock)
        self.screen_lock.lock_changed.connect(self.receiving.on_lock)
        self.receiving.nodes_requested.connect(self.nodes.show_nodes)
        self.nodes.nodes_changed.connect(self.receiving.refresh_settings)

    def _sync_overlay_controls(self) -> None:
        for widget, value in ((self.overlay_check, self.state.overlay_visible),
                              (self.outline_check, self.state.overlay_outline),
                              (self.opacity_slider, int(self.state.overlay_opacity * 100)),
                              (self.threshold_slider, int(self.state.overlay_threshold * 100))):
            widget.blockSignals(True)
            widget.setChecked(value) if isinstance(widget, QCheckBox) else widget.setValue(value)
            widget.blockSignals(False)

    def _show_locked(self, locked: bool) -> None:
        if locked:
            self._docks_before_lock = [d for d in self.findChildren(QDockWidget) if d.isVisible()]
            for dock in self._docks_before_lock:
                dock.hide()
            self.central_stack.setCurrentWidget(self.lock_page)
            self.setWindowTitle("Workstation (locked)")
            return
        self.central_stack.setCurrentIndex(0)
        for dock in self._docks_before_lock:
            dock.show()
        self._update_title()

    def _show_mode(self) -> None:
        tool = self.state.tool
        self.mode_label.setText(f"Mode: {TOOLS[tool]}")
        self.mode_label.setStyleSheet("" if tool == "crosshair" else
                                      "background: #2d6a8a; color: white; padding: 1px 6px; border-radius: 3px;")
        for key in ("ruler", "roi"):
            if key in getattr(self, "actions_by_key", {}):
                self.actions_by_key[key].setChecked(tool == key)

    def _update_title(self) -> None:
        volume = self.state.volume
        if volume is None or not self.state.identifiers_visible:
            self.setWindowTitle("Workstation - presentation mode" if self.state.presentation else "Workstation")
            return
        meta = volume.metadata
        date = meta.study_date
        if len(date) == 8 and date.isdigit():
            date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
        parts = [part.strip() for part in (meta.patient_name.replace("^", " "), meta.patient_id, date)]
        self.setWindowTitle(" - ".join(["Workstation"] + [part for part in parts if part][:2]))

    # -- jobs and messages --------------------------------------------------------------------
    def _on_job_started(self) -> None:
        self.views["3d"].hold_full_quality(True)
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)
        self.set_status(message)

    def _on_job_finished(self) -> None:
        self.views["3d"].hold_full_quality(False)
        self.progress.hide()
        self.cancel_button.hide()

    def cancel_job(self) -> None:
        """Esc: back to the crosshair (no awaited click, no measurement), and the running job stops."""
        self.viewing.back_to_crosshair()
        self.runner.cancel()

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def show_error(self, message: str) -> None:
        """One clear sentence, in a box that does not block the event loop (details: log file)."""
        self.set_status(message)
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "Workstation", message,
                                     QMessageBox.StandardButton.Ok, self)
        self.error_box.setModal(False)
        self.error_box.show()

    # -- help ---------------------------------------------------------------------------------
    def show_tour(self) -> None:
        """The first-run welcome: AI device and time estimate, then the review keys."""
        from ui.dialogs.welcome import WelcomeTour

        self.tour = WelcomeTour(self)
        self.tour.open()

    def show_shortcuts(self) -> None:
        shortcuts_dialog(self).exec()

    # -- settings and life cycle --------------------------------------------------------------
    def _restore_settings(self) -> None:
        geometry = self.settings.value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:  # first run: most of the screen (a 1366x768 laptop or a 1920x1080 reading monitor)
            screen = QGuiApplication.primaryScreen()
            room = screen.availableGeometry() if screen is not None else None
            if room is not None and room.width() > 0:
                self.resize(min(1800, int(room.width() * 0.96)), min(1100, int(room.height() * 0.94)))
            else:
                self.resize(1500, 950)
        state = self.settings.value("window_state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        else:  # first run: room for the findings columns, the images get the rest (sized once shown)
            self._size_docks_when_shown = True
        self.viewing.active_view = str(self.settings.value("active_view", "axial"))
        if str(self.settings.value("single_layout", "false")) == "true":
            self.viewing.toggle_layout()

    def _size_docks(self) -> None:
        docks = {dock.objectName(): dock for dock in self.findChildren(QDockWidget)}
        width = self.width()  # a 1366-pixel laptop screen keeps ~55% for the images
        self.resizeDocks([docks["Studies"], docks["Histogram and overlay"]],
                         [max(300, int(width * 0.25)), max(220, int(width * 0.16))], Qt.Orientation.Horizontal)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if self._size_docks_when_shown:
            self._size_docks_when_shown = False
            QTimer.singleShot(0, self._size_docks)  # before it is shown, the window has no width yet
        if not self._warmed_up:
            self._warmed_up = True
            QTimer.singleShot(0, self._warm_up_views)

    def _warm_up_views(self) -> None:
        for view in self.views.values():
            if view.isVisible():
                view.warm_up()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.screen_lock.stop()
        self.review.log_out()
        self.runner.cancel()
        self.runner.wait(5.0)
        self.receiving.shutdown()  # stops listening; a batch still arriving is discarded whole
        self.monitoring.shutdown()
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("window_state", self.saveState())
        self.settings.setValue("active_view", self.viewing.active_view)
        self.settings.setValue("single_layout", "true" if self.viewing.single_layout else "false")
        self.settings.sync()
        for view in self.views.values():
            view.shutdown()
        super().closeEvent(event)


def _slider(value: int) -> QSlider:
    slider = QSlider(Qt.Orientation.Horizontal)
    slider.setRange(0, 100)
    slider.setValue(value)
    return slider
