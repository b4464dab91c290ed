"""Bring a Volume to what a model expects: its spacing, the lung region only, HU scaled to 0..1."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from workstation.imaging.lungs import LUNG_HU, search_lungs  # noqa: F401  (LUNG_HU: part of this module's API)
from workstation.imaging.volume import Volume

CROP_MARGIN_MM = 12.0
@dataclass(frozen=True, eq=False)
class LungCrop:
    """A box (k, j, i slices) of the volume's own grid that holds both lungs plus a margin; the
    volume of aerated lung found (0 when none was: the box is then the whole volume); and the
    lungs found on the search grid (every `search_step` voxels along k, j, i), None when none was."""

    box: tuple[slice, slice, slice]
    lung_ml: float = 0.0
    lung_mask: np.ndarray | None = None
    search_step: tuple[int, int, int] = (1, 1, 1)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(s.stop - s.start for s in self.box)  # type: ignore[return-value]


def lung_crop(volume: Volume) -> LungCrop:
    """Bounding box of the lungs: the air inside the body, told from the air around the patient.

    Searched (`workstation.imaging.lungs`) on a grid of every n-th voxel per axis, n chosen in
    millimetres (at most SEARCH_VOXEL_MM, so one step never skips a chest wall or, through 5-8 mm slices, a whole
    slab of lung). An air region (below LUNG_HU) is lung when its median HU is clearly above the
    room air's (aerated lung is about -850, room air -1000): that keeps the air around the patient,
    bowel gas and the trachea out whether or not they touch the image border, and keeps lungs that
    do touch it in, as they do when the field of view cuts through the body. Pieces smaller than
    MIN_LUNG_SHARE of the largest are left out. Falls back to the whole volume if no lung is
    found, so a study that is not a chest still runs (the scope check says why its results may
    not hold).
    """
    spacing = np.array(volume.spacing_mm[::-1])  # (k, j, i)
    keep, step = search_lungs(volume)
    if keep is None:
        return LungCrop(tuple(slice(0, n) for n in volume.shape))  # type: ignore[arg-type]
    k, j, i = np.nonzero(keep)
    margin = np.ceil(CROP_MARGIN_MM / spacing).astype(int)
    low = np.maximum(np.array([k.min(), j.min(), i.min()]) * step - margin, 0)
    high = np.minimum((np.array([k.max(), j.max(), i.max()]) + 1) * step + margin, volume.shape)
    lung_ml = float(k.size * np.prod(spacing * step) / 1000)  # coarse voxels -> ml
    return LungCrop(tuple(slice(int(a), int(b)) for a, b in zip(low, high)), lung_ml,  # type: ignore[arg-type]
                    keep, tuple(int(s) for s in step))  # type: ignore[arg-type]


def search_voxel_mm(crop: LungCrop, spacing_mm: tuple[float, float, float]) -> float:
    """The largest edge of the lung search's voxels: through thick slices, the z step."""
    return float(max(np.array(spacing_mm[::-1]) * np.array(crop.search_step)))


def distance_to_lung_mm(crop: LungCrop, spacing_mm: tuple[float, float, float], index_kji: np.ndarray) -> np.ndarray:
    """Distance (mm) from each (k, j, i) voxel position of the volume's grid to the nearest
    aerated lung found by the search (0 inside it), known to within half a search voxel
    (`search_voxel_mm`); NaN when no lung was found."""
    points = np.atleast_2d(np.asarray(index_kji, dtype=float))
    if crop.lung_mask is None:
        return np.full(len(points), np.nan)
    step = np.array(crop.search_step)
    distance = ndimage.distance_transform_edt(~crop.lung_mask, sampling=np.array(spacing_mm[::-1]) * step)
    coarse = np.clip(np.rint(points / step).astype(int), 0, np.array(distance.shape) - 1)
    return distance[tuple(coarse.T)]


def zoom_factors(spacing_mm: tuple[float, float, float], target_mm: tuple[float, float, float]) -> np.ndarray:
    """Per (k, j, i) axis: output voxels per input voxel."""
    return np.array(spacing_mm[::-1]) / np.array(target_mm[::-1])


def normalise(hu, window: tuple[float, float]):
    """HU clipped to the model's window and scaled to 0..1 (works on numpy and torch)."""
    low, high = window
    return ((hu.clip(low, high) - low) / (high - low))


def model_grid_image(volume: Volume, crop: LungCrop, model_spacing_mm: tuple[float, float, float],
                     hu_window: tuple[float, float]):
    """(1, 1, z, y, x) float32 torch tensor: the lung box, HU windowed to 0..1 and resampled
    (trilinear) to the model spacing - what the network sees, in inference and training alike."""
    import torch

    region = torch.from_numpy(np.ascontiguousarray(volume.voxels[crop.box], dtype=np.float32))
    factors = zoom_factors(volume.spacing_mm, model_spacing_mm)
    shape = [max(8, int(round(n * f))) for n, f in zip(crop.shape, factors)]  # at least 8 per axis
    return torch.nn.functional.interpolate(normalise(region, hu_window)[None, None], size=shape,
                                           mode="trilinear", align_corners=False)


def model_grid_index(index_kji: np.ndarray, crop: LungCrop, model_shape) -> np.ndarray:
    """A (k, j, i) position on the volume's grid -> the same point on the resampled model grid
    (trilinear resampling with align_corners=False maps voxel centres this way)."""
    scale = np.array(model_shape, dtype=float) / np.array(crop.shape, dtype=float)
    start = np.array([s.start for s in crop.box], dtype=float)
    return (np.asarray(index_kji, dtype=float) - start + 0.5) * scale - 0.5


def patch_at(array: np.ndarray, centre, size) -> np.ndarray:
    """The `size` block centred on `centre` (rounded), zero beyond the array's edges (even wholly
    outside it: a candidate at the crop's edge still gets a patch of the right shape)."""
    low = np.rint(np.asarray(centre, dtype=float)).astype(int) - np.array(size) // 2
    starts = [int(np.clip(a, 0, n)) for a, n in zip(low, array.shape)]
    stops = [int(np.clip(a + p, 0, n)) for a, p, n in zip(low, size, array.shape)]
    block = array[tuple(slice(a, b) for a, b in zip(starts, stops))]
    before = [int(np.clip(a - lo, 0, p)) for a, lo, p in zip(starts, low, size)]
    return np.pad(block, [(b, p - b - n) for b, p, n in zip(before, size, block.shape)])
