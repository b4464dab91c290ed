"""Nodule matches with the prior (Ctrl+Shift+M, or "Nodule matches..." on the prior view): every
current finding with its status and partner in the prior, the change in size, volume and the
doubling time, the prior findings no longer seen (resolved); and, for the selected current
finding, the reader's corrections: the same nodule as another prior finding (chosen from the
prior's findings by number and size), or none (new), and its status. Corrections wait in the
dialog, shown as they will be, until "Record corrections".

Holds no truth: ui/controllers/nodule_matches.py fills it from the comparison and the edits not
yet recorded, and records them."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHeaderView,
                               QLabel, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from workstation.review.comparison import EDITABLE_STATUSES, NodulePair
from workstation.review.comparison_record import Comparison
from workstation.review.match_corrections import nodule_label, partner_choices
from workstation.review.priors import describe_pair

COLUMNS = ("Now", "Prior", "Status", "Long axis then → now", "Volume change", "Doubling time")
NOTE_STYLE = "color: #d04020; font-weight: bold;"


class NoduleMatchesDialog(QDialog):
    """Emits the reader's choices; the controller turns them into edits and shows the result."""

    row_chosen = Signal(object)  # the NodulePair selected (the views go to it)
    partner_chosen = Signal(int, object)  # current finding number, prior finding number or None
    status_chosen = Signal(int, str)
    record_clicked = Signal()
    discard_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("nodule-matches")
        self.setWindowTitle("Nodule matches with the prior")
        self.pairs: list[NodulePair] = []
        self.comparison: Comparison | None = None
        self.editable = False
        self.heading = QLabel("")
        self.heading.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.currentCellChanged.connect(lambda row, *_: self._on_row(row))
        self.table.cellClicked.connect(lambda row, _column: self._on_row(row))  # the views back to it
        self.selected = QLabel("")  # the selected row as the prior view's match line says it
        self.selected.setObjectName("nodule-matches-selected")
        self.selected.setWordWrap(True)
        self.selected.setStyleSheet("font-weight: bold;")
        self.partner = QComboBox()
        self.partner.setObjectName("nodule-matches-partner")
        self.partner.activated.connect(self._on_partner)
        self.status = QComboBox()
        self.status.setObjectName("nodule-matches-status")
        self.status.addItems(EDITABLE_STATUSES)
        self.status.activated.connect(self._on_status)
        form = QFormLayout()
        partner_label, status_label = QLabel("Same &nodule as"), QLabel("S&tatus")
        partner_label.setBuddy(self.partner)
        status_label.setBuddy(self.status)
        form.addRow(partner_label, self.partner)
        form.addRow(status_label, self.status)
        self.pending = QLabel("")
        self.pending.setObjectName("nodule-matches-pending")
        self.pending.setWordWrap(True)
        self.note = QLabel("")  # how (and whether) corrections are recorded; a refusal said here too
        self.note.setObjectName("nodule-matches-note")
        self.note.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.record_button = QPushButton("&Record corrections")
        self.record_button.setObjectName("nodule-matches-record")
        self.discard_button = QPushButton("&Discard")
        buttons.addButton(self.record_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.discard_button, QDialogButtonBox.ButtonRole.ResetRole)
        self.record_button.clicked.connect(self.record_clicked)
        self.discard_button.clicked.connect(self.discard_clicked)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.selected)
        layout.addLayout(form)
        layout.addWidget(self.pending)
        layout.addWidget(self.note)
        layout.addWidget(buttons)
        self.resize(880, 420)

    # -- filled by the controller -------------------------------------------------------------
    def show_matches(self, heading: str, comparison: Comparison, pairs: Sequence[NodulePair], pending: str,
                     note: str, editable: bool, warn: bool = False) -> None:
        """The pairs as they will be recorded (the edits not yet recorded applied); `pending`: those
        edits in words ("" none); `note`: how corrections are recorded, or why they cannot be."""
        keep = self.current_pair()
        self.comparison, self.pairs, self.editable = comparison, list(pairs), editable
        self.heading.setText(heading)
        self.table.blockSignals(True)  # refilling is not the reader choosing another row
        self.table.setRowCount(len(self.pairs))
        for row, pair in enumerate(self.pairs):
            for column, text in enumerate(_cells(pair)):
                item = QTableWidgetItem(text)
                if column == 2 and pair.by_reader:
                    item.setToolTip("Set by the reader")
                self.table.setItem(row, column, item)
        shown = min(len(self.pairs), 12)  # every row without scrolling, up to a dozen nodules
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height() + 2 * self.table.frameWidth()
                                    + sum(self.table.rowHeight(r) for r in range(shown)))
        again = next((row for row, pair in enumerate(self.pairs) if keep is not None and _same_row(pair, keep)), 0)
        if self.pairs:
            self.table.setCurrentCell(again, 0)
        self.table.blockSignals(False)
        self._on_row(self.table.currentRow(), announce=False)
        self.pending.setText(f"Not recorded yet: {pending}." if pending else "")
        self.pending.setVisible(bool(pending))
        self.note.setText(note)
        self.note.setStyleSheet(NOTE_STYLE if warn else "")
        self.record_button.setEnabled(editable and bool(pending))
        self.discard_button.setEnabled(bool(pending))

    def place_beside(self, window: QWidget) -> None:
        """At the window's lower left, over the lists rather than the images, as small as its rows
        allow: the reader checks each pairing on the images while correcting it."""
        self.resize(max(880, self.sizeHint().width()), self.sizeHint().height())
        corner = window.mapToGlobal(window.rect().bottomLeft())
        self.move(corner.x() + 8, max(window.mapToGlobal(window.rect().topLeft()).y(), corner.y() - self.height() - 40))

    def say(self, text: str) -> None:
        """A sentence for the reader in the dialog (e.g. why nothing was recorded)."""
        self.note.setText(text)
        self.note.setStyleSheet(NOTE_STYLE)

    def current_pair(self) -> NodulePair | None:
        row = self.table.currentRow()
        return self.pairs[row] if 0 <= row < len(self.pairs) else None

    def select_finding(self, current_number: int, announce: bool = True) -> None:
        """The row of current finding `current_number` selected (`announce`: the views go to it, as
        when the reader picks the row)."""
        row = next((r for r, p in enumerate(self.pairs) if p.current is not None
                    and p.current.number == current_number), None)
        if row is None:
            return
        self.table.blockSignals(True)
        self.table.setCurrentCell(row, 0)
        self.table.blockSignals(False)
        self._on_row(row, announce)

    # -- the reader's choices -----------------------------------------------------------------
    def _on_row(self, row: int, announce: bool = True) -> None:
        pair = self.pairs[row] if 0 <= row < len(self.pairs) else None
        self.selected.setText(describe_pair(pair) if pair is not None else "")
        self.partner.clear()
        current = pair is not None and pair.current is not None
        if current:
            for choice in partner_choices(self.comparison, self.pairs, pair.current.number):
                self.partner.addItem(choice.label, choice.prior)
            self.partner.setCurrentIndex(max(0, self.partner.findData(pair.prior.number if pair.prior else None)))
        elif pair is not None:
            self.partner.addItem("a resolved prior finding: pair it from the current finding it became", None)
        if pair is not None and pair.prior is not None and pair.status in EDITABLE_STATUSES:
            self.status.setCurrentText(pair.status)
        self.partner.setEnabled(self.editable and current)
        self.status.setEnabled(self.editable and current and pair.prior is not None)
        if announce and pair is not None:
            self.row_chosen.emit(pair)

    def _on_partner(self, index: int) -> None:
        pair = self.current_pair()
        if pair is not None and pair.current is not None:
            self.partner_chosen.emit(pair.current.number, self.partner.itemData(index))

    def _on_status(self, index: int) -> None:
        pair = self.current_pair()
        if pair is not None and pair.current is not None and pair.prior is not None:
            self.status_chosen.emit(pair.current.number, self.status.itemText(index))


