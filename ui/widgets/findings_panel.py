"""The findings beside the views: model identity and notice, the threshold and operating point
the list is shown at, scope banner, review progress, one row per finding (its study number, the
one views, dialogs and report use) with its decision; selecting a row centres all views on it."""

from __future__ import annotations

import numpy as np

from workstation.imaging.snapshot import finding_thumbnail
from PySide6.QtCore import Qt, Signal
from PySide6.QtCore import QSize
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

# What a reader scans for first comes first: a narrow panel still shows probability and size
COLUMNS = ("#", "Prob.", "mm", "Type", "Decision", "Location")
DECISION_COLUMN = COLUMNS.index("Decision")
DECISION_COLOURS = {"accepted": "#7fd47f", "rejected": "#e08a8a", "undecided": "#d8d8d4"}


class FindingsPanel(QWidget):
    finding_selected = Signal(object)  # centre in patient mm (numpy array)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.model_label = QLabel("No AI result yet (Run AI: Ctrl+R)")
        self.model_label.setWordWrap(True)
        self.threshold_label = QLabel("")
        self.threshold_label.setWordWrap(True)
        self.threshold_label.hide()
        self._thumbnails: dict[tuple, QIcon] = {}
        self.banner = QLabel("")
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("background: #5a3b12; color: #ffd9a0; padding: 4px; border-radius: 3px;")
        self.banner.hide()
        self.progress_label = QLabel("")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.headerItem().setToolTip(COLUMNS.index("mm"), "Size: the long axis, the longest diameter across one "
                                                               "slice, in mm")
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIconSize(QSize(40, 40))
        self.tree.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.model_label, self.threshold_label, self.banner, self.progress_label):
            layout.addWidget(widget)
        layout.addWidget(self.tree, 1)

    def show_model(self, name: str, version: str, device: str, threshold: float, notice: str,
                   warnings: list[str]) -> None:
        """Every result of a model is shown with its name, version and notice."""
        self.model_label.setText(f"{name} {version} on {device}, run at threshold {threshold:g}\n{notice}")
        self.banner.setText("\n".join(warnings))
        self.banner.setVisible(bool(warnings))

    def show_threshold(self, text: str) -> None:
        """Which threshold (and operating point of the model card) the list and markers are shown at."""
        self.threshold_label.setText(text)
        self.threshold_label.setVisible(bool(text))

    def show_findings(self, states, status: str = "", volume=None, hidden: int = 0,
                      threshold: float | None = None, progress: tuple[int, int] | None = None) -> None:
        """Rows from review FindingStates (or plain findings, shown as undecided), with a
        thumbnail of each finding when the volume is given; `hidden` were left out by the
        threshold slider."""
        current = self.current_id()
        self.tree.blockSignals(True)  # re-filling is not the reader choosing another finding
        self.tree.clear()
        for state in states:
            x, _y, z = state.center_mm
            side = "left" if x > 0 else "right"  # LPS: +x is the patient's left
            decision = getattr(state, "decision", "undecided")
            probability = "added" if getattr(state, "source", "ai") == "clinician" else f"{state.probability:.2f}"
            number = getattr(state, "number", 0) or state.id
            item = QTreeWidgetItem([str(number), probability, f"{state.diameter_mm:.1f}", state.type, decision,
                                    f"{side}, z {z:.0f}"])
            item.setToolTip(len(COLUMNS) - 1, f"{side} lung, z {z:.1f} mm")
            item.setForeground(DECISION_COLUMN, QColor(DECISION_COLOURS.get(decision, "#d8d8d4")))
            item.setData(0, Qt.ItemDataRole.UserRole, np.array(state.center_mm))
            item.setData(1, Qt.ItemDataRole.UserRole, state.id)
            if volume is not None:
                item.setIcon(0, self._thumbnail(volume, state.center_mm))
            if getattr(state, "reason", None):
                item.setToolTip(DECISION_COLUMN, f"{decision}: {state.reason} ({state.decided_by})")
            self.tree.addTopLevelItem(item)
            if state.id == current:
                self.tree.setCurrentItem(item)
        self.tree.blockSignals(False)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        decided, total = progress or (sum(getattr(s, "decision", "undecided") != "undecided" for s in states),
                                      len(states))  # `progress`: of the whole read, hidden ones included
        below = f"; {hidden} below threshold {threshold:.2f} not shown" if hidden and threshold is not None else ""
        self.progress_label.setText(f"{decided} of {total} decided{below}" + (f" - {status}" if status else ""))

    def _thumbnail(self, volume, centre) -> QIcon:
        key = (volume.metadata.series_uid, tuple(centre))
        if key not in self._thumbnails:  # the slider re-fills the list often; a patch costs a reslice
            patch = finding_thumbnail(volume, centre)
            image = QImage(patch.data, patch.shape[1], patch.shape[0], patch.strides[0],
                           QImage.Format.Format_Grayscale8).copy()
            self._thumbnails[key] = QIcon(QPixmap.fromImage(image))
        return self._thumbnails[key]

    def clear(self) -> None:
        self.tree.clear()
        self.banner.hide()
        self.progress_label.setText("")
        self.show_threshold("")
        self._thumbnails.clear()
        self.model_label.setText("No AI result yet (Run AI: Ctrl+R)")

    def select_id(self, finding_id: int) -> None:
        for row in range(self.tree.topLevelItemCount()):
            if self.tree.topLevelItem(row).data(1, Qt.ItemDataRole.UserRole) == finding_id:
                self.tree.setCurrentItem(self.tree.topLevelItem(row))
                return

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
