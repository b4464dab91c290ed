"""Dark reading-room theme: Fusion style, a dark palette and resources/style.qss."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from workstation.paths import shipped

STYLE_SHEET = shipped("resources") / "style.qss"


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
    if STYLE_SHEET.is_file():
        app.setStyleSheet(STYLE_SHEET.read_text(encoding="utf-8"))
