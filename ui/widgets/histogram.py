"""HU histogram of the study with the window as a movable region kept in sync with the views."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ui.state import ViewerState


class HistogramPanel(QWidget):
    def __init__(self, state: ViewerState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.plot = pg.PlotWidget(background=(20, 20, 24))
        self.plot.setLabel("bottom", "HU")
        self.plot.setLogMode(y=True)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setMenuEnabled(False)
        self.plot.setXRange(-1100, 1500)
        self.curve = self.plot.plot(stepMode="center", fillLevel=0, brush=(120, 140, 170, 120), pen=(160, 180, 210))
        self.region = pg.LinearRegionItem(brush=(230, 200, 60, 50), pen=pg.mkPen((230, 200, 60), width=2))
        self.plot.addItem(self.region)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self._syncing = False
        self.region.sigRegionChanged.connect(self._on_region)
        state.volume_changed.connect(self._on_volume)
        state.window_changed.connect(self._on_window)
        self._on_window()

    def _on_volume(self) -> None:
        counts, edges = self.state.histogram
        self.curve.setData(edges, np.maximum(counts, 1).astype(float))

    def _on_window(self) -> None:
        centre, width = self.state.window
        self._syncing = True
        self.region.setRegion((centre - width / 2, centre + width / 2))
        self._syncing = False

    def _on_region(self) -> None:
        if self._syncing:
            return
        low, high = self.region.getRegion()
        self.state.set_window((low + high) / 2, high - low)
