"""Dark reading-room theme: Fusion style, a dark palette and resources/style.qss."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from workstation.paths import shipped

STYLE_SHEET = shipped("resources") / "style.qss"
# Input fields need a visible frame on the dark background (a password field looked like a
# label), and combo popups their own opaque background (the generic QWidget rule left them
# half painted: ghost copies of the list after it closed). Fusion draws an unticked box darker
# than the window, so unticked settings looked like plain text; a ticked one keeps Fusion's tick.
INPUT_STYLE = """
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QDoubleSpinBox, QComboBox {
    background: #202127; border: 1px solid #4a4e58; border-radius: 3px; padding: 2px 4px; }
QLineEdit:focus, QPlainTextEdit:focus, QSpinBox:focus, QDoubleSpinBox:focus, QComboBox:focus {
    border: 1px solid #8aa4d6; }
QComboBox QAbstractItemView { background: #202127; border: 1px solid #4a4e58;
    selection-background-color: #34415a; outline: 0; }
QLabel#mode-indicator { padding: 1px 6px; }
QToolButton:checked { background: #2d6a8a; color: white; }
QCheckBox::indicator:unchecked { width: 12px; height: 12px; border: 1px solid #6a6e78; background: #202127;
    border-radius: 2px; }
QCheckBox::indicator:unchecked:disabled { border-color: #3a3d45; }
"""


def apply_dark_theme(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#17181b", QPalette.ColorRole.WindowText: "#d8d8d4",
        QPalette.ColorRole.Base: "#1b1c20", QPalette.ColorRole.AlternateBase: "#202127",
        QPalette.ColorRole.Text: "#d8d8d4", QPalette.ColorRole.Button: "#2a2d35",
        QPalette.ColorRole.ButtonText: "#d8d8d4", QPalette.ColorRole.Highlight: "#34415a",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2a2d35",
        QPalette.ColorRole.ToolTipText: "#d8d8d4",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    app.setPalette(palette)
    base = STYLE_SHEET.read_text(encoding="utf-8") if STYLE_SHEET.is_file() else ""
    app.setStyleSheet(base + INPUT_STYLE)
