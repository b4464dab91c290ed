"""The PDF report: built off the GUI thread, previewed, saved (and audited) from the preview;
the institution printed on it; offered once a read is signed. When a comparison with a prior is
recorded for the read, the prior's images go with it (key images of both time points): the prior
the viewer shows when it is that one, else loaded from the library in the same job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWidget

from ui.controllers.jobs import JobDispatch
from ui.controllers.review import ReviewController
from ui.dialogs.report_preview import ReportPreviewDialog
from ui.state import ViewerState
from workstation.config import read_settings
from workstation.errors import WorkstationError
from workstation.imaging.volume import masked_identifiers
from workstation.reporting.study import ExportedReport, report_prior_series, report_prior_volume_job, study_report_job
from workstation.review.settings_change import change_setting
from workstation.review.store import ReviewStore


class ReportsController(QObject):
    """Owns the open preview and the 'export now?' offer (the folder last saved to: settings)."""

    def __init__(self, home: Path, settings: QSettings, store: ReviewStore, state: ViewerState,
                 review: ReviewController, jobs: JobDispatch, status: Callable[[str], None],
                 fail: Callable[[str], None], prior=None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home, self.settings, self.store, self.state = Path(home), settings, store, state
        self.prior = prior  # the PriorCompareController (the prior shown), or None
        self.review, self.jobs = review, jobs
        self._status, self._fail = status, fail
        self.report_preview: ReportPreviewDialog | None = None
        self.export_offer: QMessageBox | None = None

    def export_report(self) -> None:
        """Build the report off the GUI thread, then preview it; Save there keeps and audits it."""
        volume, user = self.state.volume, self.review.user
        if self.review.session is None or volume is None:
            self._fail("Log in and open a study to export its report")
            return
        if not user.can("export"):
            self._fail(f"A {user.role} may not export reports")
            return
        preview = self.home / "previews" / "report-preview.pdf"
        if self.state.presentation:  # the preview may be shown to an audience: identifiers masked, no saving
            volume = masked_identifiers(volume)
        store, who = self.store, user.username
        institution = read_settings(self.home).get("institution", "")
        self.report_preview = None
        shown = self._shown_prior_volume()
        home = self.home

        def job(cancel):
            from workstation.library import StudyLibrary

            prior_volume = shown
            if prior_volume is None:  # a recorded comparison whose prior is not on screen: from the library
                prior_volume = yield from report_prior_volume_job(store, StudyLibrary(home),
                                                                  volume.metadata.study_uid, cancel)
            return (yield from study_report_job(store, volume, preview, generated_by=who, institution=institution,
                                                record=False, cancel=cancel, prior_volume=prior_volume))

        self.jobs.start(job, "Building the report", self._show_preview)

    def _shown_prior_volume(self):
        """The prior's volume the viewer holds, when it is the series of the comparison the report prints."""
        shown = getattr(self.prior, "comparison", None)
        if shown is None:
            return None
        from workstation.library import StudyLibrary

        row = report_prior_series(self.store, StudyLibrary(self.home), self.state.volume.metadata.study_uid)
        if row is None or row["series_uid"] != shown.prior_volume.metadata.series_uid:
            return None
        return shown.prior_volume

    def _show_preview(self, result: ExportedReport) -> None:
        folder = Path(self.settings.value("report_folder", str(Path.home())))
        self.report_preview = ReportPreviewDialog(result, self.store, self.review.user.username, folder,
                                                  self.parent(), can_save=not self.state.presentation)
        self.report_preview.accepted.connect(self._on_saved)
        self.report_preview.open()
        self._status(f"Report ready to save ({self.report_preview.page_count()} pages)")

    def _on_saved(self) -> None:
        path = self.report_preview.saved_path
        self.settings.setValue("report_folder", str(path.parent))
        self._status(f"Report saved to {path} and recorded in the audit trail")

    def set_institution(self, name: str | None = None) -> None:
        if name is None:
            name, ok = QInputDialog.getText(self.parent(), "Institution", "Name printed on every report page",
                                            text=read_settings(self.home).get("institution", ""))
            if not ok:
                return
        user = self.review.user
        if user is None:
            self._fail("Log in as an admin to change the institution")
            return
        try:
            change_setting(self.store, self.home, user, "institution", name.strip())
        except WorkstationError as exc:
            self._fail(str(exc))
            return
        self._status(f"Reports will say: {name.strip() or '(no institution)'}")

    def after_signing(self, export_after: bool | None) -> None:
        """Export now, or (None) offer it without blocking: the reader may go on to the next study."""
        if export_after is None:
            self._offer_export()
        elif export_after:
            self.export_report()

    def _offer_export(self) -> None:
        buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
        self.export_offer = QMessageBox(QMessageBox.Icon.Question, "Signed",
                                        "The read is signed. Export the report now?", buttons, self.parent())
        self.export_offer.buttonClicked.connect(
            lambda button: self.export_offer.buttonRole(button) == QMessageBox.ButtonRole.YesRole
            and self.export_report())
        self.export_offer.open()
