"""The viewer's session state: one source of truth that widgets set and react to."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal

from workstation.imaging.statistics import hu_histogram, slice_maxima
from workstation.imaging.volume import Volume
from workstation.imaging.windowing import PRESETS

# What a left click in a slice view does; the status bar and the cursor show the one in force.
TOOLS = {"crosshair": "Crosshair", "ruler": "Ruler: drag to measure (Esc: crosshair)",
         "roi": "ROI: drag from the centre (Esc: crosshair)", "add": "Add a finding: click it (Esc: cancel)",
         "move": "Move the finding: click its new centre (Esc: cancel)",
         "mark": "Quiz: click the suspected nodule (Esc: cancel)"}
MEASURING_TOOLS = ("ruler", "roi")
POINTING_TOOLS = ("add", "move", "mark")


class ViewerState(QObject):
    """Current volume, crosshair (patient mm), window/level and overlay settings."""

    volume_changed = Signal()
    crosshair_changed = Signal()
    window_changed = Signal()
    overlay_changed = Signal()
    heatmap_changed = Signal()
    annotations_changed = Signal()
    tool_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.volume: Volume | None = None
        self.heatmap: np.ndarray | None = None  # float32 0..1 on the volume's grid
        # (centre mm, radius mm) or (centre mm, radius mm, label): the label is the finding's number
        self.markers: list[tuple] = []
        self.heat_maxima: tuple[np.ndarray, ...] = ()  # per index axis: heatmap maximum of each slice
        self.histogram: tuple[np.ndarray, np.ndarray] | None = None  # HU (counts, edges)
        self.crosshair = np.zeros(3)
        self.window = PRESETS["lung"]
        self.overlay_visible = True
        self.overlay_opacity = 0.5
        self.overlay_threshold = 0.3
        self.overlay_outline = False  # the heatmap as an outline at the threshold, leaving the lesion visible
        self.crosshair_visible = True
        self.tool = "crosshair"
        self._outline: dict[int, np.ndarray] = {}
        self._outline_key: tuple | None = None
        self.show_patient_text = True
        self.presentation = False  # lectures: every patient identifier hidden, whatever else is set

    def set_volume(self, volume: Volume, heatmap: np.ndarray | None = None,
                   markers: list[tuple[np.ndarray, float]] | None = None,
                   summaries: dict | None = None) -> None:
        """Show a volume; `summaries` (from the load job) spares the GUI thread the heavy numpy work."""
        if heatmap is not None and heatmap.shape != volume.shape:
            raise ValueError(f"heatmap shape {heatmap.shape} differs from the volume {volume.shape}")
        self.volume, self.heatmap, self.markers = volume, heatmap, list(markers or [])
        summaries = summaries or volume_summaries(volume, heatmap)
        self.histogram, self.heat_maxima = summaries["histogram"], summaries["heat_maxima"]
        k, j, i = np.array(volume.shape) // 2  # a voxel centre, so slice steps land on slices
        self.crosshair = volume.voxel_to_patient((i, j, k))
        self.volume_changed.emit()
        self.crosshair_changed.emit()

    def set_heatmap(self, heatmap: np.ndarray | None, heat_maxima: tuple = ()) -> None:
        """A new heatmap on the current volume (e.g. from Run AI); crosshair and view stay."""
        if heatmap is not None and (self.volume is None or heatmap.shape != self.volume.shape):
            raise ValueError("the heatmap must be on the current volume's grid")
        self.heatmap, self.heat_maxima = heatmap, heat_maxima
        self.heatmap_changed.emit()
        self.overlay_changed.emit()

    def set_markers(self, markers: list[tuple[np.ndarray, float]]) -> None:
        self.markers = list(markers)
        self.annotations_changed.emit()

    def set_crosshair(self, point_mm: np.ndarray) -> None:
        point = np.asarray(point_mm, dtype=float)
        if self.volume is not None:  # keep the point inside the volume
            ijk = np.clip(self.volume.patient_to_voxel(point), 0, np.array(self.volume.shape[::-1]) - 1)
            point = self.volume.voxel_to_patient(ijk)
        if not np.allclose(point, self.crosshair):
            self.crosshair = point
            self.crosshair_changed.emit()

    def set_window(self, centre: float, width: float) -> None:
        window = (float(centre), max(1.0, float(width)))
        if window != self.window:
            self.window = window
            self.window_changed.emit()

    def set_overlay(self, *, visible: bool | None = None, opacity: float | None = None,
                    threshold: float | None = None) -> None:
        if visible is not None:
            self.overlay_visible = visible
        if opacity is not None:
            self.overlay_opacity = float(np.clip(opacity, 0, 1))
        if threshold is not None:
            self.overlay_threshold = float(np.clip(threshold, 0, 1))
        self.overlay_changed.emit()

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self.tool:
            self.tool = tool
            self.tool_changed.emit()

    def set_overlay_outline(self, on: bool) -> None:
        self.overlay_outline = bool(on)
        self.overlay_changed.emit()

    def overlay_image(self, normal_axis: int = 0) -> np.ndarray | None:
        """What a view shows as the overlay: the heatmap, or (outline) the border of the region at or
        above the threshold within the view's planes (`normal_axis`: the numpy axis across them),
        1.0 on the border: a ring around the lesion on every slice, even on thick slices."""
        if self.heatmap is None or not self.overlay_outline:
            return self.heatmap
        key = (id(self.heatmap), self.overlay_threshold)
        if self._outline_key != key:
            self._outline, self._outline_key = {}, key
        if normal_axis not in self._outline:
            self._outline[normal_axis] = heat_border(self.heatmap, self.overlay_threshold, normal_axis)
        return self._outline[normal_axis]

    def toggle_crosshair(self) -> None:
        self.crosshair_visible = not self.crosshair_visible
        self.annotations_changed.emit()

    def toggle_patient_text(self) -> None:
        self.show_patient_text = not self.show_patient_text
        self.annotations_changed.emit()

    def set_presentation(self, on: bool) -> None:
        self.presentation = on
        self.annotations_changed.emit()

    @property
    def identifiers_visible(self) -> bool:
        return self.show_patient_text and not self.presentation

    def value_at(self, point_mm: np.ndarray) -> float | None:
        """HU of the nearest voxel, or None outside the volume."""
        if self.volume is None:
            return None
        i, j, k = np.rint(self.volume.patient_to_voxel(point_mm)).astype(int)
        shape = self.volume.shape
        if not (0 <= k < shape[0] and 0 <= j < shape[1] and 0 <= i < shape[2]):
            return None
        return float(self.volume.voxels[k, j, i])


def volume_summaries(volume: Volume, heatmap: np.ndarray | None) -> dict:
    """What the views derive from a volume, computed once (call it on the worker thread)."""
    return {"histogram": hu_histogram(volume.voxels),
            "heat_maxima": slice_maxima(heatmap) if heatmap is not None else ()}


def heat_border(heatmap: np.ndarray, threshold: float, normal_axis: int = 0) -> np.ndarray:
    """1.0 on the border of the region at or above the threshold within each plane across
    `normal_axis` (numpy axis), 0 elsewhere; computed in the region's bounding box, a few
    milliseconds for nodules in a 512x512 series."""
    from scipy import ndimage

    border = np.zeros(heatmap.shape, dtype=np.float32)
    inside = heatmap >= threshold
    if not inside.any():
        return border
    (found,) = ndimage.find_objects(inside.astype(np.uint8))
    box = tuple(slice(max(part.start - 1, 0), part.stop + 1) for part in found)
    in_plane = np.zeros((3, 3, 3), dtype=bool)  # a cross in the plane: erosion never crosses slices
    for axis in range(3):
        if axis != normal_axis:
            index = [1, 1, 1]
            for offset in (0, 2):
                index[axis] = offset
                in_plane[tuple(index)] = True
    in_plane[1, 1, 1] = True
    region = inside[box]
    border[box] = region & ~ndimage.binary_erosion(region, structure=in_plane, border_value=0)
    return border
