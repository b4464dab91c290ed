"""Bounds on a DICOM file's structure, checked from its bytes before pydicom parses it.

pydicom reads, converts, copies and writes nested sequences recursively. A 40 KB file that
nests sequences 300 deep makes it hit Python's recursion limit while writing, and its error
handler then formats a traceback at every level: minutes and tens of gigabytes. This walker is
iterative and only reads element headers (values are skipped by their length), so it measures
the nesting depth and counts the elements of any file in bounded time and memory, and refuses
one beyond STRUCTURE_LIMITS with a named error before anything recursive sees it.

It follows the encodings the way pydicom reads them (explicit or implicit VR in either byte
order, UN of undefined length read as an implicit sequence, the switch to implicit VR some
writers make inside sequences, deflated data sets); where the bytes end early it stops, and the
reader that comes next owns the truncation error.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from typing import BinaryIO

from workstation.errors import SizeLimitError

_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xE000, 0xE00D, 0xE0DD
_IMPLICIT, _BIG_ENDIAN, _DEFLATED = "1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"
_SEARCH_BLOCK = 1 << 20


@dataclass(frozen=True)
class StructureLimits:
    # Real IODs nest a few levels (enhanced CT functional groups 3, SR content trees rarely 10);
    # pydicom's recursion stays far from Python's limit below this.
    max_sequence_depth: int = 32
    # Element and item headers in one file (a CT slice has a few hundred; a large multi-frame
    # or structure set some tens of thousands); bounds the time of every later walk.
    max_elements: int = 500_000
    # A deflated data set, once inflated (a deflated CT slice is well under a megabyte; pydicom
    # inflates it whole, so this bounds its memory too). The walk itself inflates in blocks.
    max_inflated_bytes: int = 512 * 1024**2


STRUCTURE_LIMITS = StructureLimits()


@dataclass(frozen=True)
class Structure:
    depth: int  # deepest sequence nesting (0: no sequences)
    elements: int  # element and item headers read


class _Frame:
    """An open sequence or item: where it ends (None: at its delimiter) and how its content is encoded."""

    __slots__ = ("end", "explicit", "is_sequence")

    def __init__(self, is_sequence: bool, end: int | None, explicit: bool) -> None:
        self.is_sequence, self.end, self.explicit = is_sequence, end, explicit


def check_structure(stream: BinaryIO, label: str = "The file",
                    limits: StructureLimits = STRUCTURE_LIMITS) -> Structure:
    """The file's nesting depth and element count; SizeLimitError when either is over `limits`.
    Reads from the stream's current position (preamble and file meta information included)."""
    reader = _Reader(stream)
    explicit, little = True, True
    head = reader.read(132)
    if len(head) == 132 and head[128:] == b"DICM":
        explicit, little = _file_meta(reader, limits, label)
    else:
        reader.seek_to(0)
        explicit = _looks_explicit(reader.peek(6))
    if reader.deflated:
        reader = _Reader(_Inflating(reader, limits.max_inflated_bytes, label))
    return _walk(reader, explicit, little, limits, label)


def _file_meta(reader: _Reader, limits: StructureLimits, label: str) -> tuple[bool, bool]:
    """Read group 0002 (always explicit VR little endian); the data set's encoding."""
    syntax, count = "", 0
    while True:
        header = reader.peek(8)
        if len(header) < 8 or struct.unpack("<H", header[:2])[0] != 0x0002:
            break
        count += 1
        if count > limits.max_elements:
            raise SizeLimitError(f"{label} holds more than {limits.max_elements} data elements; refused")
        element, vr = struct.unpack("<H2s", header[2:6])
        if vr in _LONG_VRS:
            reader.read(8)
            raw = reader.read(4)
            if len(raw) < 4:
                break
            length = struct.unpack("<L", raw)[0]
        else:
            reader.read(8)
            length = struct.unpack("<H", header[6:8])[0]
        if length == _UNDEFINED:
            break
        if element == 0x0010:
            syntax = reader.read(min(length, 256)).decode("ascii", "replace").strip("\0 ")
            reader.skip(max(0, length - 256))
        else:
            reader.skip(length)
    reader.deflated = syntax == _DEFLATED
    return syntax != _IMPLICIT, syntax != _BIG_ENDIAN


def _looks_explicit(header: bytes) -> bool:
    return len(header) >= 6 and 65 <= header[4] <= 90 and 65 <= header[5] <= 90


