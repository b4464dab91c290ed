"""Where each MPR view looks, in patient LPS millimetres, and how its edges are labelled.

Pure geometry shared by the viewer and the headless key images: a view is a plane through a
point with an orthonormal frame (right, up, normal). Views follow the Volume's own axes, so
a gantry-tilted series is shown in its acquired planes and the edge letters stay correct.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VIEWS = ("axial", "coronal", "sagittal")
# Radiological convention: patient left on screen right (axial, coronal), anterior up (axial),
# superior up (coronal, sagittal), anterior on the left (sagittal). LPS: +x=L, +y=P, +z=S.
_WANTED = {
    "axial": (np.array([1.0, 0, 0]), np.array([0, -1.0, 0])),
    "coronal": (np.array([1.0, 0, 0]), np.array([0, 0, 1.0])),
    "sagittal": (np.array([0, 1.0, 0]), np.array([0, 0, 1.0])),
}
_LETTERS = (("L", "R"), ("P", "A"), ("S", "I"))


@dataclass(frozen=True)
class ViewFrame:
    right: np.ndarray  # unit vector pointing to the screen's right edge
    up: np.ndarray  # unit vector pointing to the screen's top edge
    normal: np.ndarray  # right x up: points towards the viewer (the camera looks along -normal)

    @property
    def direction_of_projection(self) -> np.ndarray:
        """The direction the camera looks (VTK: right = projection x up)."""
        return np.cross(self.up, self.right)

    def rotated(self, degrees: float) -> "ViewFrame":
        """The same view turned about its vertical axis: an oblique plane."""
        angle = np.radians(degrees)
        right = np.cos(angle) * self.right + np.sin(angle) * np.cross(self.up, self.right)
        return ViewFrame(right, self.up, np.cross(right, self.up))


def view_frame(direction: np.ndarray, view: str) -> ViewFrame:
    """The frame of `view` built from the volume's axes (columns of `direction`)."""
    wanted_right, wanted_up = _WANTED[view]
    axes = [direction[:, i] / np.linalg.norm(direction[:, i]) for i in range(3)]
    right_index = int(np.argmax([abs(a @ wanted_right) for a in axes]))
    remaining = [i for i in range(3) if i != right_index]
    up_index = max(remaining, key=lambda i: abs(axes[i] @ wanted_up))
    right = axes[right_index] * np.sign(axes[right_index] @ wanted_right or 1.0)
    up = axes[up_index] * np.sign(axes[up_index] @ wanted_up or 1.0)
    return ViewFrame(right, up, np.cross(right, up))


def orientation_letters(vector: np.ndarray, threshold: float = 0.25) -> str:
    """Letters for a patient direction, strongest first, e.g. [0, 0.95, -0.32] -> 'PI'."""
    order = np.argsort(-np.abs(vector))
    return "".join(_LETTERS[axis][0 if vector[axis] > 0 else 1] for axis in order if abs(vector[axis]) > threshold)


def edge_letters(frame: ViewFrame) -> dict[str, str]:
    """Letters for the left, right, top and bottom edges of a view."""
    return {"right": orientation_letters(frame.right), "left": orientation_letters(-frame.right),
            "top": orientation_letters(frame.up), "bottom": orientation_letters(-frame.up)}


def slice_step_mm(spacing: tuple[float, float, float], direction: np.ndarray, normal: np.ndarray) -> float:
    """The voxel spacing along a view's normal (one wheel step moves one slice)."""
    weights = np.abs(direction.T @ normal)
    return float(np.asarray(spacing) @ (weights / weights.sum()))
