"""Colour map of the heatmap overlay: transparent below the threshold, yellow to red above (or, as
an outline, the shell of the region above the threshold)."""

from __future__ import annotations

from ui.render.vtk_shim import vtkLookupTable


def heatmap_lookup_table(threshold: float, opacity: float, entries: int = 256,
                         outline: bool = False) -> vtkLookupTable:
    """`outline`: the image is the shell of the region above the threshold (ViewerState.overlay_image),
    drawn opaque: a contour around the lesion, which stays visible."""
    table = vtkLookupTable()
    table.SetNumberOfTableValues(entries)
    table.SetRange(0.0, 1.0)
    for index in range(entries):
        value = index / (entries - 1)
        if value < threshold and not outline:
            table.SetTableValue(index, 0.0, 0.0, 0.0, 0.0)
            continue
        if outline:  # the image is the outline shell (0 or 1): opaque where it is
            table.SetTableValue(index, 1.0, 0.8, 0.0, 1.0 if value >= 0.5 else 0.0)
            continue
        strength = (value - threshold) / max(1e-6, 1.0 - threshold)
        table.SetTableValue(index, 1.0, 0.9 * (1.0 - strength), 0.0, opacity)
    table.Build()
    return table