def _same_row(a: NodulePair, b: NodulePair) -> bool:
    """The same current finding (or, for a resolved row, the same prior one) across a refill."""
    if a.current is not None or b.current is not None:
        return a.current is not None and b.current is not None and a.current.number == b.current.number
    return a.prior.number == b.prior.number


def _cells(pair: NodulePair) -> list[str]:
    now, then = pair.current, pair.prior
    undecided = " (undecided)" if getattr(now, "decision", "") == "undecided" else ""
    status = pair.status + (" *" if pair.by_reader else "")  # as the report marks it
    if pair.diameter_change_mm is not None:
        status += f" ({pair.diameter_change_mm:+.1f} mm)"
    sizes = " → ".join("-" if f is None else f"{f.diameter_mm:.1f}" for f in (then, now))
    volume = "-" if pair.volume_change is None else f"{pair.volume_change - 1:+.0%}"
    return [nodule_label(now) + undecided if now is not None else "-",
            nodule_label(then) if then is not None else "-", status, sizes, volume, _doubling(pair)]


def _doubling(pair: NodulePair) -> str:
    if pair.status in ("new", "resolved"):
        return "-"
    if pair.doubling_days is None:
        return "no volume growth"
    fast, slow = pair.doubling_range_days or (pair.doubling_days, pair.doubling_days)
    return f"{pair.doubling_days:.0f} days ({fast:.0f} to {'∞' if math.isinf(slow) else f'{slow:.0f}'})"
