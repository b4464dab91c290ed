"""Find candidate DICOM inputs: files (any name), folders, .zip archives and DICOMDIRs."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from workstation.config import LIMITS
from workstation.errors import NoSeriesError, SizeLimitError, UnsafePathError, CorruptDicomError

_SKIP_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}


@dataclass(frozen=True)
class DicomSource:
    """One candidate file: a path on disk, or a member of a zip archive."""

    path: Path
    member: str | None = None
    # Why this listed file is not read (a DICOMDIR record that leaves its folder, or names a
    # missing file): reported as a skipped file, so the other records still load.
    refusal: str | None = None
    # A zip member's sizes as its archive's central directory declares them (zipfile never yields
    # more than declared), so limits are checked without reopening the archive.
    declared_size: int | None = None
    compressed_size: int | None = None

    @property
    def label(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def size(self) -> int:
        if self.member is None:
            return self.path.stat().st_size
        if self.declared_size is not None:
            return self.declared_size
        return open_archive(self.path).getinfo(self.member).file_size

    def read_bytes(self) -> bytes:
        """Whole content, refusing absurd sizes (and, for zip members, compression ratios) before reading."""
        size = self.size()
        if self.member is None:
            if size > LIMITS.max_file_bytes:
                raise SizeLimitError(f"File is {size} bytes, larger than the {LIMITS.max_file_bytes}-byte limit",
                                     path=self.label)
            return self.path.read_bytes()
        limit = LIMITS.max_zip_member_bytes
        check_zip_member(size, size if self.compressed_size is None else self.compressed_size, self.label)
        try:
            with open_archive(self.path).open(self.member) as member:
                data = member.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
            raise CorruptDicomError(f"Zip member cannot be read: {exc}", path=self.label) from exc
        if len(data) > limit:
            raise SizeLimitError("Zip member expands beyond the size limit", path=self.label)
        return data

    def open(self) -> BinaryIO:
        """A seekable binary stream; zip members are read into memory."""
        if self.member is None:
            return open(self.path, "rb")
        return io.BytesIO(self.read_bytes())


def find_sources(paths: list[Path] | tuple[Path, ...]) -> list[DicomSource]:
    """Every candidate file under `paths`, in a stable order. Raises NoSeriesError if none exist."""
    found: list[DicomSource] = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise NoSeriesError("Path does not exist", path=str(path))
        found.extend(_expand(path))
    return found


def _expand(path: Path) -> Iterator[DicomSource]:
    if path.is_dir():
        for root, dirs, files in os.walk(path, followlinks=False):
            dirs.sort()
            for name in sorted(files):
                if name in _SKIP_NAMES or name.startswith("._"):
                    continue
                file_path = Path(root) / name
                if name.upper() == "DICOMDIR":
                    continue  # its referenced files are found by the walk itself
                yield from _expand_file(file_path)
    elif path.name.upper() == "DICOMDIR":
        yield from dicomdir_sources(path)
    else:
        yield from _expand_file(path)


def _expand_file(path: Path) -> Iterator[DicomSource]:
    if path.is_symlink() or not path.is_file():
        return
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        yield from zip_sources(path)
    else:
        yield DicomSource(path)


def zip_sources(path: Path) -> Iterator[DicomSource]:
    """Members of a zip archive that could be DICOM (folders and DICOMDIR skipped), listed from one
    reading of its central directory."""
    try:
        infos = open_archive(path).infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptDicomError(f"Zip archive cannot be read: {exc}", path=str(path)) from exc
    if len(infos) > LIMITS.max_zip_members:
        raise SizeLimitError(f"Zip archive holds {len(infos)} entries, more than the limit of "
                             f"{LIMITS.max_zip_members}", path=str(path))
    for info in sorted(infos, key=lambda i: i.filename):
        name = info.filename.rsplit("/", 1)[-1]
        if info.is_dir() or not name or name.upper() == "DICOMDIR" or name in _SKIP_NAMES:
            continue
        yield DicomSource(path, info.filename, declared_size=info.file_size, compressed_size=info.compress_size)


def check_zip_member(declared: int, compressed: int, label: str) -> None:
    """Refuse a member whose declared size is over the limit, or which expands far beyond what real
    DICOM compresses to (a zip bomb), before a byte of it is inflated."""
    if declared > LIMITS.max_zip_member_bytes:
        raise SizeLimitError(f"Zip member declares {declared} bytes, over the {LIMITS.max_zip_member_bytes}-byte "
                             "limit", path=label)
    if declared > LIMITS.zip_ratio_free_bytes and declared > LIMITS.max_zip_ratio * max(compressed, 1):
        raise SizeLimitError(f"Zip member expands {declared // max(compressed, 1)}-fold ({compressed} to {declared} "
                             f"bytes), beyond the {LIMITS.max_zip_ratio}-fold limit: refused as a zip bomb",
                             path=label)


# One open ZipFile per archive, shared by all its members (reopening parsed the whole central
# directory for every member: quadratic in the member count). Keyed by the file's identity, so a
# replaced archive is reopened; a few are kept, the oldest closed.
_ARCHIVES: OrderedDict[tuple, zipfile.ZipFile] = OrderedDict()
_ARCHIVES_LOCK = threading.Lock()
_ARCHIVES_KEPT = 4


def open_archive(path: Path) -> zipfile.ZipFile:
    """The shared open ZipFile of `path` (zipfile reads from one handle safely across threads)."""
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _ARCHIVES_LOCK:
        archive = _ARCHIVES.get(key)
        if archive is not None:
            _ARCHIVES.move_to_end(key)
            return archive
        archive = zipfile.ZipFile(path)
        _ARCHIVES[key] = archive
        while len(_ARCHIVES) > _ARCHIVES_KEPT:
            _ARCHIVES.popitem(last=False)[1].close()
        return archive


def close_archives() -> None:
    """Close every shared archive (after an import, so no file handle outlives it)."""
    with _ARCHIVES_LOCK:
        while _ARCHIVES:
            _ARCHIVES.popitem()[1].close()


def dicomdir_sources(path: Path) -> Iterator[DicomSource]:
    """Files a DICOMDIR references, refusing any reference that leaves its folder."""
    from workstation.dicom import configured_pydicom

    pydicom = configured_pydicom()
    root = path.parent.resolve()
    try:
        ds = pydicom.dcmread(path)
        records = list(ds.get("DirectoryRecordSequence", []))
    except (pydicom.errors.InvalidDicomError, OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorruptDicomError(f"DICOMDIR cannot be read: {exc}", path=str(path)) from exc
    for number, record in enumerate(records, 1):
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [str(p) for p in ([file_id] if isinstance(file_id, str) else list(file_id))]
        try:
            target = safe_join(root, *parts)
        except UnsafePathError as exc:
            yield DicomSource(path, f"record {number}", refusal=f"DICOMDIR record {number} was not followed: {exc}")
            continue
        if target.is_file():
            yield DicomSource(target)
        else:
            yield DicomSource(path, f"record {number}", refusal=f"DICOMDIR record {number} names "
                                                              f"{'/'.join(parts)}, which is not on the medium")


def safe_join(root: Path, *parts: str) -> Path:
    """root/parts, refusing absolute parts, '..' and anything that resolves outside root."""
    root = root.resolve()
    for part in parts:
        if not part or part in {".", ".."} or "/" in part or "\\" in part or "\x00" in part or Path(part).is_absolute():
            raise UnsafePathError(f"Refusing unsafe path component {part!r}", path=str(root))
    target = root.joinpath(*parts).resolve()
    if target != root and root not in target.parents:
        raise UnsafePathError("Refusing a path outside the data folder", path=str(target))
    return target
