"""Where a synthetic nodule can go in a real CT: the lungs, and sites free in the parenchyma,
against a real vessel or against the pleura, away from regions to avoid (labelled lesions).

The lungs here are the runner's (`workstation.imaging.lungs`, found on its coarse search grid),
traced on the volume's own grid: an air region counts as lung when it is aerated lung (median
about -850 HU, clearly above the air around a patient) and most of it lies in the lungs the runner
finds. Without that second rule, smoothed air under the table and gas in the colon passed the
first one, and 6 of the 86 nodules of the real-CT evaluation were "inserted" there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from workstation.imaging.lungs import search_lungs
from workstation.imaging.volume import Volume

AIR_HU = -400.0
LUNG_ABOVE_ROOM_AIR_HU = 50.0  # an air region whose median is within this of room air is the room (or the trachea)
MIN_LUNG_ML = 30.0
MIN_SHARE_IN_RUNNER_LUNG = 0.5
VESSEL_HU = -300.0


@dataclass(frozen=True)
class LungMap:
    """The lungs of a real volume on its own grid: `lung` holds the vessels inside it (holes
    filled slice by slice), `aerated` only the air; distance to the lung's edge in mm."""

    lung: np.ndarray
    aerated: np.ndarray
    depth_mm: np.ndarray  # distance inside `lung` to its edge (0 outside)

    @classmethod
    def from_volume(cls, volume: Volume) -> "LungMap":
        spacing = np.array(volume.spacing_mm[::-1])  # (k, j, i)
        smooth = ndimage.gaussian_filter(volume.voxels.astype(np.float32), (0, 0.7, 0.7))
        air = smooth < AIR_HU
        labels, count = ndimage.label(air)
        keep = np.zeros(count + 1, dtype=bool)
        if count:
            index = np.arange(1, count + 1)
            sizes = ndimage.sum(air, labels, index) * np.prod(spacing) / 1000
            medians = ndimage.median(smooth, labels, index)
            # room air is the darkest thing in a scan (-1000 here, -1030 in a resampled crop):
            # lung is aerated tissue, clearly brighter than it, whether or not it touches the border
            room = max(float(np.percentile(smooth[::2, ::4, ::4], 1)), -1030.0)
            keep[1:] = (sizes >= MIN_LUNG_ML) & (medians > room + LUNG_ABOVE_ROOM_AIR_HU)
            keep[1:] &= _share_in(labels, count, *search_lungs(volume)) >= MIN_SHARE_IN_RUNNER_LUNG
        aerated = keep[labels]
        lung = np.stack([ndimage.binary_fill_holes(s) for s in aerated])
        lung = ndimage.binary_closing(lung, structure=np.ones((1, 5, 5)), border_value=0) | lung
        depth = ndimage.distance_transform_edt(lung, sampling=spacing).astype(np.float32)
        return cls(lung, aerated, depth)


def _share_in(labels: np.ndarray, count: int, coarse_lung: np.ndarray | None, step: np.ndarray) -> np.ndarray:
    """Per label 1..count: the share of its voxels on the search grid that lie in `coarse_lung`."""
    if coarse_lung is None:
        return np.zeros(count)
    sampled = labels[::step[0], ::step[1], ::step[2]]
    index = np.arange(1, count + 1)
    total = ndimage.sum(np.ones(sampled.shape), sampled, index)
    inside = ndimage.sum(coarse_lung, sampled, index)
    return np.divide(inside, total, out=np.zeros(count), where=total > 0)


def inside_box_mm(point_mm: np.ndarray, boxes: list[tuple[np.ndarray, np.ndarray]], margin_mm: float) -> bool:
    """Whether a point lies within `margin_mm` of any (min, max) LPS box."""
    for low, high in boxes:
        if np.all(point_mm >= np.asarray(low) - margin_mm) and np.all(point_mm <= np.asarray(high) + margin_mm):
            return True
    return False


def choose_site(volume: Volume, lungs: LungMap, diameter_mm: float, attached_to: str, rng: np.random.Generator,
                avoid: list[tuple[np.ndarray, np.ndarray]] = (), tries: int = 400) -> np.ndarray | None:
    """A centre (LPS mm) for a nodule of `diameter_mm`: "none" deep in aerated lung, "vessel" one
    radius from a real vessel voxel deep in the lung (so they overlap), "pleura" 0.85 radius in from
    the lung's edge. Never within a nodule's radius plus 10 mm of an `avoid` box; None if no site fits."""
    radius = diameter_mm / 2
    spacing = np.array(volume.spacing_mm[::-1])
    if attached_to == "pleura":
        pool = np.argwhere((lungs.depth_mm > 0) & (lungs.depth_mm <= 1.5 * spacing[1:].max()) & lungs.aerated)
    elif attached_to == "vessel":
        pool = np.argwhere((lungs.depth_mm > radius + 8) & ~lungs.aerated & lungs.lung
                           & (volume.voxels > VESSEL_HU))
    else:
        pool = np.argwhere((lungs.depth_mm > radius + 3) & lungs.aerated)
    if len(pool) == 0:
        return None
    for _ in range(tries):
        kji = pool[int(rng.integers(len(pool)))].astype(float)
        if attached_to == "vessel":
            direction = rng.normal(size=3)
            direction[2] *= 0.3  # mostly in-plane: through thick slices a step in z is a slice away
            kji = kji + direction[::-1] / np.linalg.norm(direction) * radius * 0.9 / spacing
        elif attached_to == "pleura":
            kji = kji + _inward(lungs.depth_mm, kji.astype(int), spacing) * radius * 0.85 / spacing
        if not _sampled(lungs.lung, kji):
            continue
        centre = volume.voxel_to_patient(kji[::-1])
        if inside_box_mm(centre, list(avoid), radius + 10):
            continue
        if attached_to == "none" and not _fits_free(lungs, kji, radius, spacing):
            continue
        return centre
    return None


def _sampled(mask: np.ndarray, kji: np.ndarray) -> bool:
    index = np.rint(kji).astype(int)
    if np.any(index < 0) or np.any(index >= mask.shape):
        return False
    return bool(mask[tuple(index)])


def _inward(depth: np.ndarray, kji: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Unit direction (k, j, i, in mm terms) in which the distance to the lung's edge grows."""
    low = np.maximum(kji - 2, 0)
    high = np.minimum(kji + 3, depth.shape)
    block = depth[tuple(slice(a, b) for a, b in zip(low, high))]
    gradient = np.array([g.mean() for g in np.gradient(block.astype(float), *spacing)]) if min(block.shape) > 1 \
        else np.zeros(3)
    norm = np.linalg.norm(gradient)
    return gradient / norm if norm > 0 else np.array([0.0, 1.0, 0.0])


def _fits_free(lungs: LungMap, kji: np.ndarray, radius: float, spacing: np.ndarray) -> bool:
    """A free nodule's sphere (plus 2 mm) lies in the lung, sampled along 14 directions."""
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1],
                           [1, 1, 1], [1, 1, -1], [1, -1, 1], [1, -1, -1], [-1, 1, 1], [-1, 1, -1],
                           [-1, -1, 1], [-1, -1, -1]], dtype=float)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return all(_sampled(lungs.lung, kji + d * (radius + 2) / spacing) for d in directions)
