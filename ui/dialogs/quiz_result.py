"""After a quiz is submitted: the trainee's marks and the AI side by side against the answer key."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from workstation.teaching.quiz import QuizResult


class QuizResultDialog(QDialog):
    def __init__(self, result: QuizResult, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Quiz result - {result.case.name}")
        self.summary = QLabel(result.summary())
        self.summary.setWordWrap(True)
        rows = self.rows(result)
        self.table = QTableWidget(len(rows), 3)
        self.table.setHorizontalHeaderLabels(["", "You", "AI"])
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        notes = QLabel(f"Trainer's notes: {result.case.notes}" if result.case.notes else "")
        notes.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (self.summary, self.table, notes, buttons):
            layout.addWidget(widget)
        self.resize(560, 380)

    @staticmethod
    def rows(result: QuizResult) -> list[tuple[str, str, str]]:
        you = {a for _, a in result.trainee.hits}
        ai = {a for _, a in result.ai.hits} if result.ai else set()
        rows = [(f"Nodule {n + 1}: {answer['diameter_mm']:.0f} mm {answer.get('type', '')}",
                 "found" if n in you else "missed", ("found" if n in ai else "missed") if result.ai else "-")
                for n, answer in enumerate(result.case.answers)]
        rows += [(f"Your mark {m + 1}", "false mark", "") for m in result.trainee.false_marks]
        if result.ai:
            rows += [(f"AI finding {m + 1}", "", "false mark") for m in result.ai.false_marks]
        return rows
