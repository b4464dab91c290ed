"""A narrow fast path for reading the per-slice attributes of ordinary CT files.

pydicom parses and converts every element of every file, which is most of the time spent
opening an uncompressed series. Slices of one series differ only in a handful of top-level
attributes (position, instance, rescale...), so this walker reads just those from a
little-endian file and skips the rest by length. It never raises: anything unusual
(no preamble, big endian, deflate, multi-frame functional groups, nesting too deep,
truncation, a character set other than ASCII, Latin-1 or UTF-8) returns None and the caller
uses pydicom, which then also owns the error. The study/series metadata (patient, study,
scanner) is read the same way, so an ordinary series never needs pydicom at all.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

_HEAD_BYTES = 64 * 1024
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_PIXEL_DATA = (0x7FE0, 0x0010)
_ITEM, _ITEM_END, _SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
_MAX_DEPTH = 16

# Tags read by headers._slices_from_dataset for a single-frame file, with their VR.
WANTED: dict[tuple[int, int], tuple[str, str]] = {
    (0x0008, 0x0016): ("SOPClassUID", "UI"), (0x0008, 0x0018): ("SOPInstanceUID", "UI"),
    (0x0008, 0x0060): ("Modality", "CS"), (0x0020, 0x000D): ("StudyInstanceUID", "UI"),
    (0x0020, 0x000E): ("SeriesInstanceUID", "UI"), (0x0020, 0x0013): ("InstanceNumber", "IS"),
    (0x0020, 0x0032): ("ImagePositionPatient", "DS"), (0x0020, 0x0037): ("ImageOrientationPatient", "DS"),
    (0x0028, 0x0002): ("SamplesPerPixel", "US"), (0x0028, 0x0004): ("PhotometricInterpretation", "CS"),
    (0x0028, 0x0008): ("NumberOfFrames", "IS"), (0x0028, 0x0010): ("Rows", "US"),
    (0x0028, 0x0011): ("Columns", "US"), (0x0028, 0x0030): ("PixelSpacing", "DS"),
    (0x0028, 0x0100): ("BitsAllocated", "US"), (0x0028, 0x0101): ("BitsStored", "US"),
    (0x0028, 0x0103): ("PixelRepresentation", "US"), (0x0028, 0x0120): ("PixelPaddingValue", "US or SS"),
    (0x0028, 0x0121): ("PixelPaddingRangeLimit", "US or SS"), (0x0028, 0x1052): ("RescaleIntercept", "DS"),
    (0x0028, 0x1053): ("RescaleSlope", "DS"),
}
# Study/series-level attributes (headers._META_KEYWORDS) and the character set of their text.
WANTED.update({
    (0x0008, 0x0005): ("SpecificCharacterSet", "CS"), (0x0008, 0x0020): ("StudyDate", "DA"),
    (0x0008, 0x0030): ("StudyTime", "TM"), (0x0008, 0x0050): ("AccessionNumber", "SH"),
    (0x0008, 0x0070): ("Manufacturer", "LO"), (0x0008, 0x0080): ("InstitutionName", "LO"),
    (0x0008, 0x1030): ("StudyDescription", "LO"), (0x0008, 0x103E): ("SeriesDescription", "LO"),
    (0x0008, 0x1090): ("ManufacturerModelName", "LO"), (0x0010, 0x0010): ("PatientName", "PN"),
    (0x0010, 0x0020): ("PatientID", "LO"), (0x0010, 0x0021): ("IssuerOfPatientID", "LO"),
    (0x0010, 0x0030): ("PatientBirthDate", "DA"),
    (0x0010, 0x0040): ("PatientSex", "CS"), (0x0010, 0x1010): ("PatientAge", "AS"),
    (0x0018, 0x0015): ("BodyPartExamined", "CS"), (0x0018, 0x0050): ("SliceThickness", "DS"),
    (0x0018, 0x0060): ("KVP", "DS"), (0x0018, 0x1120): ("GantryDetectorTilt", "DS"),
    (0x0018, 0x1210): ("ConvolutionKernel", "SH"), (0x0020, 0x0011): ("SeriesNumber", "IS"),
    (0x0020, 0x0012): ("AcquisitionNumber", "IS"), (0x0020, 0x0052): ("FrameOfReferenceUID", "UI"),
})
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UT"}
# Single-byte or UTF-8 character sets Python decodes directly; anything else (ISO 2022 code
# extensions, several values) goes to pydicom.
_ENCODINGS = {"": "ascii", "ISO_IR 6": "ascii", "ISO 2022 IR 6": "ascii", "ISO_IR 100": "latin-1",
              "ISO_IR 192": "utf-8"}
_REFUSE = {(0x5200, 0x9229), (0x5200, 0x9230)}  # functional groups: multi-frame, pydicom handles it
_IMPLICIT = "1.2.840.10008.1.2"
_BIG_OR_DEFLATED = {"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"}


class FastDataset(dict):
    """Keyword -> converted value; `get`, `in` and `file_meta` are all headers.py needs of a Dataset."""

    file_meta: dict[str, Any]


class _Stop(Exception):
    """Internal: give up the fast path."""


def read_fast(stream: BinaryIO) -> tuple[FastDataset, int] | None:
    """(dataset, pixel data offset) for an ordinary little-endian file, else None."""
    head = stream.read(_HEAD_BYTES)
    try:
        return _parse(head)
    except (_Stop, struct.error, UnicodeDecodeError, ValueError, IndexError):
        return None


def _parse(buffer: bytes) -> tuple[FastDataset, int] | None:
    if len(buffer) < 132 or buffer[128:132] != b"DICM":
        return None
    meta: dict[str, Any] = {}
    position = 132
    while position + 8 <= len(buffer) and buffer[position:position + 2] == b"\x02\x00":
        element, vr, length, value_at = _element(buffer, position, explicit=True)
        if length == _UNDEFINED:
            return None
        value = buffer[value_at:value_at + length]
        if element == (0x0002, 0x0010):
            meta["TransferSyntaxUID"] = _text(value)
        elif element == (0x0002, 0x0002):
            meta["MediaStorageSOPClassUID"] = _text(value)
        elif element == (0x0002, 0x0003):
            meta["MediaStorageSOPInstanceUID"] = _text(value)
        position = value_at + length
    syntax = meta.get("TransferSyntaxUID", "")
    if not syntax or syntax in _BIG_OR_DEFLATED:
        return None
    explicit = syntax != _IMPLICIT
    dataset = FastDataset()
    dataset.file_meta = meta
    while True:
        if position + 8 > len(buffer):
            return None  # pixel data beyond what we read: let pydicom handle this file
        element, vr, length, value_at = _element(buffer, position, explicit)
        if element == _PIXEL_DATA:
            dataset["PixelData"] = True
            return dataset, position
        if element in _REFUSE:
            return None
        if length == _UNDEFINED:
            position = _skip_undefined(buffer, value_at, explicit, 1)
            continue
        if element in WANTED:
            keyword, declared = WANTED[element]
            dataset[keyword] = _convert(buffer[value_at:value_at + length], vr or declared, dataset)
        position = value_at + length


def _element(buffer: bytes, position: int, explicit: bool) -> tuple[tuple[int, int], str, int, int]:
    group, number = struct.unpack_from("<HH", buffer, position)
    if group == 0xFFFE or not explicit:
        (length,) = struct.unpack_from("<I", buffer, position + 4)
        return (group, number), "", length, position + 8
    vr = buffer[position + 4:position + 6]
    if not vr.isalpha() or not vr.isupper():
        raise _Stop
    if vr in _LONG_VRS:
        (length,) = struct.unpack_from("<I", buffer, position + 8)
        return (group, number), vr.decode(), length, position + 12
    (length,) = struct.unpack_from("<H", buffer, position + 6)
    return (group, number), vr.decode(), length, position + 8


def _skip_undefined(buffer: bytes, position: int, explicit: bool, depth: int) -> int:
    """Position after an undefined-length sequence (items of defined or undefined length)."""
    if depth > _MAX_DEPTH:
        raise _Stop
    while True:
        if position + 8 > len(buffer):
            raise _Stop
        element, _vr, length, value_at = _element(buffer, position, explicit)
        if element == _SEQUENCE_END:
            return value_at
        if element != _ITEM:
            raise _Stop
        if length != _UNDEFINED:
            position = value_at + length
            continue
        position = value_at
        while True:  # elements of an undefined-length item, until its delimiter
            if position + 8 > len(buffer):
                raise _Stop
            inner, _vr, inner_length, inner_at = _element(buffer, position, explicit)
            if inner == _ITEM_END:
                position = inner_at
                break
            if inner_length == _UNDEFINED:
                position = _skip_undefined(buffer, inner_at, explicit, depth + 1)
            else:
                position = inner_at + inner_length


def _text(value: bytes, encoding: str = "ascii") -> str:
    return value.decode(encoding).strip(" \x00")


def _convert(value: bytes, vr: str, dataset: FastDataset) -> Any:
    if vr in ("US", "SS") or vr == "US or SS":
        if len(value) != 2:
            raise _Stop
        signed = vr == "SS" or (vr == "US or SS" and dataset.get("PixelRepresentation") == 1)
        return struct.unpack("<h" if signed else "<H", value)[0]
    if vr in _TEXT_VRS - {"CS", "UI"}:
        # (0008,0005) precedes every other text element, so the character set is known by now
        encoding = _ENCODINGS.get(dataset.get("SpecificCharacterSet", ""))
        if encoding is None:
            raise _Stop
        return _text(value, encoding)
    text = _text(value)
    if vr in ("DS", "IS"):
        if not text:
            return ""
        number = float if vr == "DS" else int
        parts = [number(part.strip()) for part in text.split("\\")]
        return parts if len(parts) > 1 else parts[0]
    if vr in ("UI", "CS"):
        return text
    raise _Stop