class _Inflating:
    """A deflated data set read inflated, a block at a time (memory stays at a block)."""

    def __init__(self, source: _Reader, limit: int, label: str) -> None:
        self._source, self._limit, self._label = source, limit, label
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending, self._total, self._ended = b"", 0, False

    def seekable(self) -> bool:
        return False

    def read(self, size: int) -> bytes:
        while len(self._pending) < size and not self._ended:
            data = self._inflater.unconsumed_tail or self._source.read(_SEARCH_BLOCK)
            try:
                part = self._inflater.decompress(data, _SEARCH_BLOCK) if data else self._inflater.flush()
            except zlib.error:
                part, self._ended = b"", True  # damaged: the reader that comes next says so
            self._ended = self._ended or not data or self._inflater.eof
            self._total += len(part)
            if self._total > self._limit:
                raise SizeLimitError(f"{self._label} inflates to more than {self._limit} bytes; refused")
            self._pending += part
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def _walk(reader: _Reader, explicit: bool, little: bool, limits: StructureLimits, label: str) -> Structure:
    from pydicom.datadict import dictionary_VR

    order = "<" if little else ">"
    stack: list[_Frame] = []
    depth = deepest = elements = 0
    while True:
        # containers of defined length end where their length says
        while stack and stack[-1].end is not None and reader.position >= stack[-1].end:
            depth -= stack.pop().is_sequence
        header = reader.read(8)
        if len(header) < 8:
            break  # the end of the data (or truncation, which the reader that comes next reports)
        elements += 1
        if elements > limits.max_elements:
            raise SizeLimitError(f"{label} holds more than {limits.max_elements} data elements; refused")
        group, element = struct.unpack(order + "HH", header[:4])
        current = stack[-1].explicit if stack else explicit
        if group == 0xFFFE:  # item and delimiter tags: tag and 4-byte length in every encoding
            length = struct.unpack(order + "L", header[4:])[0]
            if element == _ITEM and stack and stack[-1].is_sequence:
                stack.append(_Frame(False, _bounded(reader.position, length, stack), current))
            elif element in (_ITEM_END, _SEQUENCE_END) and stack:
                wanted = element == _SEQUENCE_END
                while stack and stack[-1].is_sequence != wanted:  # a missing delimiter closes its inner frames
                    depth -= stack.pop().is_sequence
                if stack:
                    depth -= stack.pop().is_sequence
            continue
        vr = header[4:6]
        if current and 65 <= vr[0] <= 90 and 65 <= vr[1] <= 90:
            if vr in _LONG_VRS:
                raw = reader.read(4)
                if len(raw) < 4:
                    break
                length = struct.unpack(order + "L", raw)[0]
            else:
                length = struct.unpack(order + "H", header[6:])[0]
        else:  # implicit VR (also where a writer switched to it inside explicit data)
            vr, length = b"", struct.unpack(order + "L", header[4:])[0]
        tag = (group << 16) | element
        if _is_sequence(tag, vr, length, dictionary_VR):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limits.max_sequence_depth:
                raise SizeLimitError(f"{label} nests sequences more than {limits.max_sequence_depth} deep; refused "
                                     "before reading it")
            # UN read as a sequence is implicit VR inside; an explicit SQ may have switched (the
            # first element of its first item tells, as pydicom decides)
            inner_explicit = current and vr == b"SQ" and _looks_explicit(reader.peek(14)[8:])
            stack.append(_Frame(True, None if length == _UNDEFINED else _bounded(reader.position, length, stack),
                                inner_explicit))
        elif length == _UNDEFINED:  # encapsulated pixel data and the like: read up to the delimiter
            if not reader.skip_past(struct.pack(order + "HH", 0xFFFE, _SEQUENCE_END)):
                break
            reader.skip(4)
        else:
            reader.skip(length)
    return Structure(deepest, elements)


def _is_sequence(tag: int, vr: bytes, length: int, dictionary_VR) -> bool:
    """Whether pydicom reads the element as a sequence (and so recurses into it)."""
    if vr == b"SQ":
        return True
    if vr not in (b"", b"UN"):
        return False
    if length == _UNDEFINED and tag != 0x7FE00010:
        return True
    try:
        return dictionary_VR(tag) == "SQ"  # implicit VR, or UN that pydicom replaces by the known VR
    except KeyError:
        return False


def _bounded(position: int, length: int, stack: list[_Frame]) -> int | None:
    """Where a container of `length` ends, never past the container holding it."""
    if length == _UNDEFINED:
        return None
    end = position + length
    for frame in reversed(stack):
        if frame.end is not None:
            return min(end, frame.end)
    return end


class _Reader:
    """Reads and skips forward in a stream, counting the position; seekable or not."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream, self.position, self._buffer, self.deflated = stream, 0, b"", False
        self._start = stream.tell() if stream.seekable() else 0

    def read(self, size: int) -> bytes:
        data = self._buffer[:size]
        self._buffer = self._buffer[size:]
        if len(data) < size:
            data += self.stream.read(size - len(data))
        self.position += len(data)
        return data

    def peek(self, size: int) -> bytes:
        if len(self._buffer) < size:
            self._buffer += self.stream.read(size - len(self._buffer))
        return self._buffer[:size]

    def seek_to(self, position: int) -> None:
        self.stream.seek(self._start + position)
        self.position, self._buffer = position, b""

    def skip(self, size: int) -> None:
        if size <= len(self._buffer):
            self.read(size)
            return
        size -= len(self._buffer)
        self.position += len(self._buffer)
        self._buffer = b""
        if self.stream.seekable():
            before = self.stream.tell()
            end = self.stream.seek(0, io.SEEK_END)
            target = min(before + size, end)
            self.stream.seek(target)
            self.position += target - before
        else:
            while size > 0 and (block := self.stream.read(min(size, _SEARCH_BLOCK))):
                size -= len(block)
                self.position += len(block)

    def skip_past(self, marker: bytes) -> bool:
        """Read up to and including `marker`; False when the stream ends first."""
        tail = b""
        while True:
            block = self.read(_SEARCH_BLOCK)
            if not block:
                return False
            window = tail + block
            found = window.find(marker)
            if found >= 0:
                consumed_after = len(window) - (found + len(marker))
                self._buffer = window[found + len(marker):] + self._buffer
                self.position -= consumed_after
                return True
            tail = window[-(len(marker) - 1):]
