"""The fast paths (header walker, JPEG lossless via libjpeg-turbo, threaded decode) give
exactly what pydicom gives, on real files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.jpeg_lossless import write_jpeg_lossless
from workstation.dicom.decode import stored_values
from workstation.dicom.fastheader import read_fast
from workstation.dicom.headers import read_headers
from workstation.dicom.load import load_series_job, load_volume
from workstation.dicom.series import scan_job
from workstation.dicom.sources import DicomSource
from workstation.errors import CancelledError, WorkstationError
from workstation.jobs import CancelToken, run_job

_SKIP_FIELDS = {"metadata"}


def _headers_both_ways(path: Path):
    """(fast, pydicom) SliceHeaders for a file, the fast one only if the walker accepts it."""
    source = DicomSource(path)
    slow = read_headers(source)  # no cache: always pydicom
    cache: dict = {}
    cache_key = (slow[0].metadata["study_uid"], slow[0].metadata["series_uid"])
    cache[cache_key] = slow[0].metadata
    with open(path, "rb") as stream:
        accepted = read_fast(stream) is not None
    fast = read_headers(source, cache)
    return accepted, fast, slow


def _corpus(real_ct: Path, small_phantom_dir: Path) -> list[Path]:
    files = sorted(Path(get_testdata_file("CT_small.dcm")).parent.glob("*.dcm"))
    files += sorted(Path(get_testdata_file("eCT_Supplemental.dcm")).parent.glob("*.dcm"))
    for folder in sorted(p for p in real_ct.iterdir() if p.is_dir()):
        files += sorted(folder.iterdir())[:3]
    return files + sorted((small_phantom_dir / "dicom").iterdir())[:3]


def test_header_walker_agrees_with_pydicom(real_ct: Path, small_phantom_dir: Path) -> None:
    accepted_count = 0
    for path in _corpus(real_ct, small_phantom_dir):
        try:
            accepted, fast, slow = _headers_both_ways(path)
        except WorkstationError:
            continue
        accepted_count += accepted
        assert len(fast) == len(slow)
        for a, b in zip(fast, slow):
            for field in dataclasses.fields(a):
                if field.name not in _SKIP_FIELDS:
                    assert getattr(a, field.name) == getattr(b, field.name), (path.name, field.name)
    assert accepted_count >= 10  # the walker really ran on real scanner and phantom files


def test_header_walker_reads_the_series_metadata_as_pydicom_does(real_ct: Path, small_phantom_dir: Path) -> None:
    """With an empty cache the walker also supplies patient, study and scanner metadata."""
    compared = 0
    for path in _corpus(real_ct, small_phantom_dir):
        with open(path, "rb") as stream:
            if read_fast(stream) is None:
                continue
        try:
            slow = read_headers(DicomSource(path))
        except WorkstationError:
            continue
        fast = read_headers(DicomSource(path), {})
        assert fast[0].metadata == slow[0].metadata, path.name
        compared += 1
    assert compared >= 10


@pytest.mark.parametrize(("charset", "name", "walker_reads_it"), [
    ("", "DOE^JOHN", True),
    ("ISO_IR 100", "MÜLLER^JÖRG", True),
    ("ISO_IR 192", "ΔΗΜΗΤΡΙΟΥ^ΕΛΕΝΗ", True),
    ("ISO_IR 144", "ИВАНОВ^ИВАН", False),  # Cyrillic: left to pydicom
    ("\\ISO 2022 IR 87", "YAMADA^TARO", False),  # code extensions: left to pydicom
])
def test_patient_names_in_each_character_set(small_phantom_dir: Path, tmp_path: Path, charset: str, name: str,
                                             walker_reads_it: bool) -> None:
    ds = pydicom.dcmread(sorted((small_phantom_dir / "dicom").iterdir())[0])
    if charset:
        ds.SpecificCharacterSet = charset.split("\\") if "\\" in charset else charset
    ds.PatientName = name
    ds.StudyDescription = name.split("^")[0]
    path = tmp_path / "slice.dcm"
    ds.save_as(path, enforce_file_format=True)
    with open(path, "rb") as stream:
        assert (read_fast(stream) is not None) is walker_reads_it
    header = read_headers(DicomSource(path), {})[0]
    assert header.metadata["patient_name"] == name
    assert header.metadata["study_description"] == name.split("^")[0]
    assert header.metadata == read_headers(DicomSource(path))[0].metadata


def test_a_name_outside_ascii_without_a_character_set_goes_to_pydicom(small_phantom_dir: Path,
                                                                       tmp_path: Path) -> None:
    ds = pydicom.dcmread(sorted((small_phantom_dir / "dicom").iterdir())[0])
    ds.pop("SpecificCharacterSet", None)
    ds.PatientName = "M\xfcller"
    path = tmp_path / "slice.dcm"
    ds.save_as(path, enforce_file_format=True)
    with open(path, "rb") as stream:
        assert read_fast(stream) is None
    assert read_headers(DicomSource(path), {})[0].metadata == read_headers(DicomSource(path))[0].metadata


def test_jpeg_lossless_fast_decode_matches_pydicom(tmp_path: Path) -> None:
    for name in ("JPEG-LL.dcm", "bad_sequence.dcm"):  # 16-bit signed NM, 12-bit unsigned CT
        original = pydicom.dcmread(get_testdata_file(name))
        ct = original.copy()
        ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ct.Modality = "CT"
        ct.ImagePositionPatient, ct.ImageOrientationPatient = [0, 0, 0], [1, 0, 0, 0, 1, 0]
        ct.PixelSpacing = ct.get("PixelSpacing") or [1, 1]
        ct.pop("NumberOfFrames", None)
        path = tmp_path / name
        ct.save_as(path)
        header = read_headers(DicomSource(path))[0]
        np.testing.assert_array_equal(stored_values(header), original.pixel_array)


def test_jpeg_lossless_series_equals_the_uncompressed_one(small_phantom_dir: Path, tmp_path: Path) -> None:
    plain = small_phantom_dir / "dicom"
    picked = sorted(plain.iterdir())[40:48]
    uncompressed, compressed = tmp_path / "plain", tmp_path / "jpeg"
    uncompressed.mkdir(), compressed.mkdir()
    for path in picked:
        (uncompressed / path.name).write_bytes(path.read_bytes())
        ds = pydicom.dcmread(path)  # GDCM refuses signed padding data: store it GE-unsigned first
        if int(ds.PixelRepresentation) == 1:
            ds.PixelData = np.clip(ds.pixel_array, 0, None).astype(np.uint16).tobytes()
            ds.PixelRepresentation, ds.BitsStored, ds.HighBit = 0, 12, 11
            ds.pop("PixelPaddingValue", None)
            ds.save_as(uncompressed / path.name)
        write_jpeg_lossless(uncompressed / path.name, compressed / path.name)
    assert pydicom.dcmread(next(compressed.iterdir())).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"
    np.testing.assert_array_equal(load_volume(compressed).voxels, load_volume(uncompressed).voxels)


def test_loading_can_be_cancelled(small_phantom_dir: Path) -> None:
    series = run_job(scan_job([small_phantom_dir / "dicom"])).series[0]
    cancel = CancelToken()
    job = load_series_job(series, cancel)
    progress = [next(job) for _ in range(5)]
    assert progress[-1].done == 5 and progress[-1].total == len(series.slices)
    cancel.cancel()
    with pytest.raises(CancelledError):
        next(job)
