"""Read back what a VTK view shows (QWidget.grab() sees VTK views as black)."""

from __future__ import annotations

import numpy as np

from ui.render.vtk_shim import vtk_to_numpy, vtkWindowToImageFilter


def capture_rgb(render_window) -> np.ndarray:
    """(height, width, 3) uint8, row 0 at the top, of the window's current frame."""
    render_window.Render()
    grabber = vtkWindowToImageFilter()
    grabber.SetInput(render_window)
    grabber.SetInputBufferTypeToRGB()
    grabber.ReadFrontBufferOff()
    grabber.Update()
    image = grabber.GetOutput()
    width, height, _ = image.GetDimensions()
    pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, 3)
    return pixels[::-1].copy()
