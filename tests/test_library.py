"""The local study library: copies, idempotent re-import, safe paths, CLI output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.fileset import FileSet

from workstation.cli import main
from workstation.dicom.load import scan
from workstation.dicom.sources import find_sources, safe_join
from workstation.errors import UnsafePathError
from workstation.jobs import run_job
from workstation.library import StudyLibrary


def test_import_copies_and_is_idempotent(home: Path, phantom_copy: Path) -> None:
    library = StudyLibrary(home)
    first = run_job(library.import_job([phantom_copy]))
    count = len(list(phantom_copy.iterdir()))
    assert first.files_copied == count and first.files_already_present == 0
    second = run_job(StudyLibrary(home).import_job([phantom_copy]))
    assert second.files_copied == 0 and second.files_already_present == count
    assert library.db["studies"].count == 1 and library.db["series"].count == 1
    assert library.db["instances"].count == count
    stored = list((home / "studies").rglob("*.dcm"))
    assert len(stored) == count
    assert all(p.name[:-4].isalnum() for p in stored)  # hashed names, nothing from the input


def test_study_survives_removal_of_the_source(home: Path, phantom_copy: Path, capsys) -> None:
    assert main(["import", str(phantom_copy)]) == 0
    shutil.rmtree(phantom_copy)
    capsys.readouterr()
    assert main(["info", "1", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["series"][0]
    assert info["shape"][1:] == [128, 128]
    assert set(info) >= {"shape", "spacing_mm", "affine", "orientation", "hu_range", "identifiers", "warnings"}
    assert info["identifiers"]["patient_id"] == "PH000011"


def test_list_and_info_by_path(home: Path, real_ct: Path, capsys) -> None:
    assert main(["import", str(real_ct / "abdomen-j2k-empty-uids"), str(real_ct / "chest-5mm-lesion14mm")]) == 0
    capsys.readouterr()
    assert main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "ANON^LUNG1" in listing and listing.count("\n") == 2
    assert main(["info", str(real_ct / "head-gantry-tilt")]) == 0
    text = capsys.readouterr().out
    assert "Gantry tilt" in text and "spacing_mm" in text


def test_cli_errors_are_one_sentence(home: Path, tmp_path: Path, capsys) -> None:
    assert main(["info", "no-such-study"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No study") and "Traceback" not in err
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.dcm").write_bytes(b"\x00" * 300)
    assert main(["import", str(junk)]) == 2
    assert "No CT series found" in capsys.readouterr().err


def test_dicomdir_is_followed(phantom_copy: Path, tmp_path: Path) -> None:
    fileset = FileSet()
    for path in sorted(phantom_copy.iterdir())[:5]:
        fileset.add(dcmread(path))
    media = tmp_path / "media"
    fileset.write(media)
    sources = find_sources([media / "DICOMDIR"])
    assert len(sources) == 5


def test_dicomdir_paths_cannot_escape_and_the_other_records_still_load(tmp_path: Path, phantom_copy: Path) -> None:
    """A record pointing out of the medium, or at a missing file, is skipped with its reason; the
    valid records load (before, one such record refused all of them)."""
    fileset = FileSet()
    for path in sorted(phantom_copy.iterdir())[:6]:
        fileset.add(dcmread(path))
    media = tmp_path / "media"
    fileset.write(media)
    ds = dcmread(media / "DICOMDIR")
    images = [record for record in ds.DirectoryRecordSequence if "ReferencedFileID" in record]
    images[0].ReferencedFileID = ["..", "..", "etc", "passwd"]
    images[1].ReferencedFileID = ["NOWHERE", "X"]
    ds.save_as(media / "DICOMDIR")
    result = scan([media / "DICOMDIR"])
    assert sum(len(series.slices) for series in result.series) == 4
    reasons = [reason for _label, reason in result.skipped]
    assert any("was not followed" in r and "unsafe path" in r.lower() for r in reasons), reasons
    assert any("not on the medium" in r for r in reasons), reasons


@pytest.mark.parametrize("part", ["..", "/etc", "a/b", "", "x\x00y"])
def test_safe_join_refuses_escapes(tmp_path: Path, part: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, part)


def test_files_sharing_a_sop_instance_uid_are_kept_and_named(home: Path, phantom_copy: Path, capsys) -> None:
    """#21 item 3: different files under one SOPInstanceUID are all kept and reported (before: '1
    copied, 15 already in the library' and 15 slices gone); identical copies count once."""
    files = sorted(phantom_copy.iterdir())
    for path in files:
        ds = dcmread(path)
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.42"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path)
    shutil.copy(files[0], phantom_copy / "copy-of-the-first.dcm")  # the same bytes again
    assert main(["import", str(phantom_copy)]) == 0
    out = capsys.readouterr().out
    assert f"{len(files)} file(s) copied, 1 already in the library" in out
    assert "although another file has its SOPInstanceUID 1.2.826.0.1.3680043.8.498.42" in out
    assert main(["info", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["series"][0]["shape"][0] == len(files)
