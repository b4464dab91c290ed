"""Rendering at a fixed size, checked pixel by pixel (VTK frames read back, not QWidget.grab)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ui.controllers.study_opening import viewer_load_job
from ui.main_window import MainWindow
from ui.render.capture import capture_rgb
from workstation.demo import truth_overlay
from workstation.imaging.windowing import PRESETS
from workstation.jobs import CancelToken, run_job

SIZE = 512


def _fixed_size(window: MainWindow, qtbot) -> None:
    window.viewing.toggle_layout() if not window.viewing.single_layout else None
    for view in window.views.values():
        view.setFixedSize(SIZE, SIZE) if view.isVisible() else None
    qtbot.wait(50)


def _pixel_of(view, point_mm: np.ndarray) -> tuple[int, int]:
    """(row, column) in a captured frame of a patient point on the view's plane."""
    x, y = view._display_of(point_mm)
    _, height = view.GetRenderWindow().GetSize()
    return int(round(height - 1 - y)), int(round(x))


def test_lung_is_dark_at_lung_window_and_black_at_mediastinal(loaded: MainWindow, qtbot) -> None:
    loaded.viewing.active_view = "axial"
    _fixed_size(loaded, qtbot)
    axial = loaded.views["axial"]
    volume = loaded.state.volume
    k = axial.slice_index()
    plane = volume.voxels[k]
    from scipy import ndimage

    lung = np.argwhere(ndimage.binary_erosion(plane < -750, iterations=3))
    soft = np.argwhere(ndimage.binary_erosion((plane > 0) & (plane < 100), iterations=3))
    lung_point = volume.voxel_to_patient((lung[len(lung) // 2][1], lung[len(lung) // 2][0], k))
    soft_point = volume.voxel_to_patient((soft[len(soft) // 2][1], soft[len(soft) // 2][0], k))
    loaded.state.set_overlay(visible=False)
    loaded.state.set_window(*PRESETS["lung"])
    frame = capture_rgb(axial.GetRenderWindow())
    lung_grey = frame[_pixel_of(axial, lung_point)].mean()
    soft_grey = frame[_pixel_of(axial, soft_point)].mean()
    # (-850 + 1350) / 1500 * 255 = 85 for lung; soft tissue (~40 HU) is much brighter
    assert 50 < lung_grey < 120 and soft_grey > lung_grey + 80
    loaded.state.set_window(*PRESETS["mediastinum"])
    frame = capture_rgb(axial.GetRenderWindow())
    assert frame[_pixel_of(axial, lung_point)].mean() < 15


def test_overlay_colour_appears_at_the_nodule_and_nowhere_far(loaded: MainWindow, small_phantom_dir: Path,
                                                             qtbot) -> None:
    truth = json.loads((small_phantom_dir / "truth.json").read_text())
    nodule = max(truth["nodules"], key=lambda n: n["diameter_mm"])
    volume = loaded.state.volume
    heatmap, markers = truth_overlay(volume, {"nodules": [nodule]})
    loaded.state.set_volume(volume, heatmap, markers)
    loaded.viewing.active_view = "axial"
    _fixed_size(loaded, qtbot)
    centre = np.array(nodule["centre_mm"])
    loaded.state.set_crosshair(centre)
    loaded.state.set_overlay(visible=True, opacity=0.8, threshold=0.3)
    axial = loaded.views["axial"]
    with_overlay = capture_rgb(axial.GetRenderWindow()).astype(int)
    loaded.state.set_overlay(visible=False)
    without = capture_rgb(axial.GetRenderWindow()).astype(int)
    # yellow to red over grey: the pixel is no longer grey (red keeps above blue)
    changed = (np.abs(with_overlay - without).sum(axis=2) > 40) & (with_overlay[..., 0] > with_overlay[..., 2] + 30)
    assert changed.sum() > 10
    rows, columns = np.nonzero(changed)
    row, column = _pixel_of(axial, centre)
    pixels_per_mm = SIZE / (2 * axial.half_height_mm)
    distance_mm = np.hypot(rows - row, columns - column) / pixels_per_mm
    assert distance_mm.min() < 2.0  # colour sits on the nodule...
    assert distance_mm.max() < 1.5 * nodule["diameter_mm"]  # ...and nowhere far from it


def test_orientation_letters_follow_the_gantry_tilt(window: MainWindow, real_ct: Path, qtbot) -> None:
    result = run_job(viewer_load_job([real_ct / "head-gantry-tilt"], window.home, None, CancelToken()))
    window.opening.on_loaded(result)
    axial = window.views["axial"]
    letters = {edge: axial.texts[edge].GetInput() for edge in ("left", "right", "top", "bottom")}
    # acquired planes tilted 18.5 degrees: the top of the image is anterior and a little superior
    assert letters == {"left": "R", "right": "L", "top": "AS", "bottom": "PI"}
    sagittal = {edge: window.views["sagittal"].texts[edge].GetInput() for edge in ("left", "right", "top", "bottom")}
    assert sagittal["left"].startswith("A") and sagittal["right"].startswith("P")
    assert sagittal["top"].startswith("S") and sagittal["bottom"].startswith("I")
    coronal = {edge: window.views["coronal"].texts[edge].GetInput() for edge in ("left", "right")}
    assert coronal == {"left": "R", "right": "L"}


def test_the_3d_view_opens_filled_by_the_body_not_by_the_field_of_view(loaded: MainWindow, qtbot) -> None:
    """The camera fits the body (voxels above -500 HU), not the scanner's whole field of view with
    the air around the patient, so the 3D view is not a small figure in the middle of its pane."""
    view = loaded.views["3d"]
    view.setFixedSize(SIZE, SIZE)
    qtbot.wait(50)
    loaded.state.set_volume(loaded.state.volume)  # the camera is set up for the new size
    view.GetRenderWindow().Render()
    frame = capture_rgb(view.GetRenderWindow()).astype(int)
    drawn = np.abs(frame - frame[0, 0]).sum(axis=-1) > 30  # differs from the background corner
    rows, columns = np.nonzero(drawn.any(axis=1))[0], np.nonzero(drawn.any(axis=0))[0]
    height, width = np.ptp(rows) + 1, np.ptp(columns) + 1
    assert max(height, width) >= 0.75 * SIZE and height < SIZE and width < SIZE, (height, width)
