"""Synthetic heatmaps on a Volume's grid, e.g. from ground-truth nodules of a phantom.

The AI (issue #4) produces real heatmaps; this one lets the viewer's overlay be built and
tested against known positions, and is labelled as ground truth wherever it is shown.
"""

from __future__ import annotations

import numpy as np

from workstation.imaging.volume import Volume


def blob_heatmap(volume: Volume, centres_mm: list, diameters_mm: list) -> np.ndarray:
    """float32 (slices, rows, columns) in 0..1: a smooth blob of each diameter at each centre."""
    heat = np.zeros(volume.shape, dtype=np.float32)
    spacing = np.array(volume.spacing_mm)
    for centre, diameter in zip(centres_mm, diameters_mm):
        sigma = max(diameter / 2.0, 2.0) / 1.5
        ijk = volume.patient_to_voxel(centre)
        reach = np.ceil(3 * sigma / spacing).astype(int)
        low = np.maximum(np.floor(ijk).astype(int) - reach, 0)
        high = np.minimum(np.ceil(ijk).astype(int) + reach + 1, np.array(volume.shape[::-1]))
        if np.any(high <= low):
            continue
        i, j, k = (np.arange(low[a], high[a]) for a in range(3))
        points = volume.voxel_to_patient(np.stack(np.meshgrid(i, j, k, indexing="ij"), axis=-1).reshape(-1, 3))
        distance2 = ((points - np.asarray(centre)) ** 2).sum(axis=1)
        blob = np.exp(-distance2 / (2 * sigma**2)).reshape(len(i), len(j), len(k)).transpose(2, 1, 0)
        region = heat[low[2]:high[2], low[1]:high[1], low[0]:high[0]]
        np.maximum(region, blob.astype(np.float32), out=region)
    return heat
