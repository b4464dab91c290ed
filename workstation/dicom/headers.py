"""Read one file's header into typed SliceHeaders (one per frame), validating what we use.

Everything that can go wrong with hostile or broken input ends here as a named
WorkstationError; sizes are checked before any pixel buffer exists.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from workstation.config import LIMITS
from workstation.dicom.fastheader import FastDataset, read_fast
from workstation.dicom.sources import DicomSource
from workstation.errors import (CorruptDicomError, NotDicomError, SizeLimitError, UnsafePathError,
                                UnsupportedDicomError)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
LEGACY_ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.2"
CT_SOP_CLASSES = {CT_IMAGE, ENHANCED_CT_IMAGE, LEGACY_ENHANCED_CT_IMAGE}
MULTIFRAME_CT = {ENHANCED_CT_IMAGE, LEGACY_ENHANCED_CT_IMAGE}
NATIVE_SYNTAXES = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
JPEG_LOSSLESS_SYNTAXES = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}

_PARSE_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, struct.error, EOFError,
    NotImplementedError, OverflowError, RecursionError, UnicodeError, zlib.error, AssertionError,
    RuntimeError, OSError,
)


def parse_errors() -> tuple[type[BaseException], ...]:
    """What a broken file can make pydicom (or our own parsing) raise; converted to named errors.
    pydicom's own exception joins once pydicom is imported (nothing can raise it before)."""
    pydicom_errors = sys.modules.get("pydicom.errors")
    return _PARSE_ERRORS + (pydicom_errors.BytesLengthException,) if pydicom_errors else _PARSE_ERRORS

# Study/series-level attributes kept as metadata (keyword -> metadata name).
_META_KEYWORDS = {
    "PatientName": "patient_name", "PatientID": "patient_id",
    "IssuerOfPatientID": "issuer_of_patient_id", "PatientBirthDate": "patient_birth_date",
    "PatientAge": "patient_age", "PatientSex": "patient_sex", "StudyInstanceUID": "study_uid",
    "SeriesInstanceUID": "series_uid", "StudyDate": "study_date", "StudyTime": "study_time",
    "StudyDescription": "study_description", "SeriesDescription": "series_description",
    "SeriesNumber": "series_number", "AccessionNumber": "accession_number", "Modality": "modality",
    "Manufacturer": "manufacturer", "ManufacturerModelName": "model", "ConvolutionKernel": "kernel",
    "SliceThickness": "slice_thickness", "KVP": "kvp", "InstitutionName": "institution",
    "BodyPartExamined": "body_part", "FrameOfReferenceUID": "frame_of_reference_uid",
    "AcquisitionNumber": "acquisition_number", "GantryDetectorTilt": "gantry_tilt",
}


