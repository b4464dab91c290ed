"""One MPR slice view (axial, coronal or sagittal) rendered by VTK inside Qt.

The view shows the plane through the shared crosshair with its own frame (right, up,
normal) derived from the Volume's affine; VTK's reslice mapper cuts the volume (and the
heatmap overlay) in patient millimetres, so oblique and tilted geometry needs nothing
special. Mouse: left click sets the crosshair, Ctrl+left drag moves it, left drag sets
window/level, right drag zooms, middle drag pans, the wheel scrolls. Keys: arrows and
PgUp/PgDn scroll, [ and ] tilt the plane (oblique), \\ resets it. The tool in force (the
state's: crosshair, ruler, ROI, or a click awaited to add, move or mark a finding) decides
what a left click does, and shows in the cursor; a measurement or a point takes one click or
drag, then the crosshair is back.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QWheelEvent

from ui.render.overlay import heatmap_lookup_table
from ui.render.vtk_shim import (
    QVTKRenderWindowInteractor, vtkActor, vtkCellArray, vtkImageProperty, vtkImageResliceMapper, vtkImageSlice,
    vtkImageStack, vtkInteractorStyleUser, vtkPoints, vtkPolyData, vtkPolyDataMapper, vtkRenderer, vtkTextActor,
    image_data,
)
from ui.state import MEASURING_TOOLS, POINTING_TOOLS, ViewerState
from workstation.imaging.view_geometry import ViewFrame, edge_letters, slice_step_mm, view_frame

CROSSHAIR_COLOUR = (1.0, 0.85, 0.2)
MEASURE_COLOUR = (0.3, 0.9, 1.0)
MARKER_COLOUR = (1.0, 0.35, 0.1)
CURSORS = {"ruler": Qt.CursorShape.CrossCursor, "roi": Qt.CursorShape.CrossCursor,
           "add": Qt.CursorShape.PointingHandCursor, "move": Qt.CursorShape.PointingHandCursor,
           "mark": Qt.CursorShape.PointingHandCursor}
MARKER_LABELS = 12  # text actors kept for finding numbers in one plane
SCALE_STEPS_MM = (1, 2, 5, 10, 20, 50, 100, 200)
# The view the user drives renders at once; the others follow at most this often, so the
# driven view keeps the frame rate (on software OpenGL every render costs ~10-15 ms).
FOLLOWER_RENDER_MS = 150


class SliceView(QVTKRenderWindowInteractor):
    """A linked MPR view; it holds no truth beyond its own pan, zoom and tilt."""

    activated = Signal(str)  # the view the user last touched
    measurement_changed = Signal(str)
    point_clicked = Signal(object)  # patient mm of a left click (not a drag)
    view_moved = Signal()  # its zoom or pan changed (a linked view follows)

    def __init__(self, state: ViewerState, view: str, parent=None) -> None:
        super().__init__(parent)
        self.state, self.view = state, view
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)  # HU and position under the cursor without a button held
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.0, 0.0, 0.0)
        self.GetRenderWindow().AddRenderer(self.renderer)
        self.GetRenderWindow().SetMultiSamples(0)  # MSAA doubles the cost of a frame on software GL
        self.GetRenderWindow().GetInteractor().SetInteractorStyle(vtkInteractorStyleUser())
        self.renderer.GetActiveCamera().ParallelProjectionOn()

        self.base_property = vtkImageProperty()
        self.base_property.SetInterpolationTypeToLinear()
        self.base_property.SetLayerNumber(0)
        self.base_mapper, self.base_slice = _reslice_layer(self.base_property)
        self.overlay_property = vtkImageProperty()
        self.overlay_property.SetInterpolationTypeToLinear()
        self.overlay_property.SetLayerNumber(1)
        self.overlay_property.UseLookupTableScalarRangeOn()
        self.overlay_mapper, self.overlay_slice = _reslice_layer(self.overlay_property)
        self.stack = vtkImageStack()
        self.stack.AddImage(self.base_slice)
        self.stack.AddImage(self.overlay_slice)
        self.stack.SetActiveLayer(0)
        self.renderer.AddViewProp(self.stack)

        self.crosshair = _LineActor(CROSSHAIR_COLOUR, 1.0, self.renderer)
        self.markers = _LineActor(MARKER_COLOUR, 2.0, self.renderer)
        self.scale_bar = _LineActor((0.9, 0.9, 0.9), 2.0, self.renderer)
        self.measure = _LineActor(MEASURE_COLOUR, 2.0, self.renderer)
        self.texts = {name: _text(self.renderer, size) for name, size in (
            ("top_left", 13), ("top_right", 13), ("bottom_left", 13), ("bottom_right", 13), ("scale", 12),
            ("left", 16), ("right", 16), ("top", 16), ("bottom", 16), ("measure", 13))}
        self.marker_labels = [_text(self.renderer, 13) for _ in range(MARKER_LABELS)]
        for label in self.marker_labels:
            label.GetTextProperty().SetColor(*MARKER_COLOUR)
            label.GetTextProperty().SetBold(1)

        self.frame: ViewFrame | None = None
        self.base_frame: ViewFrame | None = None
        self.tilt_degrees = 0.0
        self.centre = np.zeros(3)  # in-plane pan centre (patient mm)
        self.half_height_mm = 200.0
        self._overlay_shown = None  # the array the overlay layer shows now
        self.measure_kind = ""  # "ruler" or "roi": what the points on screen measure
        self.measure_points: list[np.ndarray] = []
        self.measurement_text = ""
        self._drag: tuple[str, QPoint, tuple] | None = None
        self._cursor_text = ""
        self._driving = False  # True while this view's own input changes the state
        self._closed = False
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(FOLLOWER_RENDER_MS)
        self._render_timer.timeout.connect(self._render_now)

        state.volume_changed.connect(self._on_volume)
        state.crosshair_changed.connect(self.refresh)
        state.window_changed.connect(self._on_window)
        state.overlay_changed.connect(self._on_overlay)
        state.heatmap_changed.connect(self._on_heatmap)
        state.annotations_changed.connect(self.refresh)
        state.tool_changed.connect(self._on_tool)

    def warm_up(self) -> None:
        """Render a tiny image once so shader compilation (~60 ms a view on software GL)
        happens at start-up, not as a stall when the first study arrives."""
        if self.state.volume is not None or self._closed:
            return
        tiny = np.zeros((2, 2, 2), dtype=np.int16)
        self.base_mapper.SetInputData(image_data(tiny, np.eye(4)))
        self.overlay_mapper.SetInputData(image_data(tiny.astype(np.float32), np.eye(4)))
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(0.5, 0.5, 0.5)
        camera.SetPosition(0.5, 0.5, -10)
        self.GetRenderWindow().Render()
        self.base_slice.SetVisibility(True)

    # -- state -> view ------------------------------------------------------------------------
    def _on_volume(self) -> None:
        volume = self.state.volume
        if volume is None:
            return
        self.base_mapper.SetInputData(image_data(volume.voxels, volume.affine))
        self.base_frame = view_frame(volume.direction, self.view)
        self.reset_view(render=False)
        self._on_heatmap()
        self._on_window()
        self._on_overlay()

    def reset_view(self, render: bool = True) -> None:
        """Zoom to fit, centred, in the acquired plane; measurements cleared (the crosshair stays)."""
        volume = self.state.volume
        if volume is None or self.base_frame is None:
            return
        self.tilt_degrees = 0.0
        self.frame = self.base_frame
        self.centre = volume.voxel_to_patient((np.array(volume.shape[::-1]) - 1) / 2.0)
        extent = np.abs(volume.affine[:3, :3] @ (np.array(volume.shape[::-1]) - 1))
        self.half_height_mm = float(max(extent @ np.abs(self.frame.up), extent @ np.abs(self.frame.right)) / 2 * 1.05)
        self.measure_points = []
        self.measurement_text = ""
        if render:
            self.refresh()
            self.view_moved.emit()

    def _on_tool(self) -> None:
        tool = self.state.tool
        self.setCursor(CURSORS.get(tool, Qt.CursorShape.ArrowCursor))
        if tool in MEASURING_TOOLS:  # a new measurement: the old one goes
            self.clear_measurement()

    def clear_measurement(self) -> None:
        self.measure_points, self.measurement_text = [], ""
        self.refresh()

    def _on_heatmap(self) -> None:
        self._overlay_shown = None
        self._update_overlay_input()

    def _update_overlay_input(self) -> None:
        """The heatmap, or its outline shell, as the overlay layer's image (set again only when it changed)."""
        volume = self.state.volume
        if volume is None or self.frame is None:
            return
        image = self.state.overlay_image(2 - self._normal_axis())  # ijk axis -> numpy (k, j, i) axis
        if image is not None and self.state.volume is not None and image is not self._overlay_shown:
            self._overlay_shown = image
            self.overlay_mapper.SetInputData(image_data(image, self.state.volume.affine))

    def _on_window(self) -> None:
        centre, width = self.state.window
        self.base_property.SetColorLevel(centre)
        self.base_property.SetColorWindow(width)
        self.refresh()

    def _on_overlay(self) -> None:
        state = self.state
        self._update_overlay_input()
        self.overlay_property.SetLookupTable(heatmap_lookup_table(state.overlay_threshold, state.overlay_opacity,
                                                                  outline=state.overlay_outline))
        self.refresh()

    def _overlay_in_plane(self) -> bool:
        """Whether the heatmap shows in this plane; reslicing an empty overlay costs ~4 ms a frame."""
        state = self.state
        if state.heatmap is None or not state.overlay_visible:
            return False
        if self.tilt_degrees or not state.heat_maxima:
            return True
        profile = state.heat_maxima[self._normal_axis()]
        index = self.slice_index()
        return 0 <= index < len(profile) and bool(profile[index] >= state.overlay_threshold)

    def refresh(self) -> None:
        """Place camera, crosshair, markers and texts for the current state, then render."""
        if self.state.volume is None or self.frame is None or self._closed:
            return
        frame, point = self.frame, self.state.crosshair
        projection = frame.direction_of_projection
        self.centre = self.centre + ((point - self.centre) @ projection) * projection
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*self.centre)
        camera.SetPosition(*(self.centre - projection * 1000.0))
        camera.SetViewUp(*frame.up)
        camera.SetParallelScale(self.half_height_mm)
        self.renderer.ResetCameraClippingRange()
        lift = -projection * 0.5  # draw lines just in front of the image plane
        reach = self.half_height_mm * 4
        self.crosshair.set_segments([(point - frame.right * reach + lift, point + frame.right * reach + lift),
                                     (point - frame.up * reach + lift, point + frame.up * reach + lift)]
                                    if self.state.crosshair_visible else [])
        self.markers.set_segments(self._marker_segments(point, projection, lift))
        self.overlay_slice.SetVisibility(self._overlay_in_plane())
        self._update_scale_bar(lift)
        self._update_measure(lift)
        self._update_texts()
        if self._driving or not self.isVisible():
            self._render_now()
        elif not self._render_timer.isActive():
            self._render_timer.start()

    def _render_now(self) -> None:
        self._render_timer.stop()
        if not self._closed:
            self.GetRenderWindow().Render()

    def shutdown(self) -> None:
        """Stop pending renders and release the GL context (the window is closing)."""
        self._render_timer.stop()
        self._closed = True
        self.Finalize()

    def _drive(self, change, *args) -> None:
        """Apply a state change caused by this view's input; this view renders immediately."""
        self._driving = True
        try:
            change(*args)
        finally:
            self._driving = False

    def _marker_segments(self, point: np.ndarray, projection: np.ndarray, lift: np.ndarray) -> list:
        """Rings around the markers cut by this plane, each labelled with its finding's number."""
        segments, labels = [], []
        for centre, radius, *label in self.state.markers:
            distance = (centre - point) @ projection
            if abs(distance) >= radius:
                continue
            ring = np.sqrt(radius**2 - distance**2) + 2.0  # a ring just outside the finding
            on_plane = centre - distance * projection + lift
            angles = np.linspace(0, 2 * np.pi, 33)
            circle = [on_plane + ring * (np.cos(a) * self.frame.right + np.sin(a) * self.frame.up) for a in angles]
            segments.extend(zip(circle[:-1], circle[1:]))
            if label:
                labels.append((str(label[0]), on_plane + ring * 0.75 * (self.frame.right + self.frame.up)))
        for actor, (text, where) in zip(self.marker_labels, labels):
            actor.SetInput(text)
            x, y = self._display_of(where)
            actor.SetPosition(x + 2, y + 2)
        for actor in self.marker_labels[len(labels):]:
            actor.SetInput("")
        return segments

    def _update_scale_bar(self, lift: np.ndarray) -> None:
        target = self.half_height_mm * 0.5
        length = max([s for s in SCALE_STEPS_MM if s <= target] or [SCALE_STEPS_MM[0]])
        width, height = self.GetRenderWindow().GetSize()
        half_width_mm = self.half_height_mm * width / max(height, 1)
        mm_per_pixel = self.half_height_mm * 2 / max(height, 1)
        # bottom left, in the view's margin just above the window/level text: not over the image,
        # clear of the bottom orientation letter and the cursor readout on the right
        start = (self.centre - self.frame.up * (self.half_height_mm - 30 * mm_per_pixel)
                 - self.frame.right * (half_width_mm - 8 * mm_per_pixel) + lift)
        end = start + self.frame.right * length
        tick = self.frame.up * 5 * mm_per_pixel
        self.scale_bar.set_segments([(start, end), (start, start + tick), (end, end + tick)])
        self.texts["scale"].SetInput(f"{length / 10:g} cm" if length >= 10 else f"{length} mm")
        x, y = self._display_of(end)
        self.texts["scale"].SetPosition(x + 6, y - 5)

    def _update_texts(self) -> None:
        volume, state = self.state.volume, self.state
        meta = volume.metadata
        k = self.slice_index()
        count = self.slice_count()
        axis, position = self.slice_position()
        patient = f"{meta.patient_name}\n{meta.patient_id}\n{meta.study_date}" if state.identifiers_visible else ""
        self.texts["top_left"].SetInput(patient)
        tilt = f"  tilt {self.tilt_degrees:+.0f} deg" if self.tilt_degrees else ""
        self.texts["top_right"].SetInput(f"{self.view.upper()}{tilt}\n{meta.series_description}\n"
                                         f"slice {k + 1}/{count}  {axis} {position:.1f} mm")
        self.texts["bottom_left"].SetInput(f"W {state.window[1]:.0f}  L {state.window[0]:.0f}")
        self.texts["bottom_right"].SetInput(self._cursor_text)
        self.texts["measure"].SetInput(self.measurement_text)
        width, height = self.GetRenderWindow().GetSize()
        letters = edge_letters(self.frame)
        placements = {"left": (6, height / 2), "right": (width - 24, height / 2), "top": (width / 2, height - 24),
                      "bottom": (width / 2, 30)}
        for edge, (x, y) in placements.items():
            self.texts[edge].SetInput(letters[edge])
            self.texts[edge].SetPosition(x, y)
        for name, (x, y, justify) in {"top_left": (6, height - 6, "top_left"),
                                      "top_right": (width - 6, height - 6, "top_right"),
                                      "bottom_left": (6, 6, "bottom_left"),
                                      "bottom_right": (width - 6, 6, "bottom_right"),
                                      "measure": (6, 48, "bottom_left")}.items():
            _justify(self.texts[name], justify)
            self.texts[name].SetPosition(x, y)

    # -- geometry helpers ---------------------------------------------------------------------
    def slice_index(self) -> int:
        """Index of the crosshair along this view's normal, in the volume's voxel steps."""
        ijk = self.state.volume.patient_to_voxel(self.state.crosshair)
        axis = self._normal_axis()
        return int(round(ijk[axis]))

    def slice_position(self) -> tuple[str, float]:
        """The plane's signed patient coordinate (DICOM LPS, as the cursor readout and the DICOM
        slice positions give it) on the patient axis the view's normal follows most."""
        axis = int(np.argmax(np.abs(self.frame.direction_of_projection)))
        return "xyz"[axis], float(self.state.crosshair[axis])

    def slice_count(self) -> int:
        return self.state.volume.shape[::-1][self._normal_axis()]

    def _normal_axis(self) -> int:
        return int(np.argmax(np.abs(self.state.volume.direction.T @ self.frame.direction_of_projection)))

    def step_mm(self) -> float:
        volume = self.state.volume
        return slice_step_mm(volume.spacing_mm, volume.direction, self.frame.direction_of_projection)

    def world_at(self, x: float, y: float) -> np.ndarray:
        """Patient mm on this view's plane under the Qt widget position (x, y)."""
        ratio = self.devicePixelRatioF()
        _, height = self.GetRenderWindow().GetSize()
        self.renderer.SetDisplayPoint(x * ratio, height - y * ratio, 0.0)
        self.renderer.DisplayToWorld()
        world = np.array(self.renderer.GetWorldPoint()[:3]) / (self.renderer.GetWorldPoint()[3] or 1.0)
        projection = self.frame.direction_of_projection
        return world + ((self.state.crosshair - world) @ projection) * projection

    def _display_of(self, world: np.ndarray) -> tuple[float, float]:
        self.renderer.SetWorldPoint(*world, 1.0)
        self.renderer.WorldToDisplay()
        x, y, _ = self.renderer.GetDisplayPoint()
        return x, y

    # -- actions ------------------------------------------------------------------------------
    def scroll(self, slices: int) -> None:
        step = self.step_mm()
        self._drive(self.state.set_crosshair, self.state.crosshair + self.frame.direction_of_projection * step * slices)

    def centre_on(self, point_mm: np.ndarray) -> None:
        """Pan so that `point_mm` is in the middle of the view."""
        self.centre = np.asarray(point_mm, dtype=float).copy()
        self.refresh()
        self.view_moved.emit()

    def tilt(self, degrees: float | None) -> None:
        """Turn the plane about its vertical axis (None: back to the acquired plane)."""
        self.tilt_degrees = 0.0 if degrees is None else self.tilt_degrees + degrees
        self.frame = self.base_frame.rotated(self.tilt_degrees)
        self._drive(self.refresh)

    def _update_measure(self, lift: np.ndarray) -> None:
        if len(self.measure_points) < 2:
            self.measure.set_segments([])
            return
        a, b = self.measure_points[0] + lift, self.measure_points[1] + lift
        if self.measure_kind == "ruler":
            self.measure.set_segments([(a, b)])
            self.measurement_text = f"distance {np.linalg.norm(b - a):.1f} mm"
        elif self.measure_kind == "roi":
            radius = float(np.linalg.norm(b - a))
            angles = np.linspace(0, 2 * np.pi, 49)
            circle = [a + radius * (np.cos(t) * self.frame.right + np.sin(t) * self.frame.up) for t in angles]
            self.measure.set_segments(list(zip(circle[:-1], circle[1:])))
            values = self._roi_values(self.measure_points[0], radius)
            if values.size:
                self.measurement_text = (f"ROI r {radius:.1f} mm: mean {values.mean():.1f} HU, "
                                         f"SD {values.std():.1f} HU, n={values.size}")

    def _roi_values(self, centre: np.ndarray, radius: float) -> np.ndarray:
        """HU of voxels within a disc on the plane (nearest voxel per sample point)."""
        volume = self.state.volume
        step = min(volume.spacing_mm[:2]) / 2
        offsets = np.arange(-radius, radius + step, step)
        u, v = np.meshgrid(offsets, offsets)
        inside = u**2 + v**2 <= radius**2
        points = centre + u[inside, None] * self.frame.right + v[inside, None] * self.frame.up
        ijk = np.rint(volume.patient_to_voxel(points)).astype(int)
        valid = np.all((ijk >= 0) & (ijk < np.array(volume.shape[::-1])), axis=1)
        ijk = np.unique(ijk[valid], axis=0)
        return volume.voxels[ijk[:, 2], ijk[:, 1], ijk[:, 0]].astype(float)

    # -- Qt events ----------------------------------------------------------------------------
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        self.setFocus()
        self.activated.emit(self.view)
        if self.state.volume is None:
            return
        button = event.button()
        kind = {Qt.MouseButton.LeftButton: "window", Qt.MouseButton.RightButton: "zoom",
                Qt.MouseButton.MiddleButton: "pan"}.get(button)
        tool = self.state.tool
        if button == Qt.MouseButton.LeftButton and tool in MEASURING_TOOLS:
            kind, self.measure_kind = "measure", tool
            self.measure_points = [self.world_at(event.position().x(), event.position().y())] * 2
        elif button == Qt.MouseButton.LeftButton and tool in POINTING_TOOLS:
            kind = "point"  # the awaited click: a little movement while clicking still counts
        elif button == Qt.MouseButton.LeftButton and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            kind = "crosshair"
            self._drive(self.state.set_crosshair, self.world_at(event.position().x(), event.position().y()))
        if kind:
            self._drag = (kind, event.position().toPoint(), (self.state.window, self.half_height_mm,
                                                             self.centre.copy(), False))

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.state.volume is None:
            return
        position = event.position()
        if self._drag is None:
            point = self.world_at(position.x(), position.y())
            value = self.state.value_at(point)
            self._cursor_text = "" if value is None else (
                f"{value:.0f} HU\n({point[0]:.1f}, {point[1]:.1f}, {point[2]:.1f}) mm")
            self._update_texts()
            self._render_now()
            return
        kind, start, (window, half_height, centre, _moved) = self._drag
        dx, dy = position.x() - start.x(), position.y() - start.y()
        self._drag = (kind, start, (window, half_height, centre, True))
        if kind == "window":
            level, width = window
            self._drive(self.state.set_window, level - dy * width / 400.0, width * float(np.exp(dx / 200.0)))
        elif kind == "zoom":
            self.half_height_mm = float(np.clip(half_height * np.exp(dy / 200.0), 5.0, 2000.0))
            self._drive(self.refresh)
            self.view_moved.emit()
        elif kind == "pan":
            mm_per_pixel = 2 * self.half_height_mm / max(1, self.height())
            self.centre = centre - (dx * self.frame.right - dy * self.frame.up) * mm_per_pixel
            self._drive(self.refresh)
            self.view_moved.emit()
        elif kind == "crosshair":
            self._drive(self.state.set_crosshair, self.world_at(position.x(), position.y()))
        elif kind == "measure":
            self.measure_points[1] = self.world_at(position.x(), position.y())
            self._drive(self.refresh)
            self.measurement_changed.emit(self.measurement_text)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is not None:
            kind, _start, (_w, _h, _c, moved) = self._drag
            self._drag = None
            point = self.world_at(event.position().x(), event.position().y())
            if kind == "window" and not moved:  # a click, not a drag: move the crosshair here
                self._drive(self.state.set_crosshair, point)
                self.point_clicked.emit(point)
            elif kind == "point":
                self.point_clicked.emit(point)  # the review controller places it and ends the tool
            elif kind == "measure":
                self.measurement_changed.emit(self.measurement_text)
                self.state.set_tool("crosshair")  # one measurement per D or O: the next click is a click
        self._drag = None

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        if self.state.volume is not None:
            self.activated.emit(self.view)
            self.scroll(1 if event.angleDelta().y() > 0 else -1)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        steps = {Qt.Key.Key_Up: 1, Qt.Key.Key_Down: -1, Qt.Key.Key_PageUp: 10, Qt.Key.Key_PageDown: -10}
        tilts = {Qt.Key.Key_BracketRight: 5.0, Qt.Key.Key_BracketLeft: -5.0, Qt.Key.Key_Backslash: None}
        if self.state.volume is not None and event.key() in steps:
            self.scroll(steps[event.key()])
        elif self.state.volume is not None and event.key() in tilts:
            self.tilt(tilts[event.key()])
        else:
            event.ignore()  # let the window's shortcuts see it

    def enterEvent(self, event) -> None:  # noqa: N802
        self.setFocus()
        super().enterEvent(event)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.refresh()


