"""Model monitoring in the viewer (#25 item 3): the monitor computed off the GUI thread on its own
job runner (it may take a while on a large store, and it must not wait for a study to load or the
AI to finish), drawn by the MonitoringView; exports staged and audited by the core."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QFileDialog, QWidget

from ui.controllers.jobs import JobDispatch
from ui.controllers.review import ReviewController
from ui.widgets.monitoring_view import MonitoringView
from ui.workers import JobRunner
from workstation.jobs import CancelToken, Job, Progress
from workstation.review.monitoring import MonitoringReport, export_monitoring, monitoring_job
from workstation.review.store import ReviewStore
from workstation.review.users import User


def export_monitoring_job(home: Path, user: User, report: MonitoringReport, path: Path, fmt: str,
                          cancel: CancelToken) -> Job[Path]:
    yield Progress(0, 1, f"Exporting the monitor as {fmt.upper()}")
    store = ReviewStore.in_home(home)  # its own connection: this runs on the worker thread
    try:
        export_monitoring(store, user, report, path, fmt)
    finally:
        store.close()
    return Path(path)


class MonitoringController(QObject):
    """Owns the monitoring window and its runner. Who may look: as `workstation monitor`, anyone
    logged in who may view; who may export: radiologists and admins."""

    def __init__(self, home: Path, settings: QSettings, review: ReviewController, status: Callable[[str], None],
                 fail: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home, self.settings, self.review = Path(home), settings, review
        self._status, self._fail = status, fail
        self.runner = JobRunner()
        self.jobs = JobDispatch(self.runner, status, self)
        self.runner.failed.connect(self._on_failed)
        self.view: MonitoringView | None = None

    def show_monitoring(self) -> None:
        user = self.review.user
        if user is None or not user.can("view"):
            self._fail("Log in to see how the AI fares with the readers")
            return
        if self.view is None:
            self.view = MonitoringView(self.parent())
            self.view.refresh_requested.connect(self.refresh)
            self.view.export_requested.connect(self.export)
        self.view.set_export_allowed(user.can("export"), f"A {user.role} may not export; a radiologist or an "
                                                         "admin may")
        self.view.show()
        self.view.raise_()
        self.view.activateWindow()
        self.view.request_refresh()

    def refresh(self, by: str | None) -> None:
        user = self.review.user
        if user is None or self.view is None:
            return
        home, who = self.home, user.username
        if not self.jobs.start(lambda cancel: monitoring_job(home, who, by, cancel), "Computing the model monitor",
                               self._on_report):
            self.view.show_failure("The monitor is still being computed or exported; try again in a moment")

    def _on_report(self, report: MonitoringReport) -> None:
        if self.view is None or self.review.user is None:
            return
        self.view.show_report(report, self.review.user.username)
        self.view.set_export_allowed(self.review.user.can("export"),
                                     f"A {self.review.user.role} may not export; a radiologist or an admin may")
        self._status(f"Model monitor: {len(report.uses)} analysed studies, {len(report.alerts)} drift alert(s)")

    def export(self, fmt: str, path: Path | None = None) -> None:
        user, view = self.review.user, self.view
        if view is None or view.report is None or user is None:
            return
        if not user.can("export"):
            self._fail(f"A {user.role} may not export the monitor; a radiologist or an admin may")
            return
        if path is None:
            folder = Path(str(self.settings.value("monitoring_folder", str(Path.home()))))
            chosen, _ = QFileDialog.getSaveFileName(view, f"Export the monitor as {fmt.upper()}",
                                                    str(folder / f"monitoring.{fmt}"), f"{fmt.upper()} (*.{fmt})")
            if not chosen:
                return
            path = Path(chosen)
        home, report = self.home, view.report
        self.jobs.start(lambda cancel: export_monitoring_job(home, user, report, path, fmt, cancel),
                        f"Exporting the monitor to {path.name}", self._on_exported)

    def _on_exported(self, path: Path) -> None:
        self.settings.setValue("monitoring_folder", str(path.parent))
        self._status(f"Monitor exported to {path} and recorded in the audit trail")
        if self.view is not None:
            self.view.scope_label.setText(self.view.scope_label.text().split(" Exported to ")[0]
                                          + f" Exported to {path}.")

    def _on_failed(self, message: str) -> None:
        if self.view is not None:
            self.view.show_failure(message)
        self._fail(message)

    def on_lock(self, locked: bool) -> None:
        """The screen lock hides the monitor with the rest (it comes back at the unlock)."""
        if self.view is not None and locked:
            self.view.hide()

    def shutdown(self) -> None:
        self.runner.cancel()
        self.runner.wait(5.0)
