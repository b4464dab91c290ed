"""Teaching packs (round trip, tamper and truncation refused, the canary through pack, PDF,
JSON and logs) and quiz scoring on a phantom with known answers."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader

from tests.teaching.test_deidentify import CANARY, CANARY_DATE, CANARY_UID, _canary_series
from workstation.cli import main as cli
from workstation.dicom.load import load_largest_series_job
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login
from workstation.teaching.pack import PackError, export_pack_job, import_pack_job, read_pack, teaching_case
from workstation.teaching.quiz import match_marks, quiz_scores_csv, submit_quiz

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run

PASSWORD = "teaching pass 1"


@pytest.fixture
def trainer_home(small_phantom_dir: Path, tmp_path: Path, monkeypatch):
    """A library with the canary phantom read by a radiologist: two accepted answers."""
    home = tmp_path / "trainer"
    monkeypatch.setenv("WORKSTATION_HOME", str(home))
    canaries = _canary_series(small_phantom_dir / "dicom", tmp_path / "in")
    assert cli(["import", str(canaries)]) == 0
    truth = json.loads((small_phantom_dir / "truth.json").read_text())["nodules"]
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_trainer", PASSWORD, "radiologist")
    study = StudyLibrary(home).studies()[0]
    session = ReviewSession(store, login(store, "dr_trainer", PASSWORD), study["study_uid"])
    for nodule in truth[:2]:
        session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
    yield home, store, truth[:2]
    store.close()


def _no_canary(data: bytes, where: str) -> None:
    for token in (CANARY, CANARY_DATE, CANARY_UID):
        assert token.encode() not in data, f"{token} leaked into {where}"


def test_pack_round_trip_carries_the_answer_key_and_no_identifier(trainer_home, tmp_path, monkeypatch) -> None:
    home, store, truth = trainer_home
    pack = tmp_path / "out" / "lecture.zip"
    run_job(export_pack_job(home, store, ["1"], pack, notes="Two solid nodules; look at the left base.",
                            created_by="dr_trainer"))
    manifest, files = read_pack(pack)
    _no_canary(pack.read_bytes(), "the pack file")
    for name, data in files.items():
        assert CANARY not in name
        _no_canary(data, name)
    _no_canary(json.dumps(manifest).encode(), "the manifest")
    assert [len(case["answers"]) for case in manifest["cases"]] == [2]

    # a second workstation imports it, a trainee takes the quiz, a report and exports are made there
    school = tmp_path / "school"
    monkeypatch.setenv("WORKSTATION_HOME", str(school))
    school_store = ReviewStore.in_home(school)
    admin = add_user(school_store, None, "admin", PASSWORD, "admin")
    add_user(school_store, admin, "ana", PASSWORD, "trainee")
    cases = run_job(import_pack_job(pack, school, school_store, imported_by="admin"))
    case = teaching_case(school_store, cases[0].study_uid)
    assert case is not None and case.notes.startswith("Two solid") and len(case.answers) == 2
    study = StudyLibrary(school).studies()[0]
    assert study["study_uid"] == case.study_uid
    volume = run_job(load_largest_series_job([StudyLibrary(school).series_folder(
        StudyLibrary(school).series(study["key"])[0])]))
    analysis = run_job(run_inference_job(volume, find_model(), threshold=0.05))
    ReviewSession(school_store, admin, case.study_uid).record_analysis(analysis, volume.metadata.series_uid)
    ana = login(school_store, "ana", PASSWORD)
    marks = [truth[0]["centre_mm"], [0.0, 0.0, 0.0]]  # one right, one false
    result = submit_quiz(school_store, ana, case, marks, [f.center_mm for f in analysis.findings])
    assert (len(result.trainee.hits), len(result.trainee.misses), len(result.trainee.false_marks)) == (1, 1, 1)
    assert "1 of 2 nodules found" in result.summary()
    scores = quiz_scores_csv(school_store, admin)
    assert "ana," in scores and ",1,1,1,0.5," in scores
    out = tmp_path / "school-out"
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    assert cli(["analyze", "1", "--report", str(out / "case.pdf"), "--as", "admin"]) == 0
    assert cli(["export", "1", "--json", "--out", str(out / "case.json"), "--as", "admin"]) == 0
    text = "\n".join(page.extract_text() for page in PdfReader(str(out / "case.pdf")).pages)
    assert CANARY not in text and "TEACHING" in text
    for path in [*out.rglob("*"), *(school / "logs").rglob("*"), *(home / "logs").rglob("*")]:
        if path.is_file():
            _no_canary(path.read_bytes(), str(path))


def test_tampered_or_truncated_packs_are_refused(trainer_home, tmp_path) -> None:
    home, store, _ = trainer_home
    pack = tmp_path / "lecture.zip"
    run_job(export_pack_job(home, store, ["1"], pack, created_by="dr_trainer"))
    with zipfile.ZipFile(pack) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    tampered = tmp_path / "tampered.zip"
    victim = next(name for name in members if name.endswith(".dcm"))
    with zipfile.ZipFile(tampered, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data[:-1] + b"\x00" if name == victim else data)
    with pytest.raises(PackError, match="does not match its checksum"):
        read_pack(tampered)
    extra = tmp_path / "extra.zip"
    with zipfile.ZipFile(extra, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("case-01/dicom/evil.dcm", b"x")
    with pytest.raises(PackError, match="unexpected"):
        read_pack(extra)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(pack.read_bytes()[: pack.stat().st_size // 2])
    with pytest.raises(PackError, match="truncated"):
        read_pack(truncated)
    before = len(StudyLibrary(home).studies())
    with pytest.raises(PackError):
        run_job(import_pack_job(tampered, home, store, imported_by="admin"))
    assert len(StudyLibrary(home).studies()) == before  # nothing imported from a bad pack


def test_marks_are_matched_nearest_first_within_radius_plus_allowance() -> None:
    answers = [{"center_mm": [0, 0, 0], "diameter_mm": 10.0}, {"center_mm": [30, 0, 0], "diameter_mm": 6.0}]
    match = match_marks([[9.5, 0, 0], [1, 0, 0], [30, 8.9, 0], [60, 0, 0]], answers)
    assert match.hits == [(1, 0)] and match.misses == [1] and match.false_marks == [0, 2, 3]
    assert match.sensitivity == 0.5
    assert match_marks([], answers).sensitivity == 0.0 and match_marks([[1, 1, 1]], []).sensitivity is None
