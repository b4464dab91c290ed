"""Turn a SeriesGroup into a Volume: decode every slice to HU and fix irregular geometry."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from workstation.config import LIMITS
from workstation.dicom.decode import stored_values, to_hu
from workstation.dicom.headers import SliceHeader
from workstation.dicom.geometry import StackGeometry, stack_geometry, without_outliers, without_slices
from workstation.dicom.series import ScanResult, SeriesGroup, scan_job
from workstation.errors import DicomError, NoSeriesError, SizeLimitError
from workstation.imaging.resample import MAX_UPSAMPLING, choose_slice_spacing, resample_stack
from workstation.imaging.volume import SeriesMetadata, Volume
from workstation.jobs import CancelToken, Job, Progress, run_job

_INT16 = np.iinfo(np.int16)
DECODE_THREADS = max(1, min(4, os.cpu_count() or 1))


def load_series_job(group: SeriesGroup, cancel: CancelToken | None = None) -> Job[Volume]:
    """Decode the series into a Volume in HU; yields Progress per slice."""
    cancel = cancel or CancelToken()
    geometry, outlier_warnings = without_outliers(stack_geometry(group.slices))
    first = geometry.slices[0]
    n, rows, columns = len(geometry.slices), first.rows, first.columns
    if n * rows * columns > LIMITS.max_volume_voxels:
        raise SizeLimitError(f"Series of {n}x{rows}x{columns} voxels is larger than this workstation loads")

    integer_rescale = all(float(s.rescale_slope).is_integer() and float(s.rescale_intercept).is_integer()
                          for s in geometry.slices)
    stack = np.empty((n, rows, columns), dtype=np.int16 if integer_rescale else np.float32)
    failures: dict[int, str] = {}
    for k, hu in _decode_in_parallel(geometry.slices, integer_rescale, cancel):
        if isinstance(hu, DicomError):
            failures[k] = str(hu)
            continue
        if hu.dtype != stack.dtype:  # a slice outside int16: keep the whole volume in float32
            stack = stack.astype(np.float32)
        stack[k] = hu
        yield Progress(k + 1, n, f"Loading slices ({k + 1}/{n})")

    warnings = list(geometry.warnings) + outlier_warnings
    if failures:
        if len(failures) == n:
            raise DicomError(f"No slice of series '{group.description}' could be read; first problem: "
                             f"{next(iter(failures.values()))}")
        for k, reason in sorted(failures.items()):
            warnings.append(f"Slice {k + 1} of {n} could not be read and was left out: {reason}")
        keep = [k for k in range(n) if k not in failures]
        stack = stack[keep]
        geometry = without_slices(geometry, set(failures))
    volume = _volume_from_stack(stack, geometry, group, warnings, cancel)
    yield Progress(n, n, "Loaded")
    return volume


def _decode_in_parallel(slices: tuple[SliceHeader, ...], integer_rescale: bool, cancel: CancelToken
                        ) -> Iterator[tuple[int, np.ndarray | DicomError]]:
    """HU slices in order. File reads, the JPEG codec and numpy release the GIL, so threads
    overlap them; a bounded window of pending slices keeps memory flat."""

    def decode(header: SliceHeader) -> np.ndarray | DicomError:
        try:
            stored = stored_values(header)
        except DicomError as exc:
            return exc
        fits = integer_rescale and _fits_int16(stored, header.rescale_slope, header.rescale_intercept)
        hu = np.empty(stored.shape, dtype=np.int16 if fits else np.float32)
        to_hu(stored, header, hu)
        return hu

    window = 2 * DECODE_THREADS
    with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
        pending = [pool.submit(decode, header) for header in slices[:window]]
        for k in range(len(slices)):
            if cancel.cancelled:
                for future in pending:
                    future.cancel()
                cancel.check()
            result = pending.pop(0).result()
            if k + window < len(slices):
                pending.append(pool.submit(decode, slices[k + window]))
            yield k, result


def _fits_int16(stored: np.ndarray, slope: float, intercept: float) -> bool:
    low, high = int(stored.min()), int(stored.max())
    ends = (low * slope + intercept, high * slope + intercept)
    return _INT16.min <= min(ends) and max(ends) <= _INT16.max


def _volume_from_stack(stack: np.ndarray, geometry: StackGeometry, group: SeriesGroup, warnings: list[str],
                       cancel: CancelToken) -> Volume:
    row_spacing, column_spacing = geometry.pixel_spacing
    origin = np.array(geometry.slices[0].position, dtype=float)
    metadata = SeriesMetadata.from_dict(
        {**group.metadata, "series_uid": group.key, "study_uid": group.study_key, "uids_derived": group.uids_derived})
    common = dict(frame_of_reference_uid=str(group.metadata.get("frame_of_reference_uid") or ""), metadata=metadata)
    if len(geometry.slices) == 1:
        thickness = metadata.slice_thickness or 1.0
        warnings.append("Single slice: the slice axis uses the slice thickness as its spacing")
        return Volume.from_geometry(stack, origin, geometry.row_direction, geometry.column_direction,
                                    geometry.normal * thickness, (column_spacing, row_spacing),
                                    warnings=tuple(warnings), **common)
    if geometry.is_regular_grid and len(warnings) == len(geometry.warnings):
        return Volume.from_geometry(stack, origin, geometry.row_direction, geometry.column_direction,
                                    geometry.normal * geometry.nominal_spacing_mm, (column_spacing, row_spacing),
                                    warnings=tuple(warnings), **common)

    gaps = geometry.gaps_mm
    if geometry.is_tilted:
        warnings.append(f"Gantry tilt of {geometry.tilt_degrees:.1f} degrees: slices were shifted onto a regular "
                        "grid so positions and distances are correct")
    if not geometry.is_uniform:
        warnings.append(f"Slice spacing varies from {gaps.min():.2f} to {gaps.max():.2f} mm")
    for index, missing in geometry.missing_slice_gaps():
        start, end = geometry.along_normal_mm[index], geometry.along_normal_mm[index + 1]
        warnings.append(f"{missing} slice(s) missing between {start:.1f} and {end:.1f} mm along the slice axis")
    spacing = choose_slice_spacing(geometry.along_normal_mm)
    offsets_index = geometry.in_plane_offset_mm / np.array([column_spacing, row_spacing])
    _check_resampled_size(geometry, spacing, offsets_index, stack.shape)
    grid = resample_stack(stack, geometry.along_normal_mm, offsets_index, spacing, cancel.check)
    if grid.interpolated_slices:
        warnings.append(f"Resampled to a regular {spacing:.2f} mm slice grid; {len(grid.interpolated_slices)} "
                        "slice(s) are interpolated, not measured")
    shift_columns, shift_rows = grid.origin_shift_index
    origin = (origin + shift_columns * column_spacing * geometry.row_direction
              + shift_rows * row_spacing * geometry.column_direction)
    return Volume.from_geometry(grid.voxels, origin, geometry.row_direction, geometry.column_direction,
                                geometry.normal * spacing, (column_spacing, row_spacing), warnings=tuple(warnings),
                                interpolated_slices=grid.interpolated_slices, **common)


def _check_resampled_size(geometry: StackGeometry, spacing: float, offsets_index: np.ndarray,
                          shape: tuple[int, ...]) -> None:
    """Refuse, before allocating, a regular grid larger than the limits (or than MAX_UPSAMPLING
    times the acquired slices): positions far apart would otherwise ask for terabytes."""
    count = float(geometry.along_normal_mm[-1]) / spacing + 1
    extent = np.ptp(offsets_index, axis=0) if len(offsets_index) else np.zeros(2)
    voxels = count * (shape[1] + float(extent[1]) + 1) * (shape[2] + float(extent[0]) + 1)
    if count > MAX_UPSAMPLING * shape[0] or voxels > LIMITS.max_volume_voxels:
        raise SizeLimitError(f"The slice positions span {geometry.along_normal_mm[-1]:.0f} mm: a regular grid "
                             f"would need {count:.0f} slices for {shape[0]} acquired, more than this workstation "
                             "makes; the positions are probably damaged")


def scan(paths: list[Path] | tuple[Path, ...]) -> ScanResult:
    """Synchronous scan of paths into studies and series."""
    return run_job(scan_job(list(paths)))


def load_largest_series_job(paths: list[Path], cancel: CancelToken | None = None) -> Job[Volume]:
    """Scan `paths` and load the series with the most slices; skipped damaged files become warnings."""
    cancel = cancel or CancelToken()
    result: ScanResult = yield from scan_job([Path(p) for p in paths], cancel)
    series = sorted(result.series, key=lambda s: -len(s.slices))
    if not series:
        reason = f"; e.g. {result.skipped[0][1]}" if result.skipped else ""
        where = ", ".join(str(p) for p in paths)
        raise NoSeriesError(f"No CT series found in {where} ({len(result.skipped)} file(s) skipped{reason})")
    volume = yield from load_series_job(series[0], cancel)
    damaged = [f"File skipped: {reason}" for _label, reason in result.skipped if "Not a DICOM file" not in reason]
    return replace(volume, warnings=(*volume.warnings, *damaged)) if damaged else volume


def load_volume(path: Path) -> Volume:
    """Load the largest CT series found at `path` (synchronously)."""
    return run_job(load_largest_series_job([Path(path)]))
