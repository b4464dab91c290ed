"""How the study is looked at: which view is active, one view or 2x2, window and 3D presets,
overlay and patient text, presentation mode, the measuring tools, centring on a point."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from ui.render.slice_view import SliceView
from ui.state import ViewerState
from ui.widgets.study_browser import StudyBrowser
from workstation.imaging.windowing import PRESETS


class ViewingController(QObject):
    """Owns the active view and the layout (both remembered in the window's settings)."""

    def __init__(self, state: ViewerState, views: dict[str, QWidget], browser: StudyBrowser,
                 status: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.views, self.browser, self._status = state, views, browser, status
        self.active_view = "axial"
        self.single_layout = False

    def set_active_view(self, name: str) -> None:
        self.active_view = name

    def toggle_layout(self) -> None:
        self.single_layout = not self.single_layout
        for name, view in self.views.items():
            view.setVisible(not self.single_layout or name == self.active_view)

    def apply_preset(self, name: str) -> None:
        self.state.set_window(*PRESETS[name])

    def apply_3d_preset(self, name: str) -> None:
        self.views["3d"].set_preset(name)

    def toggle_overlay(self) -> None:
        self.state.set_overlay(visible=not self.state.overlay_visible)

    def toggle_patient_text(self) -> None:
        self.state.toggle_patient_text()

    def toggle_presentation(self) -> None:
        """One key for lectures: names, IDs, dates hidden in the views, title, browser and report preview."""
        self.state.set_presentation(not self.state.presentation)
        self.browser.hide_identifiers = self.state.presentation
        self.browser.reload()
        self._status("Presentation mode: patient identifiers hidden" if self.state.presentation
                     else "Presentation mode off")

    def set_tool(self, tool: str) -> None:
        view = self.views.get(self.active_view)
        if isinstance(view, SliceView):
            view.set_tool(tool)

    def centre_on(self, point_mm: np.ndarray) -> None:
        """Crosshair and every slice view's centre on a point (selecting a finding)."""
        self.state.set_crosshair(point_mm)
        for view in self.views.values():
            if isinstance(view, SliceView):
                view.centre_on(self.state.crosshair)
