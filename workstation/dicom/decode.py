"""Decode one slice's stored values and convert them to Hounsfield units.

Uncompressed little-endian data is read straight from its file offset (no second parse).
JPEG lossless (the most common compressed CT syntax) is decoded by libjpeg-turbo through
imagecodecs, which releases the GIL so slices decode in parallel threads; if it refuses a
stream, pydicom's own handlers get a try. Every other syntax goes through pydicom with the
pylibjpeg plugins (JPEG baseline/extended, JPEG-LS, JPEG 2000, RLE).
"""

from __future__ import annotations

import struct

import imagecodecs
import numpy as np

from workstation.dicom import configured_pydicom
from workstation.dicom.headers import JPEG_LOSSLESS_SYNTAXES, NATIVE_SYNTAXES, SliceHeader, parse_errors
from workstation.errors import CorruptDicomError, PixelDecodeError, SizeLimitError

AIR_HU = -1000
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"
_UNDEFINED_LENGTH = 0xFFFFFFFF


def stored_values(header: SliceHeader) -> np.ndarray:
    """The frame's stored pixel values as a (rows, columns) integer array."""
    if header.transfer_syntax in NATIVE_SYNTAXES:
        return _native_frame(header)
    if header.transfer_syntax in JPEG_LOSSLESS_SYNTAXES and header.bits_allocated == 16:
        try:
            return _checked(_jpeg_lossless_frame(header), header)
        except (PixelDecodeError, CorruptDicomError, imagecodecs.Jpeg8Error, *parse_errors()):
            pass  # let pydicom's handlers try the stream before giving up
    return _pydicom_frame(header)


def _pydicom_frame(header: SliceHeader) -> np.ndarray:
    pixels = configured_pydicom().pixels
    try:
        with header.source.open() as stream:
            array = pixels.pixel_array(stream, index=header.frame)
    except MemoryError as exc:
        raise SizeLimitError("Compressed pixel data expands beyond memory", path=header.source.label) from exc
    except parse_errors() as exc:
        raise PixelDecodeError(f"Pixel data cannot be decoded ({_syntax_name(header)}): {_reason(exc)}",
                               path=header.source.label) from exc
    return _checked(array, header)


def _checked(array: np.ndarray, header: SliceHeader) -> np.ndarray:
    if array.shape != (header.rows, header.columns):
        raise PixelDecodeError(f"Decoded image is {array.shape}, expected {(header.rows, header.columns)}",
                               path=header.source.label)
    return array


def _element_start(stream, header: SliceHeader) -> tuple[int, int]:
    """Read the Pixel Data element header: (value offset, value length)."""
    stream.seek(header.pixel_offset)
    element = stream.read(12)
    if element[:4] != _PIXEL_DATA_TAG:
        raise CorruptDicomError("Pixel Data element not found where the header ends", path=header.source.label)
    explicit = element[4:6].isalpha()
    length = struct.unpack("<I", element[8:12] if explicit else element[4:8])[0]
    return header.pixel_offset + (12 if explicit else 8), length


def _native_frame(header: SliceHeader) -> np.ndarray:
    dtype = np.dtype(f"<{'i' if header.pixel_representation else 'u'}{header.bits_allocated // 8}")
    with header.source.open() as stream:
        start, length = _element_start(stream, header)
        if length != _UNDEFINED_LENGTH and length < header.frame_bytes * header.frames_in_file:
            raise CorruptDicomError(f"Pixel Data holds {length} bytes, fewer than the image needs",
                                    path=header.source.label)
        stream.seek(start + (header.frame or 0) * header.frame_bytes)
        data = stream.read(header.frame_bytes)
    if len(data) != header.frame_bytes:
        raise CorruptDicomError("Pixel data is truncated", path=header.source.label)
    array = np.frombuffer(data, dtype=dtype).reshape(header.rows, header.columns)
    return _mask_unused_bits(array, header)


def _jpeg_lossless_frame(header: SliceHeader) -> np.ndarray:
    from pydicom.encaps import get_frame

    with header.source.open() as stream:
        start, length = _element_start(stream, header)
        if length != _UNDEFINED_LENGTH:
            raise CorruptDicomError("Compressed Pixel Data is not encapsulated", path=header.source.label)
        stream.seek(start)
        frame = get_frame(stream, header.frame or 0, number_of_frames=header.frames_in_file)
    decoded = imagecodecs.jpeg8_decode(frame)
    if decoded.dtype != np.uint16:
        raise PixelDecodeError("JPEG lossless stream has an unexpected precision", path=header.source.label)
    if header.pixel_representation:  # the codec returns bit patterns; signed CT needs sign extension
        decoded = decoded.view(np.int16)
    return _mask_unused_bits(decoded, header)


def _mask_unused_bits(array: np.ndarray, header: SliceHeader) -> np.ndarray:
    unused = header.bits_allocated - header.bits_stored
    if unused <= 0:
        return array
    if header.pixel_representation:  # sign-extend from the stored high bit
        return (array << unused) >> unused
    return array & np.array((1 << header.bits_stored) - 1, dtype=array.dtype)


def to_hu(stored: np.ndarray, header: SliceHeader, out: np.ndarray) -> None:
    """Write HU into `out` (rows x columns): rescale, and padding pixels become air."""
    padding = padding_mask(stored, header)
    if header.rescale_slope == 1.0:
        np.add(stored, header.rescale_intercept, out=out, casting="unsafe")
    else:
        np.multiply(stored, header.rescale_slope, out=out, casting="unsafe")
        out += np.array(header.rescale_intercept).astype(out.dtype)
    if padding is not None:
        out[padding] = AIR_HU


def padding_mask(stored: np.ndarray, header: SliceHeader) -> np.ndarray | None:
    """Pixels outside the reconstructed field of view (PixelPaddingValue [..RangeLimit])."""
    if header.padding_value is None:
        return None
    value = header.padding_value
    if header.pixel_representation == 0 and value < 0:
        value &= (1 << header.bits_allocated) - 1  # stored as unsigned in an SS-typed tag
    if header.padding_range_limit is None:
        mask = stored == value
    else:
        low, high = sorted((value, header.padding_range_limit))
        mask = (stored >= low) & (stored <= high)
    return mask if mask.any() else None


def _syntax_name(header: SliceHeader) -> str:
    from pydicom.uid import UID

    return UID(header.transfer_syntax).name or header.transfer_syntax


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
