"""The prior's axial view beside the current one: a SliceView on the prior's own ViewerState under
a header that says which prior it is, how well it is aligned (a poor alignment in red, never
hidden), which of its findings are drawn, whether this comparison is the one the read's report
prints (with "Use this prior in the report" when it is not), the matched status of the
selected finding, and "Nodule matches..." (the pairs and the reader's corrections)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout,
                               QWidget)

from ui.render.slice_view import SliceView
from ui.state import ViewerState

POOR_STYLE = "background: #8a1c1c; color: white; padding: 3px 6px; font-weight: bold;"
FAIR_STYLE = "background: #7a5a00; color: white; padding: 3px 6px;"
PLAIN_STYLE = "background: #24313a; color: #e8e8e0; padding: 3px 6px;"


class PriorView(QWidget):
    """Holds no truth: the controller (ui/controllers/prior_compare.py) fills it and links it."""

    findings_toggled = Signal(bool)
    use_in_report = Signal()  # "Use this prior in the report" clicked
    matches_requested = Signal()  # "Nodule matches..." clicked
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
        self.report_line = QLabel("")
        self.report_line.setObjectName("prior-report")
        self.report_line.setStyleSheet(PLAIN_STYLE)
        self.report_button = QPushButton("Use this prior in the report")
        self.report_button.setObjectName("prior-use-in-report")
        self.report_button.clicked.connect(self.use_in_report)
        self.matches_button = QPushButton("Nodule matches...")
        self.matches_button.setObjectName("prior-matches")
        self.matches_button.setToolTip("Each finding's match in the prior, and the reader's corrections (Ctrl+Shift+M)")
        self.matches_button.clicked.connect(self.matches_requested)
        self.findings_check = QCheckBox("Prior findings")
        self.findings_check.setChecked(True)
        self.findings_check.toggled.connect(self.findings_toggled)
        for label in (self.title, self.alignment, self.report_line, self.match):  # long text wraps, it never widens the view
            label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
            label.setWordWrap(True)
        self.slice_view = SliceView(state, "axial")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.matches_button)
        top.addWidget(self.findings_check)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(1)
        layout.addLayout(top)
        layout.addWidget(self.alignment)
        layout.addWidget(self.report_line)
        button_row = QHBoxLayout()  # under the sentence, so that the sentence keeps the view's width
        button_row.setContentsMargins(0, 0, 0, 0)
        button_row.addWidget(self.report_button)
        button_row.addStretch(1)
        layout.addLayout(button_row)
        layout.addWidget(self.match)
        layout.addWidget(self.slice_view, 1)
        self.match.hide()

    def show_prior(self, title: str, statement: str, quality: str, findings: str) -> None:
        self.title.setText(title)
        self.alignment.setText(statement[:1].upper() + statement[1:] + (f". Drawn: {findings}." if findings else ""))
        self.alignment.setStyleSheet({"poor": POOR_STYLE, "fair": FAIR_STYLE}.get(quality, PLAIN_STYLE))

    def show_report_state(self, text: str, button: str = "") -> None:
        """Whether the report prints this comparison; `button`: the action's text, or "" for none."""
        self.report_line.setText(text)
        self.report_line.setVisible(bool(text))
        self.report_button.setText(button or self.report_button.text())
        self.report_button.setVisible(bool(button))

    def show_match(self, text: str) -> None:
        self.match.setText(text)
        self.match.setVisible(bool(text))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self.resized.emit()
