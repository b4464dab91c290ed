"""The findings beside the views: model identity and notice, scope banner, review progress,
one row per finding with its decision; selecting a row centres all views on it."""

from __future__ import annotations

import numpy as np

from workstation.imaging.snapshot import finding_thumbnail
from PySide6.QtCore import Qt, Signal
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

# What a reader scans for first comes first: a narrow panel still shows probability and size
COLUMNS = ("#", "Prob.", "Size", "Type", "Decision", "Location")
DECISION_COLUMN = COLUMNS.index("Decision")
DECISION_COLOURS = {"accepted": "#7fd47f", "rejected": "#e08a8a", "undecided": "#d8d8d4"}


class FindingsPanel(QWidget):
    finding_selected = Signal(object)  # centre in patient mm (numpy array)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("No AI result yet (Run AI: Ctrl+R)")
        self.model_label.setWordWrap(True)
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #5a3b12; color: #ffd9a0; padding: 4px; border-radius: 3px;")
        self.banner.hide()
        self.progress_label = QLabel("")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.headerItem().setToolTip(COLUMNS.index("Size"), "Long axis: the longest diameter across one slice")
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIconSize(QSize(48, 48))
        self.tree.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.model_label, self.banner, self.progress_label):
            layout.addWidget(widget)
        layout.addWidget(self.tree, 1)

    def show_model(self, name: str, version: str, device: str, threshold: float, notice: str,
                   warnings: list[str]) -> None:
        """Every result of a model is shown with its name, version and notice."""
        self.model_label.setText(f"{name} {version} on {device}, threshold {threshold:g}\n{notice}")
        self.banner.setText("\n".join(warnings))
        self.banner.setVisible(bool(warnings))

    def show_findings(self, states, status: str = "", volume=None) -> None:
        """Rows from review FindingStates (or plain findings, shown as undecided), with a
        thumbnail of each finding when the volume is given."""
        current = self.current_id()
        self.tree.clear()
        for state in states:
            x, _y, z = state.center_mm
            side = "left" if x > 0 else "right"  # LPS: +x is the patient's left
            decision = getattr(state, "decision", "undecided")
            probability = "added" if getattr(state, "source", "ai") == "clinician" else f"{state.probability:.2f}"
            item = QTreeWidgetItem([str(state.id), probability, f"{state.diameter_mm:.1f} mm", state.type, decision,
                                    f"{side} lung, z {z:.0f} mm"])
            item.setForeground(DECISION_COLUMN, QColor(DECISION_COLOURS.get(decision, "#d8d8d4")))
            item.setData(0, Qt.ItemDataRole.UserRole, np.array(state.center_mm))
            item.setData(1, Qt.ItemDataRole.UserRole, state.id)
            if volume is not None:
                patch = finding_thumbnail(volume, state.center_mm)
                image = QImage(patch.data, patch.shape[1], patch.shape[0], patch.strides[0],
                               QImage.Format.Format_Grayscale8).copy()
                item.setIcon(0, QIcon(QPixmap.fromImage(image)))
            if getattr(state, "reason", None):
                item.setToolTip(DECISION_COLUMN, f"{decision}: {state.reason} ({state.decided_by})")
            self.tree.addTopLevelItem(item)
            if state.id == current:
                self.tree.setCurrentItem(item)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        decided = sum(getattr(s, "decision", "undecided") != "undecided" for s in states)
        self.progress_label.setText(f"{decided} of {len(states)} decided" + (f" - {status}" if status else ""))

    def clear(self) -> None:
        self.tree.clear()
        self.banner.hide()
        self.progress_label.setText("")
        self.model_label.setText("No AI result yet (Run AI: Ctrl+R)")

    def current_id(self) -> int | None:
        item = self.tree.currentItem()
        return item.data(1, Qt.ItemDataRole.UserRole) if item is not None else None

    def select_next(self, step: int) -> None:
        count = self.tree.topLevelItemCount()
        if count:
            row = (self.tree.indexOfTopLevelItem(self.tree.currentItem()) + step) % count
            self.tree.setCurrentItem(self.tree.topLevelItem(row))

    def _on_current(self, item, _previous) -> None:
        if item is not None:
            self.finding_selected.emit(item.data(0, Qt.ItemDataRole.UserRole))
