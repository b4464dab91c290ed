"""Colour map of the heatmap overlay: transparent below the threshold, yellow to red above (or, as
an outline, only a narrow band just above the threshold)."""

from __future__ import annotations

from ui.render.vtk_shim import vtkLookupTable


OUTLINE_BAND = 0.08  # the band of heat just above the threshold that draws the outline


def heatmap_lookup_table(threshold: float, opacity: float, entries: int = 256,
                         outline: bool = False) -> vtkLookupTable:
    """`outline`: only a narrow band of values just above the threshold is coloured (opaque); the
    smooth heatmap, linearly interpolated, turns that band into a contour around the lesion."""
    table = vtkLookupTable()
    table.SetNumberOfTableValues(entries)
    table.SetRange(0.0, 1.0)
    for index in range(entries):
        value = index / (entries - 1)
        if value < threshold:
            table.SetTableValue(index, 0.0, 0.0, 0.0, 0.0)
            continue
        if outline:
            inside_band = value < threshold + OUTLINE_BAND
            table.SetTableValue(index, 1.0, 0.8, 0.0, 1.0 if inside_band else 0.0)
            continue
        strength = (value - threshold) / max(1e-6, 1.0 - threshold)
        table.SetTableValue(index, 1.0, 0.9 * (1.0 - strength), 0.0, opacity)
    table.Build()
    return table
