"""Resample an irregular slice stack (gantry tilt, uneven or missing slices) onto a regular grid.

The grid keeps the acquired slice planes' orientation (rows, columns, normal) so that nothing
is rotated; tilt becomes an in-plane shift per slice, uneven spacing a 1-D interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

AIR_HU = -1000
# Never make more than this many times the acquired slices (a huge gap would explode memory).
MAX_UPSAMPLING = 4


@dataclass(frozen=True)
class RegularGrid:
    voxels: np.ndarray  # (slices, rows, columns)
    origin_shift_index: tuple[int, int]  # (columns, rows) the grid origin moved, in source pixels
    slice_spacing_mm: float
    interpolated_slices: tuple[int, ...]


def choose_slice_spacing(along_mm: np.ndarray) -> float:
    """The finest acquired spacing, unless that would multiply the slice count too much."""
    gaps = np.diff(along_mm)
    finest = float(gaps.min())
    extent = float(along_mm[-1] - along_mm[0])
    if extent / finest + 1 <= MAX_UPSAMPLING * len(along_mm):
        return finest
    return float(np.median(gaps))


def resample_stack(stack: np.ndarray, along_mm: np.ndarray, offsets_index: np.ndarray, slice_spacing_mm: float,
                   check: Callable[[], None] = lambda: None) -> RegularGrid:
    """Place slices at `along_mm` (ascending, from 0) with in-plane `offsets_index` (columns, rows)
    onto a grid of `slice_spacing_mm`; linear interpolation between neighbouring slices."""
    n, rows, columns = stack.shape
    low = np.floor(offsets_index.min(axis=0) + 1e-6).astype(int)
    high = np.ceil(offsets_index.max(axis=0) - 1e-6).astype(int)
    out_rows, out_columns = rows + int(high[1] - low[1]), columns + int(high[0] - low[0])
    tilted = bool(np.any(high != low) or np.abs(offsets_index - low).max() > 1e-3)

    cache: dict[int, np.ndarray] = {}

    def placed(k: int) -> np.ndarray:
        if k not in cache:
            if len(cache) > 2:
                cache.pop(min(cache))
            source = stack[k].astype(np.float32)
            if tilted:
                from scipy import ndimage  # only tilted stacks need it; `info` starts faster without

                canvas = np.full((out_rows, out_columns), AIR_HU, dtype=np.float32)
                canvas[:rows, :columns] = source
                shift = (offsets_index[k, 1] - low[1], offsets_index[k, 0] - low[0])
                source = ndimage.shift(canvas, shift, order=1, cval=AIR_HU, prefilter=False)
            cache[k] = source
        return cache[k]

    count = int(math.floor(along_mm[-1] / slice_spacing_mm + 1e-6)) + 1
    out = np.empty((count, out_rows, out_columns), dtype=stack.dtype)
    interpolated = []
    for t in range(count):
        check()
        z = t * slice_spacing_mm
        a = int(np.clip(np.searchsorted(along_mm, z, side="right") - 1, 0, n - 2)) if n > 1 else 0
        if n == 1:
            out[t] = placed(0)
            continue
        weight = (z - along_mm[a]) / (along_mm[a + 1] - along_mm[a])
        tolerance = 0.05 * slice_spacing_mm / (along_mm[a + 1] - along_mm[a])
        if weight <= tolerance:
            value = placed(a)
        elif weight >= 1 - tolerance:
            value = placed(a + 1)
        else:
            value = (1 - weight) * placed(a) + weight * placed(a + 1)
            interpolated.append(t)
        out[t] = np.rint(value) if np.issubdtype(out.dtype, np.integer) else value
    return RegularGrid(out, (int(low[0]), int(low[1])), slice_spacing_mm, tuple(interpolated))
