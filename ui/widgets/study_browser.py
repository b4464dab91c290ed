"""The local library as a list: patient, date, description, series, slices, thumbnail."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from workstation.errors import WorkstationError
from workstation.library import StudyLibrary, thumbnail_path

COLUMNS = ("Patient", "Date", "Description", "Series", "Slices")


class StudyBrowser(QWidget):
    study_chosen = Signal(str)  # study key

    def __init__(self, home: Path, parent=None) -> None:
        super().__init__(parent)
        self.home = home
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(COLUMNS)
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setIconSize(QSize(48, 48))
        self.tree.itemActivated.connect(lambda item, _column: self.study_chosen.emit(item.data(0, Qt.ItemDataRole.UserRole)))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.hide_identifiers = False

    def reload(self) -> None:
        current = self.tree.currentItem()  # kept across a reload (a study arriving from a scanner)
        chosen = current.data(0, Qt.ItemDataRole.UserRole) if current is not None else None
        self.tree.clear()
        try:
            library = StudyLibrary(self.home)
            studies = library.studies()
        except WorkstationError:
            return
        for study in studies:
            series = library.series(study["key"])
            patient = "(hidden)" if self.hide_identifiers else (study["patient_name"] or study["patient_id"] or "-")
            date = "(hidden)" if self.hide_identifiers else _date(study["study_date"])
            item = QTreeWidgetItem([patient, date, study["study_description"] or "-",
                                    str(len(series)), str(sum(s["slices"] for s in series))])
            item.setData(0, Qt.ItemDataRole.UserRole, study["key"])
            thumbnail = thumbnail_path(self.home, study["key"])
            if thumbnail.is_file():
                item.setIcon(0, QIcon(QPixmap(str(thumbnail))))
            self.tree.addTopLevelItem(item)
            if study["key"] == chosen:
                self.tree.setCurrentItem(item)
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)


def _date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}" if value and len(value) == 8 else (value or "-")
