"""Colour map of the heatmap overlay: transparent below the threshold, yellow to red above."""

from __future__ import annotations

from ui.render.vtk_shim import vtkLookupTable


def heatmap_lookup_table(threshold: float, opacity: float, entries: int = 256) -> vtkLookupTable:
    table = vtkLookupTable()
    table.SetNumberOfTableValues(entries)
    table.SetRange(0.0, 1.0)
    for index in range(entries):
        value = index / (entries - 1)
        if value < threshold:
            table.SetTableValue(index, 0.0, 0.0, 0.0, 0.0)
            continue
        strength = (value - threshold) / max(1e-6, 1.0 - threshold)
        table.SetTableValue(index, 1.0, 0.9 * (1.0 - strength), 0.0, opacity)
    table.Build()
    return table
