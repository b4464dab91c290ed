"""Teaching packs as an attacker would make them: an answer key edited in the manifest, a pack
re-signed onto a clinical study's UIDs, members that declare (or hold) more than the limits.
Real zips, real DICOM, the real library and store."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import struct
import zipfile
from pathlib import Path

import pydicom
import pytest

from tests.teaching.test_pack_quiz import trainer_home  # noqa: F401 - the fixture
from workstation.config import LIMITS
from workstation.files import sha256_file
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.review.session import ReviewSession
from workstation.teaching.pack import (MANIFEST, MANIFEST_CHECKSUM, PackError, export_pack_job, import_pack_job,
                                       read_pack, teaching_case)


def _members(pack: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pack) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _resign(members: dict[str, bytes], manifest: dict) -> dict[str, bytes]:
    """What a forger does: every checksum, the manifest's own included, made to fit again."""
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()
                         if name not in (MANIFEST, MANIFEST_CHECKSUM)}
    text = json.dumps(manifest).encode()
    return {**members, MANIFEST: text, MANIFEST_CHECKSUM: f"{hashlib.sha256(text).hexdigest()}  {MANIFEST}\n".encode()}


@pytest.fixture
def pack(trainer_home, tmp_path: Path) -> Path:  # noqa: F811 - the imported fixture
    home, store, _ = trainer_home
    return run_job(export_pack_job(home, store, ["1"], tmp_path / "lecture.zip", notes="Two solid nodules.",
                                   created_by="dr_trainer"))


def test_an_edited_manifest_is_refused(pack: Path, tmp_path: Path) -> None:
    members = _members(pack)
    manifest = json.loads(members[MANIFEST])
    assert manifest["cases"][0]["answers"] and read_pack(pack)  # the untouched pack reads
    edits = {
        "answer moved": lambda m: m["cases"][0]["answers"][0]["center_mm"].__setitem__(0, 99.0),
        "answer removed": lambda m: m["cases"][0]["answers"].pop(),
        "answer added": lambda m: m["cases"][0]["answers"].append({"center_mm": [1, 2, 3], "diameter_mm": 9.0}),
        "notes changed": lambda m: m["cases"][0].__setitem__("notes", "No nodules."),
    }
    for what, edit in edits.items():
        changed = json.loads(members[MANIFEST])
        edit(changed)
        forged = _write(tmp_path / f"{what}.zip", {**members, MANIFEST: json.dumps(changed).encode()})
        with pytest.raises(PackError, match="manifest .* does not match its checksum"):
            read_pack(forged)
    without = _write(tmp_path / "no-checksum.zip", {k: v for k, v in members.items() if k != MANIFEST_CHECKSUM})
    with pytest.raises(PackError, match="does not match its checksum"):
        read_pack(without)
    old = json.loads(members[MANIFEST]) | {"format": "workstation-teaching-pack-1"}
    older = _write(tmp_path / "old.zip", {k: v for k, v in members.items() if k != MANIFEST_CHECKSUM} |
                   {MANIFEST: json.dumps(old).encode()})
    with pytest.raises(PackError, match="earlier version .* export it again"):
        read_pack(older)
    broken = json.loads(members[MANIFEST])
    broken["cases"][0]["answers"][0]["diameter_mm"] = float("nan")
    with pytest.raises(PackError, match="damaged manifest"):  # even re-signed, an answer must be a position
        read_pack(_write(tmp_path / "nan.zip", _resign(members, broken)))


