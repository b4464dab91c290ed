"""The prior's axial view beside the current one: a SliceView on the prior's own ViewerState under
a header that says which prior it is, how well it is aligned (a poor alignment in red, never
hidden), which of its findings are drawn, and the matched status of the selected finding."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ui.render.slice_view import SliceView
from ui.state import ViewerState

POOR_STYLE = "background: #8a1c1c; color: white; padding: 3px 6px; font-weight: bold;"
FAIR_STYLE = "background: #7a5a00; color: white; padding: 3px 6px;"
PLAIN_STYLE = "background: #24313a; color: #e8e8e0; padding: 3px 6px;"


class PriorView(QWidget):
    """Holds no truth: the controller (ui/controllers/prior_compare.py) fills it and links it."""

    findings_toggled = Signal(bool)
    resized = Signal()  # its header reflowed or the window changed: the zoom is matched again

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("prior-view")
        self.state = state
        self.title = QLabel("Prior")
        self.title.setObjectName("prior-title")
        self.title.setStyleSheet(PLAIN_STYLE + " font-weight: bold;")
        self.alignment = QLabel("")
        self.alignment.setObjectName("prior-alignment")
        self.alignment.setWordWrap(True)
        self.match = QLabel("")
        self.match.setObjectName("prior-match")
        self.match.setWordWrap(True)
        self.match.setStyleSheet(PLAIN_STYLE)
        self.findings_check = QCheckBox("Prior findings")
        self.findings_check.setChecked(True)
        self.findings_check.toggled.connect(self.findings_toggled)
        for label in (self.title, self.alignment, self.match):  # long text wraps, it never widens the view
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setWordWrap(True)
        self.slice_view = SliceView(state, "axial")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.findings_check)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addLayout(top)
        layout.addWidget(self.alignment)
        layout.addWidget(self.match)
        layout.addWidget(self.slice_view, 1)
        self.match.hide()

    def show_prior(self, title: str, statement: str, quality: str, findings: str) -> None:
        self.title.setText(title)
        self.alignment.setText(statement[:1].upper() + statement[1:] + (f". Drawn: {findings}." if findings else ""))
        self.alignment.setStyleSheet({"poor": POOR_STYLE, "fair": FAIR_STYLE}.get(quality, PLAIN_STYLE))

    def show_match(self, text: str) -> None:
        self.match.setText(text)
        self.match.setVisible(bool(text))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self.resized.emit()
