"""Slice-stack geometry: order along the normal, spacing, gantry tilt, gaps.

Slices are ordered by their position projected on the slice normal, never by file name or
InstanceNumber. The result says whether the stack is a regular grid or must be resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workstation.dicom.headers import SliceHeader
from workstation.errors import GeometryError

ORIENTATION_TOLERANCE = 1e-3
DUPLICATE_TOLERANCE_MM = 0.01
# Scanners round positions; 2 % of the spacing (at least 0.01 mm) still counts as uniform.
UNIFORM_RELATIVE_TOLERANCE = 0.02
TILT_TOLERANCE_MM = 0.05


@dataclass(frozen=True)
class StackGeometry:
    """Where each (sorted) slice lies: distance along the normal and in-plane offset."""

    slices: tuple[SliceHeader, ...]  # sorted by position along the normal
    row_direction: np.ndarray  # unit vector along a row (increasing column index)
    column_direction: np.ndarray  # unit vector down a column (increasing row index)
    normal: np.ndarray
    along_normal_mm: np.ndarray  # per slice, relative to the first
    in_plane_offset_mm: np.ndarray  # per slice (along row dir, along column dir), relative to the first
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing)
    warnings: tuple[str, ...]

    @property
    def gaps_mm(self) -> np.ndarray:
        return np.diff(self.along_normal_mm)

    @property
    def nominal_spacing_mm(self) -> float:
        gaps = self.gaps_mm
        return float(np.median(gaps)) if len(gaps) else 1.0

    @property
    def tilt_degrees(self) -> float:
        extent = float(self.along_normal_mm[-1]) if len(self.slices) > 1 else 0.0
        if extent <= 0:
            return 0.0
        shift = float(np.linalg.norm(self.in_plane_offset_mm[-1]))
        return float(np.degrees(np.arctan2(shift, extent)))

    @property
    def is_tilted(self) -> bool:
        return bool(np.abs(self.in_plane_offset_mm).max(initial=0.0) > TILT_TOLERANCE_MM)

    @property
    def is_uniform(self) -> bool:
        gaps = self.gaps_mm
        if len(gaps) == 0:
            return True
        nominal = self.nominal_spacing_mm
        return bool(np.abs(gaps - nominal).max() <= max(0.01, UNIFORM_RELATIVE_TOLERANCE * nominal))

    @property
    def is_regular_grid(self) -> bool:
        return self.is_uniform and not self.is_tilted

    def missing_slice_gaps(self) -> list[tuple[int, int]]:
        """(index of the slice before the gap, number of slices missing) for gaps of whole spacings."""
        if len(self.slices) < 3:
            return []
        nominal = float(np.percentile(self.gaps_mm, 25))  # robust even when many gaps are doubled
        result = []
        for index, gap in enumerate(self.gaps_mm):
            ratio = gap / nominal
            if round(ratio) >= 2 and abs(ratio - round(ratio)) < 0.1:
                result.append((index, int(round(ratio)) - 1))
        return result


def stack_geometry(slices: list[SliceHeader]) -> StackGeometry:
    """Sort slices along their normal and describe the stack; GeometryError if they disagree."""
    if not slices:
        raise GeometryError("The series has no image slices")
    first = slices[0]
    orientation = np.array(first.orientation)
    for s in slices[1:]:
        if np.abs(np.array(s.orientation) - orientation).max() > ORIENTATION_TOLERANCE:
            raise GeometryError("Slices in the series have different orientations and cannot form one volume",
                                path=s.source.label)
        if (s.rows, s.columns) != (first.rows, first.columns):
            raise GeometryError(f"Slices have different sizes ({first.rows}x{first.columns} and "
                                f"{s.rows}x{s.columns})", path=s.source.label)
        if np.abs(np.array(s.pixel_spacing) - np.array(first.pixel_spacing)).max() > 1e-3:
            raise GeometryError("Slices have different pixel spacings", path=s.source.label)
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    normal /= np.linalg.norm(normal)

    positions = np.array([s.position for s in slices], dtype=float)
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    warnings: list[str] = []

    keep = [int(order[0])]
    for index in order[1:]:
        if distance[index] - distance[keep[-1]] < DUPLICATE_TOLERANCE_MM:
            continue
        keep.append(int(index))
    if len(keep) < len(slices):
        warnings.append(f"{len(slices) - len(keep)} slice(s) repeat an existing position and were ignored")

    ordered = [slices[i] for i in keep]
    relative = positions[keep] - positions[keep[0]]
    along = relative @ normal
    in_plane = relative - np.outer(along, normal)
    offsets = np.stack([in_plane @ row_dir, in_plane @ col_dir], axis=1)
    return StackGeometry(
        slices=tuple(ordered), row_direction=row_dir, column_direction=col_dir, normal=normal,
        along_normal_mm=along, in_plane_offset_mm=offsets,
        pixel_spacing=first.pixel_spacing, warnings=tuple(warnings),
    )


def without_slices(geometry: StackGeometry, drop: set[int]) -> StackGeometry:
    """The same stack with some sorted slice indices removed (e.g. undecodable ones)."""
    keep = [i for i in range(len(geometry.slices)) if i not in drop]
    if not keep:
        raise GeometryError("No slice of the series could be read")
    along = geometry.along_normal_mm[keep] - geometry.along_normal_mm[keep[0]]
    offsets = geometry.in_plane_offset_mm[keep] - geometry.in_plane_offset_mm[keep[0]]
    return StackGeometry(
        slices=tuple(geometry.slices[i] for i in keep), row_direction=geometry.row_direction,
        column_direction=geometry.column_direction, normal=geometry.normal, along_normal_mm=along,
        in_plane_offset_mm=offsets, pixel_spacing=geometry.pixel_spacing, warnings=geometry.warnings)


# A slice this far beyond its neighbours (and 20 median gaps) is not part of the acquisition: a
# damaged or crafted position (1e9 mm) would otherwise stretch the resampled grid to terabytes.
OUTLIER_GAP_MM = 100.0
OUTLIER_GAP_MEDIANS = 20.0


def without_outliers(geometry: StackGeometry) -> tuple[StackGeometry, list[str]]:
    """The stack without slices that lie far off the others (at either end along the slice axis,
    or far off in-plane), each with a warning naming it."""
    drop: dict[int, str] = {}
    along, offsets = geometry.along_normal_mm, geometry.in_plane_offset_mm
    first, last = 0, len(geometry.slices) - 1
    while last - first >= 2:
        gaps = np.diff(along[first:last + 1])
        limit = max(OUTLIER_GAP_MM, OUTLIER_GAP_MEDIANS * float(np.median(gaps)))
        if gaps[0] > limit:
            drop[first] = f"{gaps[0]:.0f} mm before the next slice"
            first += 1
        elif gaps[-1] > limit:
            drop[last] = f"{gaps[-1]:.0f} mm after the previous slice"
            last -= 1
        else:
            break
    row_spacing, column_spacing = geometry.pixel_spacing
    field_mm = max(geometry.slices[0].rows * row_spacing, geometry.slices[0].columns * column_spacing)
    centre = np.median(offsets, axis=0)
    for index in range(len(geometry.slices)):
        shift = float(np.linalg.norm(offsets[index] - centre))
        if index not in drop and shift > field_mm:
            drop[index] = f"{shift:.0f} mm off the others in its plane"
    if not drop or len(drop) > len(geometry.slices) // 2:
        return geometry, []  # nothing off, or no majority to call the rest the series
    warnings = [f"Slice {index + 1} of {len(geometry.slices)} (instance {geometry.slices[index].instance_number}) "
                f"lies {why} and was left out" for index, why in sorted(drop.items())]
    return without_slices(geometry, set(drop)), warnings
