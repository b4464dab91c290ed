"""How the study is looked at: which view is active, one view or 2x2, window and 3D presets
(the window chosen from the series' body part on opening), overlay and patient text,
presentation mode, the tool in force (Esc: back to the crosshair), reset, centring on a point."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QWidget

from ui.render.slice_view import SliceView
from ui.state import ViewerState
from ui.widgets.study_browser import StudyBrowser
from workstation.imaging.volume import SeriesMetadata
from workstation.imaging.windowing import PRESETS

# Word beginnings in BodyPartExamined, then the study and series descriptions, that pick the
# opening window; chest first: a chest-abdomen scan is read here for its lungs.
SERIES_PRESETS = (
    (("CHEST", "THORA", "LUNG", "PULM"), "lung"),
    (("HEAD", "BRAIN", "SKULL", "CEREBR", "CRANI", "NEURO"), "brain"),
    (("ABD", "PELVI", "LIVER", "KIDNEY", "RENAL", "PANCREA"), "abdomen"),
)


def preset_for_series(metadata: SeriesMetadata) -> str:
    """The window a series opens in: lung for chest, brain for head, soft tissue for abdomen; lung
    (what this workstation reads) when the series does not say."""
    for text in (metadata.body_part, metadata.study_description, metadata.series_description):
        words = re.split(r"[^A-Z]+", (text or "").upper())
        for keys, preset in SERIES_PRESETS:
            if any(word.startswith(key) for word in words if word for key in keys):
                return preset
    return "lung"


class ViewingController(QObject):
    """Owns the active view and the layout (both remembered in the window's settings)."""

    def __init__(self, state: ViewerState, views: dict[str, QWidget], browser: StudyBrowser,
                 status: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.views, self.browser, self._status = state, views, browser, status
        self.active_view = "axial"
        self.single_layout = False
        self.series_preset = "lung"
        state.volume_changed.connect(self._on_volume)

    def _on_volume(self) -> None:
        self.series_preset = preset_for_series(self.state.volume.metadata)
        self.apply_preset(self.series_preset)

    def set_active_view(self, name: str) -> None:
        self.active_view = name

    def toggle_layout(self) -> None:
        """One view or 2x2; the views are hidden before the chosen one grows, so no half-laid-out
        grid is painted in between."""
        self.single_layout = not self.single_layout
        window = self.parent()
        if window is not None:
            window.setUpdatesEnabled(False)
        try:
            for name, view in self.views.items():
                if self.single_layout and name != self.active_view:
                    view.setVisible(False)
            for name, view in self.views.items():
                if not self.single_layout or name == self.active_view:
                    view.setVisible(True)
        finally:
            if window is not None:
                window.setUpdatesEnabled(True)

    def apply_preset(self, name: str) -> None:
        self.state.set_window(*PRESETS[name])

    def apply_3d_preset(self, name: str) -> None:
        self.views["3d"].set_preset(name)

    def toggle_overlay(self) -> None:
        self.state.set_overlay(visible=not self.state.overlay_visible)

    def toggle_overlay_outline(self) -> None:
        self.state.set_overlay_outline(not self.state.overlay_outline)
        self._status("Heatmap: outline at the threshold" if self.state.overlay_outline else "Heatmap: filled")

    def toggle_crosshair(self) -> None:
        self.state.toggle_crosshair()
        self._status("Crosshair lines shown" if self.state.crosshair_visible
                     else "Crosshair lines hidden (C shows them)")

    def reset_views(self) -> None:
        """Zoom, pan, tilt, measurements and 3D camera as on opening; the series' own window."""
        if self.state.volume is None:
            return
        for view in self.views.values():
            view.reset_view()
        self.apply_preset(self.series_preset)
        self._status(f"Views reset ({self.series_preset} window)")

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
        """D, O: one measurement in any slice view; the same key again goes back to the crosshair."""
        self.state.set_tool("crosshair" if self.state.tool == tool else tool)

    def back_to_crosshair(self) -> None:
        """Esc: the crosshair tool, no awaited click, no measurement on screen."""
        self.state.set_tool("crosshair")
        for view in self.views.values():
            if isinstance(view, SliceView):
                view.clear_measurement()

    def centre_on(self, point_mm: np.ndarray) -> None:
        """Crosshair and every slice view's centre on a point (selecting a finding)."""
        self.state.set_crosshair(point_mm)
        for view in self.views.values():
            if isinstance(view, SliceView):
                view.centre_on(self.state.crosshair)
