"""Headless pictures of a Volume: axial, coronal and sagittal planes through a point, as PNG.

Used by the CLI's demo pipeline and by humans checking geometry; no GL or display needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from workstation.imaging.volume import Volume
from workstation.imaging.windowing import apply_window


def orthogonal_planes(voxels: np.ndarray, centre_ijk: tuple[int, int, int] | None = None) -> dict[str, np.ndarray]:
    """Axial, coronal and sagittal planes of a (k, j, i) array through a voxel (default: the centre)."""
    k_count, j_count, i_count = voxels.shape
    i, j, k = centre_ijk or (i_count // 2, j_count // 2, k_count // 2)
    return {"axial": voxels[k], "coronal": voxels[:, j, :][::-1], "sagittal": voxels[:, :, i][::-1]}


def save_overview_png(volume: Volume, path: Path, window: tuple[float, float] = (-600.0, 1500.0),
                      centre_ijk: tuple[int, int, int] | None = None, heatmap: np.ndarray | None = None,
                      threshold: float = 0.5) -> Path:
    """Three planes side by side, each scaled to square millimetres so anatomy is not squashed;
    with a heatmap, voxels at or above `threshold` are tinted red."""
    sx, sy, sz = volume.spacing_mm
    planes = orthogonal_planes(volume.voxels, centre_ijk)
    heat_planes = orthogonal_planes(heatmap, centre_ijk) if heatmap is not None else {}
    pixel_mm = min(sx, sy)
    sizes = {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}
    images = []
    for name, plane in planes.items():
        width_mm, height_mm = plane.shape[1] * sizes[name][0], plane.shape[0] * sizes[name][1]
        grey = apply_window(plane, *window)
        rgb = np.stack([grey] * 3, axis=-1)
        if name in heat_planes:
            hot = heat_planes[name] >= threshold
            rgb[hot] = (0.5 * rgb[hot] + 0.5 * np.array([255, 40, 0])).astype(np.uint8)
        image = Image.fromarray(rgb)
        images.append(image.resize((max(1, round(width_mm / pixel_mm)), max(1, round(height_mm / pixel_mm))),
                                   Image.BILINEAR))
    height = max(image.height for image in images)
    canvas = Image.new("RGB", (sum(image.width for image in images) + 8 * (len(images) - 1), height))
    x = 0
    for image in images:
        canvas.paste(image, (x, 0))
        x += image.width + 8
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def save_thumbnail(volume: Volume, path: Path, size: int = 96, window: tuple[float, float] = (-600.0, 1500.0)) -> Path:
    """A small square picture of the middle axial slice for the study browser."""
    plane = volume.voxels[volume.shape[0] // 2]
    image = Image.fromarray(apply_window(plane, *window)).resize((size, size), Image.BILINEAR)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def finding_thumbnail(volume: Volume, centre_mm, size_mm: float = 40.0, pixels: int = 48,
                      window: tuple[float, float] = (-600.0, 1500.0)) -> np.ndarray:
    """A small axial patch (uint8, pixels x pixels) around a finding, at lung window."""
    i, j, k = np.rint(volume.patient_to_voxel(centre_mm)).astype(int)
    k = int(np.clip(k, 0, volume.shape[0] - 1))
    half_i = int(size_mm / volume.spacing_mm[0] / 2)
    half_j = int(size_mm / volume.spacing_mm[1] / 2)
    plane = volume.voxels[k]
    patch = np.full((2 * half_j + 1, 2 * half_i + 1), -1000, dtype=np.float32)
    j0, j1 = max(j - half_j, 0), min(j + half_j + 1, plane.shape[0])
    i0, i1 = max(i - half_i, 0), min(i + half_i + 1, plane.shape[1])
    if j0 < j1 and i0 < i1:
        patch[j0 - (j - half_j):j1 - (j - half_j), i0 - (i - half_i):i1 - (i - half_i)] = plane[j0:j1, i0:i1]
    image = Image.fromarray(apply_window(patch, *window)).resize((pixels, pixels), Image.BILINEAR)
    return np.asarray(image)
