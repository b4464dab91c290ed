"""Seeded mutations of real DICOM files: bit flips, truncation, huge lengths, deep sequence
nesting, Rows/Columns/frame bombs and spliced bytes. Mutant `i` of a base file is always the
same bytes, so a failure reproduces from its index."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom

MUTATORS = ("bitflip", "truncate", "huge_length", "deep_nesting", "size_bomb", "splice", "header_noise")


def mutate(data: bytes, index: int) -> tuple[str, bytes]:
    rng = np.random.default_rng(index)
    kind = MUTATORS[index % len(MUTATORS)]
    return kind, globals()[f"_{kind}"](bytearray(data), rng)


def _header_end(data: bytearray) -> int:
    position = data.find(b"\xe0\x7f\x10\x00")
    return position if position > 132 else min(len(data), 4096)


def _bitflip(data: bytearray, rng: np.random.Generator) -> bytes:
    limit = _header_end(data) if rng.random() < 0.8 else len(data)
    for _ in range(int(rng.integers(1, 24))):
        position = int(rng.integers(128, max(129, limit)))
        data[position] ^= 1 << int(rng.integers(8))
    return bytes(data)


def _truncate(data: bytearray, rng: np.random.Generator) -> bytes:
    return bytes(data[: int(rng.integers(0, len(data)))])


def _huge_length(data: bytearray, rng: np.random.Generator) -> bytes:
    for _ in range(int(rng.integers(1, 4))):
        position = int(rng.integers(132, max(133, _header_end(data) - 4)))
        value = int(rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFF0, 0x10000000, 0xFFFF]))
        data[position:position + 4] = struct.pack("<I", value)
    return bytes(data)


def _deep_nesting(data: bytearray, rng: np.random.Generator) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(bytes(data)), force=True)
    depth = int(rng.integers(50, 3000))
    # (0008,1115) ReferencedSeriesSequence nested `depth` deep, undefined lengths, explicit VR LE
    opening = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    blob = opening * depth + closing * depth
    body = bytes(data)
    meta_end = body.find(b"\x08\x00", 132 + 12)
    if getattr(ds, "file_meta", None) is None or meta_end < 0:
        return body[:132] + blob
    insert_at = _first_element_after_meta(body)
    return body[:insert_at] + blob + body[insert_at:]


def _first_element_after_meta(body: bytes) -> int:
    position = 132
    while position + 8 <= len(body) and body[position:position + 2] == b"\x02\x00":
        vr = body[position + 4:position + 6]
        if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR"):
            length = struct.unpack("<I", body[position + 8:position + 12])[0]
            position += 12 + length
        else:
            length = struct.unpack("<H", body[position + 6:position + 8])[0]
            position += 8 + length
    return position


def _size_bomb(data: bytearray, rng: np.random.Generator) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(bytes(data)), force=True)
    ds.Rows = int(rng.choice([0, 1, 65535, 40000]))
    ds.Columns = int(rng.choice([0, 65535, 40000, 7]))
    if rng.random() < 0.5:
        ds.NumberOfFrames = str(int(rng.choice([0, -1, 2**31 - 1, 100000])))
    if rng.random() < 0.3:
        ds.BitsAllocated = int(rng.choice([1, 7, 64, 0]))
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def _splice(data: bytearray, rng: np.random.Generator) -> bytes:
    start = int(rng.integers(132, len(data)))
    length = int(rng.integers(1, 4096))
    chunk = bytes(data[start:start + length])
    target = int(rng.integers(132, len(data)))
    return bytes(data[:target]) + chunk + bytes(data[target:])


def _header_noise(data: bytearray, rng: np.random.Generator) -> bytes:
    end = _header_end(data)
    start = int(rng.integers(132, max(133, end - 16)))
    count = int(rng.integers(1, 64))
    data[start:start + count] = rng.integers(0, 256, count, dtype=np.uint8).tobytes()
    return bytes(data)
