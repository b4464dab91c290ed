"""Seeded hostile inputs at the level of a series, an archive or a medium (issue #21, item 10):
what byte mutations of one file never make. Each case puts a good series beside the hostile
part; the rule every case checks is that the good series always loads whole, and that the
hostile part ends in a result or a named WorkstationError, never anything else.

Case `i` of a family is always the same input, so a failure reproduces from its index.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.fuzz.mutants import _first_element_after_meta
from workstation.dicom.deidentify import deidentify_job
from workstation.dicom.load import load_series_job
from workstation.dicom.series import ScanResult, scan_job
from workstation.errors import WorkstationError
from workstation.jobs import run_job
from workstation.library import StudyLibrary


@dataclass(frozen=True)
class Series:
    """A small real-format series on disk: its files and Series Instance UID."""

    files: list[Path]
    uid: str


def _scan(target: Path) -> ScanResult:
    return run_job(scan_job([target]))


def _good_is_whole(scan: ScanResult, good: Series) -> None:
    found = [s for s in scan.series if s.metadata["series_uid"] == good.uid]
    assert found and len(found[0].slices) == len(good.files), \
        f"the good series lost slices: {[len(s.slices) for s in found]} of {len(good.files)}"


def _copy(series: Series, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(path, folder / path.name)) for path in series.files]


def geometry_outlier(rng: np.random.Generator, work: Path, good: Series, victim: Series) -> str:
    """Slices moved far off their series, in-plane or along it, or given a degenerate orientation."""
    _copy(good, work / "good")
    files = _copy(victim, work / "victim")
    for path in rng.choice(files, size=int(rng.integers(1, 4)), replace=False):
        ds = pydicom.dcmread(path)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        kind = int(rng.integers(4))
        offset = float(10 ** rng.uniform(2, 12)) * float(rng.choice([-1, 1]))
        if kind == 0:
            ds.ImagePositionPatient = [x, y, z + offset]
        elif kind == 1:
            ds.ImagePositionPatient = [x + offset, y, z]
        elif kind == 2:
            ds.ImagePositionPatient = [x, y, z + float(rng.uniform(-0.4, 0.4))]  # a near-duplicate position
        else:
            ds.ImageOrientationPatient = [float(v) for v in rng.choice([0.0, 1.0, 1e-9], size=6)]
        ds.save_as(path)
    scan = _scan(work)
    _good_is_whole(scan, good)
    for series in scan.series:
        if series.metadata["series_uid"] == victim.uid:
            try:
                volume = run_job(load_series_job(series))
            except WorkstationError:
                return "named error"
            assert volume.voxels.size <= 1024 * 1024 * 1200
            return "volume"
    return "victim skipped"


def duplicate_uid(rng: np.random.Generator, work: Path, good: Series, victim: Series) -> str:
    """Copies of slices under other names: identical (duplicates) or altered but with the same
    SOP Instance UID (both kept and named, never silently dropped)."""
    _copy(good, work / "good")
    files = _copy(victim, work / "victim")
    for number, path in enumerate(rng.choice(files, size=int(rng.integers(1, 6)), replace=True)):
        copy = work / "victim" / f"copy-{number}"
        if rng.random() < 0.5:
            shutil.copy2(path, copy)
        else:
            ds = pydicom.dcmread(path)
            ds.InstanceNumber = int(rng.integers(1000, 2000))
            ds.save_as(copy)
    contents = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (work / "victim").iterdir()}
    home = work / "home"
    library = StudyLibrary(home)
    try:
        report = run_job(library.import_job([work]))
    finally:
        library.db.close()
    stored = StudyLibrary(home)
    try:
        kept = stored.db.execute("SELECT count(*) FROM instances i JOIN series s ON i.series_key = s.key "
                                 "WHERE s.series_uid = ?", [victim.uid]).fetchone()[0]
        good_kept = stored.db.execute("SELECT count(*) FROM instances i JOIN series s ON i.series_key = s.key "
                                      "WHERE s.series_uid = ?", [good.uid]).fetchone()[0]
    finally:
        stored.db.close()
    assert good_kept == len(good.files)
    assert kept == len(contents), f"{len(contents)} different files, {kept} kept"
    return "shared UIDs named" if report.shared_uids else "duplicates only"


def zip_archive(rng: np.random.Generator, work: Path, good: Series, victim: Series) -> str:
    """Archives with many members, members that inflate a thousand-fold, junk, and a good series."""
    archive = work / "media.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in good.files:
            out.write(path, f"good/{path.name}")
        for number in range(int(rng.integers(0, 1500))):
            out.writestr(f"junk/{number:05d}", bytes(rng.integers(0, 256, int(rng.integers(0, 8)), dtype=np.uint8)))
        bombs = int(rng.integers(0, 3))
        for number in range(bombs):
            with out.open(f"bomb/{number}.dcm", "w", force_zip64=True) as member:
                block = bytes(1 << 20)
                for _ in range(int(rng.integers(17, 21))):
                    member.write(block)
        if rng.random() < 0.5:
            inner = work / "inner.zip"
            with zipfile.ZipFile(inner, "w") as nested:
                nested.write(victim.files[0], "x.dcm")
            out.write(inner, "nested.zip")
    scan = _scan(archive)
    _good_is_whole(scan, good)
    refused = sum("zip bomb" in reason for _label, reason in scan.skipped)
    assert refused == bombs, f"{bombs} members inflating 1,000-fold, {refused} refused as zip bombs"
    return "with refusals" if scan.skipped else "clean"


def dicomdir_records(rng: np.random.Generator, work: Path, good: Series, victim: Series) -> str:
    """A DICOMDIR whose records point at real files, missing files, '..', absolute paths and
    empty components; the real ones load."""
    medium = work / "medium"
    (medium / "IMAGES").mkdir(parents=True)
    names = []
    for number, path in enumerate(good.files):
        name = f"IM{number:04d}"
        shutil.copy2(path, medium / "IMAGES" / name)
        names.append(["IMAGES", name])
    hostile = [["..", "..", "etc", "passwd"], ["/etc/passwd"], ["IMAGES", "MISSING"], ["", "x"], [".."],
               ["IMAGES", "..", "..", "x"], ["IMAGES\\..\\x"], ["a\x00b"]]
    records = names + [hostile[int(i)] for i in rng.integers(0, len(hostile), int(rng.integers(1, 6)))]
    order = rng.permutation(len(records))
    _write_dicomdir(medium / "DICOMDIR", [records[int(i)] for i in order])
    scan = _scan(medium / "DICOMDIR")
    _good_is_whole(scan, good)
    assert scan.skipped, "a hostile record was followed silently"
    return "records refused"


def _write_dicomdir(path: Path, file_ids: list[list[str]]) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.FileSetID = "FUZZ"
    records = []
    for parts in file_ids:
        record = Dataset()
        record.DirectoryRecordType = "IMAGE"
        record.ReferencedFileID = parts if len(parts) > 1 else parts[0]
        records.append(record)
    ds.DirectoryRecordSequence = records
    ds.save_as(path, enforce_file_format=True)


def name_bytes(rng: np.random.Generator, work: Path, good: Series, victim: Series) -> str:
    """File and folder names of arbitrary bytes (invalid UTF-8, control characters, very long)."""
    folder = work / "media"
    folder.mkdir()
    for path in good.files:
        raw = bytes(b for b in rng.integers(1, 256, int(rng.integers(1, 120)), dtype=np.uint8) if b != ord("/"))
        raw = raw or b"x"
        target = os.path.join(os.fsencode(folder), raw + b"-" + path.name.encode())
        with open(target, "wb") as stream:
            stream.write(path.read_bytes())
    scan = _scan(folder)
    _good_is_whole(scan, good)
    home = work / "home"
    library = StudyLibrary(home)
    try:
        run_job(library.import_job([folder]))
    finally:
        library.db.close()
    return "imported"


def deid_nesting(rng: np.random.Generator, work: Path, good: Series, victim: Series) -> str:
    """De-identification of a series with one slice holding a sequence nested very deep and an
    oversized value: a named refusal or a clean output, in bounded time and memory."""
    files = _copy(victim, work / "victim")
    path = files[int(rng.integers(len(files)))]
    data = path.read_bytes()
    depth = int(rng.integers(1, 40) if rng.random() < 0.5 else rng.integers(40, 4000))
    opening = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    insert_at = _first_element_after_meta(data)
    path.write_bytes(data[:insert_at] + opening * depth + closing * depth + data[insert_at:])
    out = work / "out"
    try:
        run_job(deidentify_job([work / "victim"], out, b"fuzz-secret" * 3))
    except WorkstationError:
        assert not out.exists() or not any(out.rglob("*.dcm")), "a refused de-identification left files behind"
        return "named error"
    return "de-identified"


FAMILIES: dict[str, Callable[[np.random.Generator, Path, Series, Series], str]] = {
    "geometry_outlier": geometry_outlier, "duplicate_uid": duplicate_uid, "zip_archive": zip_archive,
    "dicomdir_records": dicomdir_records, "name_bytes": name_bytes, "deid_nesting": deid_nesting,
}
