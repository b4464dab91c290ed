"""A notification over the bottom right of the window that goes by itself (a study has arrived,
the AI ran on it): seen without a click, never in the way of the next key."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QLabel, QWidget

STYLE = ("QLabel { background: #24344d; color: #ffffff; border: 1px solid #6f8fc8; border-radius: 4px; "
         "padding: 8px 12px; }")


class Notice(QLabel):
    """Shown by `notify`; hidden after `seconds`, or at a click."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("notice")
        self.setStyleSheet(STYLE)
        self.setWordWrap(True)
        self.setMaximumWidth(460)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, False)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.timeout.connect(self.hide)
        self.hide()

    def notify(self, text: str, seconds: float = 10.0) -> None:
        self.setText(text)
        self.setFixedWidth(min(460, max(200, self.parentWidget().width() // 3)))
        self.adjustSize()
        self._place()
        self.show()
        self.raise_()
        self.timer.start(int(seconds * 1000))

    def _place(self) -> None:
        parent = self.parentWidget()
        margin = 16
        bottom = parent.height() - margin - 28  # above the status bar
        self.move(parent.width() - self.width() - margin, bottom - self.height())

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.hide()
        super().mousePressEvent(event)