def test_a_pack_resigned_onto_a_clinical_study_is_imported_apart(trainer_home, pack: Path,  # noqa: F811
                                                                  tmp_path: Path) -> None:
    home, store, truth = trainer_home
    library = StudyLibrary(home)
    clinical = library.studies()[0]
    clinical_series = library.series(clinical["key"])
    clinical_files = sorted(library.series_folder(clinical_series[0]).iterdir())
    clinical_sops = [str(pydicom.dcmread(path).SOPInstanceUID) for path in clinical_files]
    findings_before = ReviewSession.findings_of(store, clinical["study_uid"])

    # the forger rewrites every file onto the clinic's own study, series and instance UIDs
    members = _members(pack)
    manifest = json.loads(members[MANIFEST])
    dicom = sorted(name for name in members if name.endswith(".dcm"))
    assert len(dicom) == len(clinical_sops)
    for name, sop in zip(dicom, clinical_sops):
        dataset = pydicom.dcmread(io.BytesIO(members[name]))
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID = clinical["study_uid"], clinical_series[0]["series_uid"]
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = sop
        dataset.PatientName = "EVIL^RENAMED"
        out = io.BytesIO()
        dataset.save_as(out)
        members[name] = out.getvalue()
    manifest["cases"][0]["study_uid"] = clinical["study_uid"]
    forged = _write(tmp_path / "forged.zip", _resign(members, manifest))
    before = {path: sha256_file(path) for path in sorted((home / "studies").rglob("*")) if path.is_file()}

    cases = run_job(import_pack_job(forged, home, store, imported_by="admin"))

    studies = {s["study_uid"]: s for s in StudyLibrary(home).studies()}
    assert len(studies) == 2 and cases[0].study_uid != clinical["study_uid"]
    assert studies[clinical["study_uid"]] == clinical  # patient name, dates, folder: untouched
    assert StudyLibrary(home).series(clinical["key"]) == clinical_series
    assert {path: sha256_file(path) for path in before} == before  # not one clinical file overwritten
    assert teaching_case(store, clinical["study_uid"]) is None
    assert ReviewSession.findings_of(store, clinical["study_uid"]) == findings_before
    # the teaching copy is one consistent study of its own, with the answer key on it
    copy = studies[cases[0].study_uid]
    [series] = StudyLibrary(home).series(copy["key"])
    assert series["series_uid"] != clinical_series[0]["series_uid"] and series["slices"] == len(clinical_sops)
    sops = {str(pydicom.dcmread(p).SOPInstanceUID) for p in StudyLibrary(home).series_folder(series).iterdir()}
    # (the canary series gives every slice one SOPInstanceUID; the library keeps them all since #21 item 3)
    assert len(sops) == len(set(clinical_sops)) and not sops & set(clinical_sops)
    assert len(teaching_case(store, cases[0].study_uid).answers) == len(truth)
    # importing the same pack again lands on the same teaching copy, not a third study
    again = run_job(import_pack_job(forged, home, store, imported_by="admin"))
    assert again[0].study_uid == cases[0].study_uid and len(StudyLibrary(home).studies()) == 2


def _declare_size(data: bytes, member: str, size: int) -> bytes:
    """The zip with `member`'s central-directory entry declaring `size` uncompressed bytes."""
    out = bytearray(data)
    offset = out.find(b"PK\x01\x02")
    while offset != -1:
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", out, offset + 28)
        if out[offset + 46: offset + 46 + name_length].decode() == member:
            struct.pack_into("<I", out, offset + 24, size)
            return bytes(out)
        offset = out.find(b"PK\x01\x02", offset + 46 + name_length + extra_length + comment_length)
    raise AssertionError(f"{member} not in the zip")


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every member anything opens for reading: what was extracted, in order."""
    names: list[str] = []
    original = zipfile.ZipFile.open

    def recording(self, name, *args, **kwargs):
        names.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", recording)
    return names


def test_a_member_declaring_a_huge_size_is_refused_before_extraction(trainer_home, pack: Path,  # noqa: F811
                                                                     tmp_path: Path, opened: list[str]) -> None:
    home, store, _ = trainer_home
    victim = next(name for name in _members(pack) if name.endswith(".dcm"))
    bomb = tmp_path / "bomb.zip"
    bomb.write_bytes(_declare_size(pack.read_bytes(), victim, 0xF000_0000))  # 3.75 GiB, no zip64 needed
    studies = len(StudyLibrary(home).studies())
    opened.clear()
    with pytest.raises(PackError, match=f"{victim} in bomb.zip declares 4026531840 bytes.*before extracting"):
        run_job(import_pack_job(bomb, home, store, imported_by="admin"))
    assert opened == [] and len(StudyLibrary(home).studies()) == studies


@pytest.mark.parametrize("limit", ["max_zip_member_bytes", "max_pack_members", "max_pack_bytes"])
def test_a_pack_over_a_limit_is_refused_before_extraction(trainer_home, pack: Path, monkeypatch,  # noqa: F811
                                                          opened: list[str], limit: str) -> None:
    home, store, _ = trainer_home
    with zipfile.ZipFile(pack) as archive:
        members = archive.infolist()
    largest = max(m.file_size for m in members if m.filename.endswith(".dcm"))
    lowered = {"max_zip_member_bytes": largest - 1, "max_pack_members": len(members) - 1,
               "max_pack_bytes": sum(m.file_size for m in members) - 1}[limit]
    monkeypatch.setattr("workstation.teaching.pack.LIMITS", dataclasses.replace(LIMITS, **{limit: lowered}))
    opened.clear()
    with pytest.raises(PackError, match="refused"):
        run_job(import_pack_job(pack, home, store, imported_by="admin"))
    assert opened == [] and len(StudyLibrary(home).studies()) == 1
