"""Every real file we can get our hands on ends in a Volume or a named WorkstationError."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from workstation.dicom.load import load_volume
from workstation.errors import WorkstationError
from workstation.imaging.volume import Volume

PER_FILE_SECONDS = 10.0  # a hang guard, not a speed target


def _corpus() -> list[Path]:
    pydicom_files = Path(get_testdata_file("CT_small.dcm")).parent
    pydicom_data = Path(get_testdata_file("eCT_Supplemental.dcm")).parent
    files = [p for p in pydicom_files.rglob("*") if p.is_file()]
    files += [p for p in pydicom_data.rglob("*") if p.is_file()]
    return sorted(set(files))


def test_corpus_is_large() -> None:
    assert len(_corpus()) > 200


def test_every_pydicom_test_file_loads_or_fails_by_name() -> None:
    loaded, refused, slow = [], [], []
    for path in _corpus():
        start = time.perf_counter()
        try:
            volume = load_volume(path)
            assert isinstance(volume, Volume)
            loaded.append(path.name)
        except WorkstationError as exc:
            assert str(exc).strip() and "\n" not in str(exc), path
            refused.append(path.name)
        if time.perf_counter() - start > PER_FILE_SECONDS:
            slow.append(path.name)
    assert not slow
    # CT files in the corpus that must load (plain, JPEG 2000, enhanced multi-frame, DICOMDIR sets)
    for name in ("CT_small.dcm", "693_J2KR.dcm", "693_UNCR.dcm", "eCT_Supplemental.dcm"):
        assert name in loaded
    assert "MR_small.dcm" in refused


def test_enhanced_ct_multiframe_becomes_a_volume() -> None:
    volume = load_volume(Path(get_testdata_file("eCT_Supplemental.dcm")))
    assert volume.shape == (2, 512, 512)
    assert volume.spacing_mm[2] > 0


def test_every_real_ct_file_and_folder(real_ct: Path) -> None:
    for path in sorted(real_ct.rglob("*")):
        try:
            load_volume(path)
        except WorkstationError:
            pass
    for folder in sorted(p for p in real_ct.iterdir() if p.is_dir()):
        assert load_volume(folder).shape[0] >= 20


def test_a_file_that_vanishes_during_a_scan_is_skipped_by_name(tmp_path: Path) -> None:
    """A data folder's SQLite -shm/-wal files come and go while a folder is scanned."""
    from workstation.dicom.headers import read_headers
    from workstation.dicom.sources import DicomSource
    from workstation.errors import NotDicomError

    with pytest.raises(NotDicomError, match="cannot be read"):
        read_headers(DicomSource(tmp_path / "library.db-shm"))