class _LineActor:
    """A set of line segments in patient mm, drawn as one actor."""

    def __init__(self, colour: tuple[float, float, float], width: float, renderer: vtkRenderer) -> None:
        self.polydata = vtkPolyData()
        mapper = vtkPolyDataMapper()
        mapper.SetInputData(self.polydata)
        self.actor = vtkActor()
        self.actor.SetMapper(mapper)
        self.actor.GetProperty().SetColor(*colour)
        self.actor.GetProperty().SetLineWidth(width)
        self.actor.GetProperty().LightingOff()
        renderer.AddActor(self.actor)

    def set_segments(self, segments: list) -> None:
        points, lines = vtkPoints(), vtkCellArray()
        for a, b in segments:
            first = points.InsertNextPoint(*a)
            second = points.InsertNextPoint(*b)
            lines.InsertNextCell(2)
            lines.InsertCellPoint(first)
            lines.InsertCellPoint(second)
        self.polydata.SetPoints(points)
        self.polydata.SetLines(lines)
        self.polydata.Modified()


def _reslice_layer(image_property: vtkImageProperty) -> tuple[vtkImageResliceMapper, vtkImageSlice]:
    mapper = vtkImageResliceMapper()
    mapper.SliceFacesCameraOn()
    mapper.SliceAtFocalPointOn()
    layer = vtkImageSlice()
    layer.SetMapper(mapper)
    layer.SetProperty(image_property)
    return mapper, layer


def _text(renderer: vtkRenderer, size: int) -> vtkTextActor:
    actor = vtkTextActor()
    actor.GetTextProperty().SetFontSize(size)
    actor.GetTextProperty().SetColor(0.92, 0.92, 0.85)
    actor.GetTextProperty().SetShadow(1)
    renderer.AddViewProp(actor)
    return actor


def _justify(actor: vtkTextActor, corner: str) -> None:
    prop = actor.GetTextProperty()
    vertical, horizontal = corner.split("_")
    prop.SetJustificationToRight() if horizontal == "right" else prop.SetJustificationToLeft()
    prop.SetVerticalJustificationToTop() if vertical == "top" else prop.SetVerticalJustificationToBottom()
