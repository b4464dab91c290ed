"""Find candidate DICOM inputs: files (any name), folders, .zip archives and DICOMDIRs."""

from __future__ import annotations

import io
import os
import zipfile
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

    @property
    def label(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def size(self) -> int:
        if self.member is None:
            return self.path.stat().st_size
        with zipfile.ZipFile(self.path) as archive:
            return archive.getinfo(self.member).file_size

    def read_bytes(self) -> bytes:
        """Whole content, refusing absurd sizes before reading."""
        size = self.size()
        limit = LIMITS.max_file_bytes if self.member is None else LIMITS.max_zip_member_bytes
        if size > limit:
            raise SizeLimitError(f"File is {size} bytes, larger than the {limit}-byte limit", path=self.label)
        if self.member is None:
            return self.path.read_bytes()
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as member:
                data = member.read(limit + 1)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
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
    """Members of a zip archive that could be DICOM (folders and DICOMDIR skipped)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptDicomError(f"Zip archive cannot be read: {exc}", path=str(path)) from exc
    for info in sorted(infos, key=lambda i: i.filename):
        name = info.filename.rsplit("/", 1)[-1]
        if info.is_dir() or not name or name.upper() == "DICOMDIR" or name in _SKIP_NAMES:
            continue
        yield DicomSource(path, info.filename)


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