@dataclass(frozen=True, eq=False)
class SliceHeader:
    """One image plane: where it is, how to decode it, and the series metadata it carries."""

    source: DicomSource
    frame: int | None  # frame index in a multi-frame file, None for single-frame
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float, float, float]
    pixel_spacing: tuple[float, float]  # (row spacing, column spacing) as in DICOM
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    rescale_slope: float
    rescale_intercept: float
    padding_value: int | None
    padding_range_limit: int | None
    instance_number: int | None
    pixel_offset: int  # file offset of the Pixel Data element (where the header ends)
    frames_in_file: int
    metadata: dict[str, Any] = field(repr=False)

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * (self.bits_allocated // 8)


MetadataCache = dict[tuple[str, str], dict[str, Any]]


def read_headers(source: DicomSource, metadata_cache: MetadataCache | None = None) -> list[SliceHeader]:
    """Parse a file's header into one SliceHeader per frame, or raise a named DicomError.

    Files of one series share their study/series metadata; with a cache it is converted once
    per series instead of once per file (the bulk of header-reading time). With a cache, an
    ordinary file is read by our own walker; anything unusual, and every file without a cache,
    by pydicom.
    """
    if source.refusal:
        raise UnsafePathError(source.refusal, path=str(source.path))
    try:
        size = source.size()
    except OSError as exc:  # e.g. a database's -shm file that vanished between listing and reading
        raise NotDicomError(f"The file cannot be read: {exc.strerror or exc}", path=source.label) from exc
    if size > LIMITS.max_file_bytes:
        raise SizeLimitError(f"File is {size} bytes, over the {LIMITS.max_file_bytes}-byte limit", path=source.label)
    try:
        with source.open() as stream:
            fast = read_fast(stream) if metadata_cache is not None else None
            if fast is not None:
                ds, pixel_offset = fast
            else:
                stream.seek(0)
                ds, pixel_offset = _read_with_pydicom(stream, source)
    except MemoryError as exc:
        raise SizeLimitError("DICOM header declares an absurd element length", path=source.label) from exc
    except parse_errors() as exc:
        raise CorruptDicomError(f"DICOM header is damaged: {_short(exc)}", path=source.label) from exc
    try:
        return _slices_from_dataset(ds, source, pixel_offset, size, metadata_cache)
    except (UnsupportedDicomError, SizeLimitError, CorruptDicomError):
        raise
    except parse_errors() as exc:
        raise CorruptDicomError(f"DICOM attributes are damaged: {_short(exc)}", path=source.label) from exc


def _read_with_pydicom(stream: BinaryIO, source: DicomSource) -> tuple[Dataset, int]:
    """(dataset without pixels, pixel data offset)."""
    from workstation.dicom import configured_pydicom

    pydicom = configured_pydicom()
    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError as exc:
        raise NotDicomError("Not a DICOM file (no DICM marker)", path=source.label) from exc
    return ds, stream.tell()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _slices_from_dataset(ds: Dataset | FastDataset, source: DicomSource, pixel_offset: int, file_size: int,
                         metadata_cache: MetadataCache | None) -> list[SliceHeader]:
    meta = getattr(ds, "file_meta", None) or {}
    sop_class = str(ds.get("SOPClassUID", "") or meta.get("MediaStorageSOPClassUID", "") or "").strip()
    modality = str(ds.get("Modality", "") or "").strip().upper()
    if sop_class and sop_class not in CT_SOP_CLASSES:
        raise UnsupportedDicomError(f"Not a CT image (SOP class {_sop_name(sop_class)})", path=source.label)
    if not sop_class and modality != "CT":
        raise UnsupportedDicomError(f"Not a CT image (modality {modality or 'missing'})", path=source.label)
    transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    sop_uid = str(ds.get("SOPInstanceUID", "") or meta.get("MediaStorageSOPInstanceUID", "") or "").strip()

    rows, columns = _int(ds, "Rows"), _int(ds, "Columns")
    frames = _int(ds, "NumberOfFrames", default=1) or 1
    bits = _int(ds, "BitsAllocated")
    samples = _int(ds, "SamplesPerPixel", default=1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    _check_pixels(source, rows, columns, frames, bits, samples, photometric)
    if "PixelData" not in ds and pixel_offset >= file_size:
        raise CorruptDicomError("File has no pixel data", path=source.label)
    if transfer_syntax in NATIVE_SYNTAXES:
        needed = rows * columns * (bits // 8) * frames
        if pixel_offset + needed > file_size:
            raise CorruptDicomError(
                f"Pixel data is truncated ({file_size - pixel_offset} of {needed} bytes present)", path=source.label)

    metadata = _series_metadata(ds, sop_class or CT_IMAGE, transfer_syntax, metadata_cache)
    common = dict(
        source=source, sop_class_uid=sop_class or CT_IMAGE, sop_instance_uid=sop_uid,
        transfer_syntax=transfer_syntax, rows=rows, columns=columns, bits_allocated=bits,
        bits_stored=min(bits, max(1, _int(ds, "BitsStored", default=bits))),
        pixel_representation=_int(ds, "PixelRepresentation", default=0),
        padding_value=_optional_int(ds.get("PixelPaddingValue")),
        padding_range_limit=_optional_int(ds.get("PixelPaddingRangeLimit")),
        instance_number=_optional_int(ds.get("InstanceNumber")),
        pixel_offset=pixel_offset,
        frames_in_file=frames, metadata=metadata,
    )
    if sop_class in MULTIFRAME_CT or "PerFrameFunctionalGroupsSequence" in ds:
        return _multiframe_slices(ds, source, frames, common)
    return [SliceHeader(
        frame=None,
        position=_vector(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", source),
        orientation=_orientation(ds.get("ImageOrientationPatient"), source),
        pixel_spacing=_spacing(ds.get("PixelSpacing"), source),
        rescale_slope=_float(ds.get("RescaleSlope"), 1.0), rescale_intercept=_float(ds.get("RescaleIntercept"), 0.0),
        **common,
    )]


def _series_key(ds: Dataset | FastDataset) -> tuple[str, str] | None:
    key = (str(ds.get("StudyInstanceUID", "") or ""), str(ds.get("SeriesInstanceUID", "") or ""))
    return key if all(key) else None


def _series_metadata(ds: Dataset | FastDataset, sop_class: str, transfer_syntax: str,
                     cache: MetadataCache | None) -> dict[str, Any]:
    key = _series_key(ds)
    if cache is not None and key is not None and key in cache:
        return cache[key]
    metadata = {name: _text(ds.get(keyword)) for keyword, name in _META_KEYWORDS.items()}
    metadata["sop_class_uid"] = sop_class
    metadata["transfer_syntax"] = transfer_syntax
    if cache is not None and key is not None:
        cache[key] = metadata
    return metadata


def _multiframe_slices(ds: Dataset, source: DicomSource, frames: int, common: dict) -> list[SliceHeader]:
    from pydicom.dataset import Dataset  # a multi-frame file came through pydicom already

    shared = _first(ds.get("SharedFunctionalGroupsSequence"))
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    if len(per_frame) != frames:
        raise CorruptDicomError(
            f"Multi-frame file lists {len(per_frame)} frame descriptions for {frames} frames", path=source.label)

    def group(frame_item: Dataset, name: str) -> Dataset:
        return _first(frame_item.get(name)) or _first(shared.get(name) if shared is not None else None) or Dataset()

    slices = []
    for index, item in enumerate(per_frame):
        measures = group(item, "PixelMeasuresSequence")
        transform = group(item, "PixelValueTransformationSequence")
        slices.append(SliceHeader(
            frame=index,
            position=_vector(group(item, "PlanePositionSequence").get("ImagePositionPatient"), 3,
                             "ImagePositionPatient", source),
            orientation=_orientation(group(item, "PlaneOrientationSequence").get("ImageOrientationPatient"), source),
            pixel_spacing=_spacing(measures.get("PixelSpacing"), source),
            rescale_slope=_float(transform.get("RescaleSlope"), 1.0),
            rescale_intercept=_float(transform.get("RescaleIntercept"), 0.0),
            **common,
        ))
    return slices


def _check_pixels(source: DicomSource, rows: int, columns: int, frames: int, bits: int, samples: int,
                  photometric: str) -> None:
    if rows <= 0 or columns <= 0:
        raise CorruptDicomError("Image has no Rows/Columns", path=source.label)
    if rows > LIMITS.max_rows_or_columns or columns > LIMITS.max_rows_or_columns:
        raise SizeLimitError(f"Image size {rows}x{columns} is beyond the {LIMITS.max_rows_or_columns} limit",
                             path=source.label)
    if frames < 0 or frames > LIMITS.max_frames:
        raise SizeLimitError(f"{frames} frames is beyond the {LIMITS.max_frames}-frame limit", path=source.label)
    if bits not in (8, 16, 32):
        raise UnsupportedDicomError(f"BitsAllocated {bits} is not supported for CT", path=source.label)
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise UnsupportedDicomError(f"Colour image ({photometric}) is not a CT slice", path=source.label)


def _first(sequence: Any) -> Dataset | None:
    try:
        return sequence[0] if sequence is not None and len(sequence) else None
    except (TypeError, IndexError):
        return None


def _text(element: Any) -> Any:
    value = getattr(element, "value", element)
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword, default)
    if value is None or value == "":
        if default is None:
            raise ValueError(f"required attribute {keyword} is missing")
        return default
    return int(value)


def _optional_int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _float(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"non-finite value {value!r}")
    return result


def _vector(value: Any, length: int, keyword: str, source: DicomSource) -> tuple[float, ...]:
    if value is None or value == "":
        raise UnsupportedDicomError(f"{keyword} is missing, so the slice cannot be placed in space",
                                    path=source.label)
    try:
        values = tuple(float(v) for v in value)
    except TypeError:
        values = (float(value),)
    if len(values) != length or not all(math.isfinite(v) for v in values):
        raise CorruptDicomError(f"{keyword} must be {length} finite numbers, got {value!r}", path=source.label)
    return values


def _orientation(value: Any, source: DicomSource) -> tuple[float, ...]:
    values = _vector(value, 6, "ImageOrientationPatient", source)
    row, col = np.array(values[:3]), np.array(values[3:])
    row_norm, col_norm = np.linalg.norm(row), np.linalg.norm(col)
    if row_norm < 0.5 or col_norm < 0.5 or abs(row @ col) / (row_norm * col_norm) > 0.01:
        raise CorruptDicomError(f"ImageOrientationPatient is not two perpendicular directions: {values}",
                                path=source.label)
    return tuple(float(v) for v in np.concatenate([row / row_norm, col / col_norm]))


def _spacing(value: Any, source: DicomSource) -> tuple[float, float]:
    spacing = _vector(value, 2, "PixelSpacing", source)
    if not all(0.001 < s < 100 for s in spacing):
        raise CorruptDicomError(f"PixelSpacing {spacing} is implausible", path=source.label)
    return spacing  # type: ignore[return-value]


def _sop_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name and name != uid else uid
