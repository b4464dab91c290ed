"""The 3D view: volume rendering with presets, the crosshair as a sphere, the heatmap as a
translucent surface. The mapper is chosen by the OpenGL renderer: on software OpenGL (Mesa
llvmpipe, as on CI and many clinic laptops) VTK's fixed-point CPU ray caster measured 3-5x
faster than the GPU ray-cast mapper; on a real GPU the GPU mapper wins."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer, Signal

from ui.render.vtk_shim import (
    QVTKRenderWindowInteractor, vtkActor, vtkColorTransferFunction, vtkFixedPointVolumeRayCastMapper,
    vtkFlyingEdges3D, vtkInteractorStyleTrackballCamera, vtkOpenGLGPUVolumeRayCastMapper, vtkPiecewiseFunction,
    vtkPolyDataMapper, vtkRenderer, vtkSphereSource, vtkVolume, vtkVolumeProperty, image_data,
)
from ui.state import ViewerState

# preset -> (colour points (HU, r, g, b), opacity points (HU, alpha))
PRESETS_3D: dict[str, tuple[list, list]] = {
    "lung": ([(-1000, 0.0, 0.0, 0.0), (-900, 0.45, 0.55, 0.75), (-600, 0.75, 0.6, 0.6), (200, 0.9, 0.5, 0.4),
              (600, 1.0, 1.0, 0.95)],
             [(-1000, 0.0), (-930, 0.0), (-850, 0.012), (-650, 0.03), (-450, 0.0), (250, 0.0), (600, 0.12),
              (1200, 0.3)]),
    "bone": ([(-1000, 0, 0, 0), (150, 0.9, 0.8, 0.6), (700, 1.0, 1.0, 0.95), (2000, 1, 1, 1)],
             [(-1000, 0.0), (150, 0.0), (300, 0.15), (700, 0.6), (2000, 0.9)]),
    "soft tissue": ([(-1000, 0, 0, 0), (-200, 0.8, 0.55, 0.4), (40, 0.9, 0.4, 0.35), (400, 1.0, 0.95, 0.9)],
                    [(-1000, 0.0), (-300, 0.0), (-100, 0.05), (60, 0.25), (400, 0.4)]),
}
SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")
# While the crosshair moves the 3D view follows a few times a second at reduced sampling,
# then renders once at full quality when the user stops.
FOLLOW_RENDER_MS = 500
STILL_RENDER_MS = 600
RENDER_VOXEL_MM = 1.5
BODY_HU = -500  # above this: the body (and the table), not the air around it
FIT_ZOOM = 1.3  # the body's box seen face on fills about 85% of a square view


def body_bounds(voxels: np.ndarray, affine: np.ndarray) -> tuple[float, ...] | None:
    """World (x0, x1, y0, y1, z0, z1) bounds of the voxels above BODY_HU, None when there are none."""
    body = voxels > BODY_HU
    extents = [np.flatnonzero(body.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]  # k, j, i
    if not len(extents[0]):
        return None
    low = np.array([e[0] for e in extents[::-1]]) - 0.5  # (i, j, k) voxel edges
    high = np.array([e[-1] for e in extents[::-1]]) + 0.5
    corners = np.array([[a, b, c, 1.0] for a in (low[0], high[0]) for b in (low[1], high[1])
                        for c in (low[2], high[2])]) @ affine.T
    return tuple(float(v) for axis in range(3) for v in (corners[:, axis].min(), corners[:, axis].max()))


def uses_software_opengl(render_window) -> bool:
    capabilities = (render_window.ReportCapabilities() or "").lower()
    return any(name in capabilities for name in SOFTWARE_RENDERERS)


class VolumeView(QVTKRenderWindowInteractor):
    activated = Signal(str)
    view = "3d"

    def __init__(self, state: ViewerState, parent=None) -> None:
        super().__init__(parent)
        self.state = state
        self.renderer = vtkRenderer()
        self.renderer.SetBackground(0.05, 0.05, 0.07)
        self.GetRenderWindow().AddRenderer(self.renderer)
        self.GetRenderWindow().SetMultiSamples(0)
        interactor = self.GetRenderWindow().GetInteractor()
        interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        interactor.SetDesiredUpdateRate(15.0)  # VTK lowers sampling while the user drags
        interactor.SetStillUpdateRate(0.5)
        self.volume_property = vtkVolumeProperty()
        self.volume_property.ShadeOff()
        self.volume_property.SetInterpolationTypeToLinear()
        self.volume_actor = vtkVolume()
        self.volume_actor.SetProperty(self.volume_property)
        self.mapper = None
        self.mapper_name = ""
        self.preset = "lung"
        sphere = vtkSphereSource()
        sphere.SetRadius(3.0)
        sphere.SetThetaResolution(16)
        sphere.SetPhiResolution(16)
        self.sphere = sphere
        self.crosshair_actor = _actor(sphere.GetOutputPort(), (1.0, 0.85, 0.2), 1.0)
        self.heat_surface = vtkFlyingEdges3D()
        self.heat_actor = _actor(self.heat_surface.GetOutputPort(), (1.0, 0.25, 0.1), 0.5)
        self.heat_actor.SetVisibility(False)
        for actor in (self.crosshair_actor, self.heat_actor):
            self.renderer.AddActor(actor)
        self._closed = False
        self._grid = None
        self._rendered = None
        self._body: tuple[float, ...] | None = None
        self._holding = False
        self._still_pending = False
        self._follow_timer = _single_shot(self, FOLLOW_RENDER_MS, lambda: self._render(interactive=True))
        self._still_timer = _single_shot(self, STILL_RENDER_MS, lambda: self._render(interactive=False))
        state.volume_changed.connect(self._on_volume)
        state.crosshair_changed.connect(self._on_crosshair)
        state.overlay_changed.connect(self._on_overlay)
        state.heatmap_changed.connect(self._on_heatmap)

    def warm_up(self) -> None:
        """Pick the mapper (needs a realised GL context) before the first study arrives."""
        if not self._closed:
            self._choose_mapper()

    def _choose_mapper(self) -> None:
        if self.mapper is not None:
            return
        self.GetRenderWindow().Render()
        if uses_software_opengl(self.GetRenderWindow()):
            self.mapper = vtkFixedPointVolumeRayCastMapper()
            self.mapper.SetAutoAdjustSampleDistances(1)
            self.mapper_name = "CPU ray caster (software OpenGL)"
        else:
            self.mapper = vtkOpenGLGPUVolumeRayCastMapper()
            self.mapper.SetAutoAdjustSampleDistances(1)
            self.mapper_name = "GPU ray caster"
        self.volume_actor.SetMapper(self.mapper)

    def _on_volume(self) -> None:
        volume = self.state.volume
        if volume is None or self._closed:
            return
        self._choose_mapper()
        # About 1.5 mm voxels keep CPU ray casting interactive (and its first frame, which
        # precomputes gradients, short); the slice views keep full detail.
        step = np.maximum(1, np.floor(RENDER_VOXEL_MM / np.array(volume.spacing_mm[::-1]))).astype(int)
        voxels = np.ascontiguousarray(volume.voxels[::step[0], ::step[1], ::step[2]])
        affine = volume.affine.copy()
        affine[:3, :3] *= step[::-1]
        self._rendered = image_data(voxels, affine)
        self.mapper.SetInputData(self._rendered)
        if self.renderer.GetVolumes().GetNumberOfItems() == 0:
            self.renderer.AddVolume(self.volume_actor)
        self.set_preset(self.preset, render=False)
        self._grid = (step, affine)
        self._body = body_bounds(voxels, affine)
        self._on_heatmap()
        self.reset_view(render=False)
        self._on_overlay()
        self._on_crosshair()

    def reset_view(self, render: bool = True) -> None:
        """Seen from the front, head up, the body filling the view."""
        if self._rendered is None:
            return
        self.renderer.ResetCamera()
        camera = self.renderer.GetActiveCamera()
        camera.SetViewUp(0, 0, 1)
        centre = np.array(camera.GetFocalPoint())
        camera.SetPosition(*(centre - np.array([0, 1, 0]) * camera.GetDistance()))  # from the front
        # Fit the body, not the field of view and its air; VTK fits the bounds' sphere, which
        # leaves a wide margin around a box seen face on
        self.renderer.ResetCamera(self._body or self._rendered.GetBounds())
        camera.Zoom(FIT_ZOOM)
        if render:
            self._render(interactive=False)

    def _on_heatmap(self) -> None:
        """The heat surface from the same coarser grid as the ray caster: 10x cheaper."""
        if self.state.heatmap is None or self._grid is None:
            return
        step, affine = self._grid
        heat = np.ascontiguousarray(self.state.heatmap[::step[0], ::step[1], ::step[2]])
        self.heat_surface.SetInputData(image_data(heat, affine))

    def set_preset(self, name: str, render: bool = True) -> None:
        self.preset = name
        colours, opacities = PRESETS_3D[name]
        colour = vtkColorTransferFunction()
        for hu, r, g, b in colours:
            colour.AddRGBPoint(hu, r, g, b)
        opacity = vtkPiecewiseFunction()
        for hu, alpha in opacities:
            opacity.AddPoint(hu, alpha)
        self.volume_property.SetColor(colour)
        self.volume_property.SetScalarOpacity(opacity)
        if render:
            self._render(interactive=False)

    def _on_crosshair(self) -> None:
        if self._closed:
            return
        self.sphere.SetCenter(*self.state.crosshair)
        self._schedule_render()

    def shutdown(self) -> None:
        self._follow_timer.stop()
        self._still_timer.stop()
        self._closed = True
        self.Finalize()

    def hold_full_quality(self, hold: bool) -> None:
        """While a job runs, full-quality frames (~100+ ms of CPU ray casting) wait, so the
        GUI stays responsive; the frame is rendered when the hold ends."""
        self._holding = hold
        if not hold and self._still_pending:
            self._still_timer.start()

    def _render(self, interactive: bool) -> None:
        if self._closed:
            return
        if not interactive and self._holding:
            self._still_pending = True
            return
        self._still_pending = False
        window = self.GetRenderWindow()
        window.SetDesiredUpdateRate(15.0 if interactive else 0.5)
        window.Render()

    def _on_overlay(self) -> None:
        state = self.state
        visible = state.heatmap is not None and state.overlay_visible
        if visible:
            self.heat_surface.SetValue(0, max(state.overlay_threshold, 0.01))
            self.heat_actor.GetProperty().SetOpacity(max(0.15, state.overlay_opacity))
        self.heat_actor.SetVisibility(visible)
        self._schedule_render()

    def _schedule_render(self) -> None:
        """A quick render soon, a full-quality one when changes stop (never in the caller's event)."""
        if not self._follow_timer.isActive():
            self._follow_timer.start()
        self._still_timer.start()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        self.activated.emit(self.view)
        super().mousePressEvent(event)


def _single_shot(parent, milliseconds: int, slot) -> QTimer:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(milliseconds)
    timer.timeout.connect(slot)
    return timer


def _actor(port, colour: tuple[float, float, float], opacity: float) -> vtkActor:
    mapper = vtkPolyDataMapper()
    mapper.SetInputConnection(port)
    mapper.ScalarVisibilityOff()
    actor = vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(*colour)
    actor.GetProperty().SetOpacity(opacity)
    return actor
