"""Preview of a report's pages before it is kept: Save PDF... copies it where the user says and
records the export in the audit trail; Close discards the preview."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QPointF
from PySide6.QtPdf import QPdfDocument
from PySide6.QtPdfWidgets import QPdfView
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFileDialog, QLabel, QVBoxLayout, QWidget

from workstation.errors import WorkstationError
from workstation.reporting.study import ExportedReport, publish_report, staging_path
from workstation.review.store import ReviewStore


class ReportPreviewDialog(QDialog):
    def __init__(self, preview: ExportedReport, store: ReviewStore, username: str, default_folder: Path,
                 parent: QWidget | None = None, can_save: bool = True) -> None:
        super().__init__(parent)
        self.preview, self.store, self.username = preview, store, username
        self.default_folder = Path(default_folder)
        self.saved_path: Path | None = None
        self.error = ""
        content = preview.content
        self.setWindowTitle("Report preview (draft)" if content.draft else "Report preview")
        self.document = QPdfDocument(self)
        self.document.load(str(preview.path))
        self.view = QPdfView(self)
        self.view.setPageMode(QPdfView.PageMode.MultiPage)
        self.view.setZoomMode(QPdfView.ZoomMode.FitToWidth)
        self.view.setDocument(self.document)
        kind = "DRAFT, not reviewed" if content.draft else f"signed by {content.signer}"
        self.summary = QLabel(f"{self.document.pageCount()} page(s), {kind}: {len(content.findings)} finding(s), "
                              f"Lung-RADS {content.lung_rads}. Saving records the export in the audit trail.")
        self.summary.setWordWrap(True)
        buttons = QDialogButtonBox()
        self.save_button = buttons.addButton("Save PDF...", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.save_button.clicked.connect(lambda: self.save())
        self.save_button.setEnabled(can_save)
        if not can_save:
            self.summary.setText(self.summary.text() + " Presentation mode: identifiers masked; leave it (F12) "
                                 "to save the report.")
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.view, 1)
        layout.addWidget(buttons)
        self.resize(760, 900)
        self.view.pageNavigator().jump(0, QPointF())

    def page_count(self) -> int:
        return self.document.pageCount()

    def suggested_name(self) -> str:
        m = self.preview.content.metadata
        parts = ["report", m.patient_id or "study", m.study_date or "", "draft" if self.preview.content.draft else ""]
        return "-".join(p for p in parts if p).replace("/", "_") + ".pdf"

    def save(self, path: Path | None = None) -> Path | None:
        """Copy the previewed PDF to `path` (asked when None) and audit the export."""
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, "Save report", str(self.default_folder /
                                                                             self.suggested_name()), "PDF (*.pdf)")
            if not chosen:
                return None
            path = Path(chosen)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = staging_path(path)
            try:
                shutil.copyfile(self.preview.path, staging)
            except OSError:
                staging.unlink(missing_ok=True)
                raise
            publish_report(self.store, self.username, self.preview.content, staging, path)
        except OSError as exc:
            self.error = f"Cannot save the report to {path}: {exc.strerror or exc}; choose another folder"
        except WorkstationError as exc:
            self.error = str(exc)
        else:
            self.saved_path, self.error = path, ""
            self.accept()
            return path
        self.summary.setText(self.error)
        return None
