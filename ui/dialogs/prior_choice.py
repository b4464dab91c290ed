"""Compare with prior...: the patient's earlier studies (newest first, the most recent comparable
one preselected), the warnings about them, and 'None' to compare with nothing."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout

from workstation.review.priors import PriorOffer, study_days

NONE_TEXT = "None: no comparison"


def display_date(text: str) -> str:
    """A DICOM date (YYYYMMDD) as 2026-03-01."""
    return f"{text[:4]}-{text[4:6]}-{text[6:]}" if len(text or "") == 8 and text.isdigit() else (text or "no date")


class PriorChoiceDialog(QDialog):
    """`chosen` after accepting: the library row of the prior, or None for no comparison."""

    def __init__(self, offer: PriorOffer, current_date: str = "", hide_identifiers: bool = False,
                 parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compare with prior")
        self.offer, self.chosen = offer, None
        self.list = QListWidget()
        for number, prior in enumerate(offer.priors, 1):
            when = f"prior {number}" if hide_identifiers else display_date(prior["study_date"])
            days = study_days(prior["study_date"], current_date)
            before = f"   {days} days before" if days is not None else ""
            text = f"{when}{before}   {prior['study_description'] or 'no description'}   {prior['slices']} slices"
            if not prior["comparable"]:
                text += "   (too few slices to compare)"
            elif prior is offer.offered:
                text += "   (most recent comparable)"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, prior)
            if not prior["comparable"]:
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsSelectable & ~Qt.ItemFlag.ItemIsEnabled)
            self.list.addItem(item)
        none = QListWidgetItem(NONE_TEXT)
        none.setData(Qt.ItemDataRole.UserRole, None)
        self.list.addItem(none)
        offered = offer.priors.index(offer.offered) if offer.offered is not None else len(offer.priors)
        self.list.setCurrentRow(offered)
        self.list.itemDoubleClicked.connect(lambda _item: self.accept())
        heading = QLabel("The same patient's earlier studies in the library (same Patient ID and issuer), newest "
                         "first. The chosen prior is aligned to this scan and shown beside it.")
        heading.setWordWrap(True)
        warnings = QLabel("\n".join(f"Warning: {w}" for w in offer.warnings))
        warnings.setObjectName("prior-warnings")
        warnings.setWordWrap(True)
        warnings.setStyleSheet("color: #d04020; font-weight: bold;")
        warnings.setVisible(bool(offer.warnings))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Compare")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(self.list, 1)
        layout.addWidget(warnings)
        layout.addWidget(buttons)
        rows = self.list.sizeHintForRow(0) * (self.list.count() + 1) + 2 * self.list.frameWidth()
        self.list.setMinimumHeight(min(rows, 360))
        width = self.list.sizeHintForColumn(0) + 2 * self.list.frameWidth() + 40  # no sideways scrolling
        self.resize(min(max(560, width), 1100), 140 + min(rows, 360))

    def choose(self, row: int) -> None:
        self.list.setCurrentRow(row)

    def accept(self) -> None:
        item = self.list.currentItem()
        self.chosen = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        super().accept()
