"""The AI's findings beside the views: model identity and notice, scope banner, one row per
finding; selecting a row centres all views on it. (Accept/reject come with the review workflow.)"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

COLUMNS = ("#", "Probability", "Type", "Size", "Location")


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
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.currentItemChanged.connect(self._on_current)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.model_label)
        layout.addWidget(self.banner)
        layout.addWidget(self.tree, 1)

    def show_analysis(self, analysis) -> None:
        """Every finding is shown with the model's name, version and probability."""
        self.model_label.setText(f"{analysis.model_name} {analysis.model_version} on {analysis.device}, "
                                 f"threshold {analysis.threshold:g}: {len(analysis.findings)} finding(s)\n"
                                 f"{analysis.notice}")
        warnings = [f"Outside validated scope: {reason}" for reason in analysis.scope_warnings] + analysis.notes
        self.banner.setText("\n".join(warnings))
        self.banner.setVisible(bool(warnings))
        self.tree.clear()
        for finding in analysis.findings:
            x, _y, z = finding.center_mm
            side = "left" if x > 0 else "right"  # LPS: +x is the patient's left
            item = QTreeWidgetItem([str(finding.id), f"{finding.probability:.2f}", finding.type,
                                    f"{finding.diameter_mm:.1f} mm", f"{side} lung, z {z:.0f} mm"])
            item.setData(0, Qt.ItemDataRole.UserRole, np.array(finding.center_mm))
            item.setToolTip(0, f"{finding.model_name} {finding.model_version}")
            self.tree.addTopLevelItem(item)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)

    def clear(self) -> None:
        self.tree.clear()
        self.banner.hide()
        self.model_label.setText("No AI result yet (Run AI: Ctrl+R)")

    def select_next(self, step: int) -> None:
        count = self.tree.topLevelItemCount()
        if count:
            row = (self.tree.indexOfTopLevelItem(self.tree.currentItem()) + step) % count
            self.tree.setCurrentItem(self.tree.topLevelItem(row))

    def _on_current(self, item, _previous) -> None:
        if item is not None:
            self.finding_selected.emit(item.data(0, Qt.ItemDataRole.UserRole))
