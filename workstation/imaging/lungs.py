"""Where the aerated lungs are in a CT volume, on a coarse search grid: one rule for the runner's
lung crop (`workstation.inference.preprocess`) and for where synthetic nodules may be inserted
(`insertion_sites.LungMap`), so that an evaluation never puts a nodule where the runner's
lungs are not, nor the other way round."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from workstation.imaging.volume import Volume

LUNG_HU = -400.0  # below this inside the body: aerated lung (and airways)
SEARCH_VOXEL_MM = 4.0  # the lung search's grid: every n-th voxel along each axis, n voxels at most this many mm
MAX_SEARCH_STEP = 4
ROOM_AIR_MARGIN_HU = 60.0  # aerated lung's median HU is at least this far above the room air's
ROOM_AIR_FLOOR_HU = -1030.0  # resampled crops undershoot -1000; this deep, it is still air
MIN_LUNG_SHARE = 0.02  # a piece of lung smaller than this share of the largest is noise, or gas elsewhere


def search_lungs(volume: Volume) -> tuple[np.ndarray | None, np.ndarray]:
    """(the aerated lung on the search grid or None, the grid's (k, j, i) step in voxels)."""
    step = search_step(volume.spacing_mm)
    return aerated_lung(volume.voxels[::step[0], ::step[1], ::step[2]]), step


def search_step(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """(k, j, i) steps of the lung search: as many voxels as fit in SEARCH_VOXEL_MM, 1 to 4."""
    per_axis = np.floor(SEARCH_VOXEL_MM / np.array(spacing_mm[::-1], dtype=float) + 1e-6)
    return np.clip(per_axis, 1, MAX_SEARCH_STEP).astype(int)


def aerated_lung(coarse: np.ndarray) -> np.ndarray | None:
    """The aerated lung on the search grid, None when there is none. No morphology: an opening
    one search voxel wide erased most of the lungs through thick slices."""
    air = coarse < LUNG_HU
    labels, count = ndimage.label(air)
    if count == 0:
        return None
    index = np.arange(1, count + 1)
    medians = np.asarray(ndimage.median(coarse, labels, index), dtype=float)
    # room air is the darkest thing in a scan; where none is in view (a crop inside the body) the
    # darkest percent is the lungs' own, and they still clear the margin above it
    room = max(float(np.percentile(coarse[::2, ::2, ::2], 1)), ROOM_AIR_FLOOR_HU)
    sizes = np.asarray(ndimage.sum(air, labels, index), dtype=float)
    lung = medians > room + ROOM_AIR_MARGIN_HU
    if not lung.any():
        return None
    lung &= sizes >= MIN_LUNG_SHARE * sizes[lung].max()
    return np.isin(labels, index[lung])
