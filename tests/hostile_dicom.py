"""Hostile DICOM written byte by byte, where pydicom cannot write what it cannot recurse through."""

from __future__ import annotations

import struct
from pathlib import Path


def nested_sequence(depth: int, defined: bool) -> bytes:
    """ContentSequence nested `depth` deep (explicit VR little endian), lengths defined or not."""
    tag = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0"
    inner = struct.pack("<HH", 0x0040, 0xA160) + b"UT\0\0" + struct.pack("<L", 4) + b"leaf"
    if defined:
        for _ in range(depth):
            item = struct.pack("<HHL", 0xFFFE, 0xE000, len(inner)) + inner
            inner = tag + struct.pack("<L", len(item)) + item
        return inner
    opening = (tag + b"\xff\xff\xff\xff" + struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)) * depth
    closing = (struct.pack("<HHL", 0xFFFE, 0xE00D, 0) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)) * depth
    return opening + inner + closing


def write_with_nesting(slice_path: Path, target: Path, depth: int, defined: bool = False) -> Path:
    """A real (explicit VR, uncompressed) slice with the nested sequence in front of its pixel data."""
    data = slice_path.read_bytes()
    at = data.rindex(struct.pack("<HH", 0x7FE0, 0x0010) + b"OW")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data[:at] + nested_sequence(depth, defined) + data[at:])
    return target
