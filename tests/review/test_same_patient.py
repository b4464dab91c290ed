"""The same patient (#24 item 1) is the same Patient ID and, when both studies name one, the same
Issuer of Patient ID (0010,0021): the phantom pair written with issuers set by pydicom, imported
into a library, offered (or not) as priors, compared (or refused) by the viewer's job, the core's
check and `workstation compare`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pydicom
import pytest

from tests.prior_pair import write_pair
from workstation.cli import main
from workstation.dicom.load import load_volume
from workstation.errors import WorkstationError
from workstation.jobs import run_job
from workstation.library import SCHEMA_VERSION, StudyLibrary
from workstation.review.comparison_record import ComparisonError, check_comparable
from workstation.review.priors import compare_with_prior_job, offer_priors
from workstation.review.same_patient import PatientIdentity, check_same_patient


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return write_pair(tmp_path_factory.mktemp("issuer-pair"), slice_thickness_mm=5.0)


def _with_issuer(source: Path, target: Path, issuer: str | None) -> Path:
    """A copy of the series in `source` whose files say `issuer` (None: no Issuer of Patient ID)."""
    target.mkdir(parents=True)
    for path in sorted(source.iterdir()):
        dataset = pydicom.dcmread(path)
        if issuer is None:
            dataset.pop((0x0010, 0x0021), None)
        else:
            dataset.IssuerOfPatientID = issuer
        dataset.save_as(target / path.name)
    return target


def _library(pair: dict, home: Path, prior_issuer: str | None, follow_issuer: str | None) -> dict:
    folders = {"prior": _with_issuer(pair["prior"], home.parent / "prior", prior_issuer),
               "follow": _with_issuer(pair["follow"], home.parent / "follow", follow_issuer)}
    library = StudyLibrary(home)
    run_job(library.import_job(list(folders.values())))
    studies = {s["study_uid"]: s for s in library.studies()}
    follow = studies[pair["truth"]["study_uid"]]
    prior = next(s for uid, s in studies.items() if uid != follow["study_uid"])
    return {"library": library, "follow": follow, "prior": prior, "folders": folders}


def test_the_rule() -> None:
    here = PatientIdentity("12345", "HOSP-A", "DOE^JANE", "19600101")
    assert check_same_patient(here, PatientIdentity("12345", "HOSP-A", "DOE^JANE", "19600101")).warnings == ()
    other = check_same_patient(here, PatientIdentity("12345", "HOSP-B", "DOE^JANE", "19600101"))
    assert not other.same and "different issuers (HOSP-A and HOSP-B)" in other.refusal
    assert not check_same_patient(here, PatientIdentity("54321", "HOSP-A")).same
    assert not check_same_patient(PatientIdentity(""), PatientIdentity("")).same  # no ID: nothing is the same
    one_sided = check_same_patient(PatientIdentity("12345", " HOSP-A "), PatientIdentity("12345", ""))
    assert one_sided.same and one_sided.warnings == (
        "The prior has the same Patient ID, but only this study names its issuer (HOSP-A): check it is the same "
        "patient",)
    assert "only the prior names its issuer" in check_same_patient(PatientIdentity("1"),
                                                                   PatientIdentity("1", "X")).warnings[0]
    assert check_same_patient(PatientIdentity("1"), PatientIdentity("1")).warnings == ()  # neither says: as before


def test_another_issuer_is_another_patient(pair: dict, home: Path, capsys) -> None:
    case = _library(pair, home, prior_issuer="HOSP-B", follow_issuer="HOSP-A")
    follow, prior = case["follow"], case["prior"]
    assert (follow["issuer_of_patient_id"], prior["issuer_of_patient_id"]) == ("HOSP-A", "HOSP-B")
    assert follow["patient_id"] == prior["patient_id"]

    offer = offer_priors(case["library"], follow)
    assert offer.priors == [] and offer.offered is None
    assert any("another issuer (HOSP-B): another patient's, not offered" in w for w in offer.warnings)

    current = load_volume(case["folders"]["follow"])
    assert current.metadata.issuer_of_patient_id == "HOSP-A"  # carried from the file into the volume
    with pytest.raises(WorkstationError, match="different issuers"):
        run_job(compare_with_prior_job(home, current, prior))
    with pytest.raises(ComparisonError, match=r"same Patient ID from different issuers \(HOSP-A and HOSP-B\)"):
        check_comparable(current.metadata, load_volume(case["folders"]["prior"]).metadata)
    capsys.readouterr()
    assert main(["compare", follow["study_uid"], prior["study_uid"]]) == 2
    assert "different issuers" in capsys.readouterr().err
    assert main(["compare", follow["study_uid"]]) == 2  # nothing earlier of this patient
    assert "No earlier study of this patient" in capsys.readouterr().err


def test_an_issuer_on_one_side_only_is_offered_with_a_warning(pair: dict, home: Path) -> None:
    case = _library(pair, home, prior_issuer=None, follow_issuer="HOSP-A")
    follow, prior = case["follow"], case["prior"]
    offer = offer_priors(case["library"], follow)
    assert offer.offered is not None and offer.offered["study_uid"] == prior["study_uid"]
    assert [w for w in offer.warnings if "issuer" in w] == [
        f"The prior of {prior['study_date']} has the same Patient ID, but only this study names its issuer "
        "(HOSP-A): check it is the same patient"]
    days, warnings = check_comparable(load_volume(case["folders"]["follow"]).metadata,
                                      load_volume(case["folders"]["prior"]).metadata)
    assert days > 0 and any("only this study names its issuer (HOSP-A)" in w for w in warnings)


def test_the_same_issuer_is_offered_without_a_word(pair: dict, home: Path) -> None:
    case = _library(pair, home, prior_issuer="HOSP-A", follow_issuer="HOSP-A")
    offer = offer_priors(case["library"], case["follow"])
    assert offer.offered is not None and offer.warnings == []


def test_a_library_from_before_gains_the_issuer_column(tmp_path: Path) -> None:
    """A schema-1 index (no issuer) is migrated; its studies say no issuer until imported again."""
    home = tmp_path / "home"
    home.mkdir()
    connection = sqlite3.connect(home / "library.db")
    connection.executescript(
        "CREATE TABLE studies (key TEXT PRIMARY KEY, study_uid TEXT, uids_derived INTEGER, patient_name TEXT, "
        "patient_id TEXT, patient_birth_date TEXT, patient_sex TEXT, patient_age TEXT, study_date TEXT, "
        "study_time TEXT, study_description TEXT, accession_number TEXT, folder TEXT, imported_at FLOAT);"
        "CREATE TABLE series (key TEXT PRIMARY KEY, study_key TEXT, series_uid TEXT, series_number TEXT, "
        "series_description TEXT, modality TEXT, rows INTEGER, columns INTEGER, slices INTEGER, folder TEXT);"
        "CREATE TABLE instances (key TEXT PRIMARY KEY, series_key TEXT, sop_instance_uid TEXT, path TEXT, "
        "sha256 TEXT, size INTEGER);"
        "INSERT INTO studies (key, study_uid, patient_id, study_date) VALUES ('k', '1.2.3', '12345', '20240101');"
        "PRAGMA user_version=1;")
    connection.close()
    library = StudyLibrary(home)
    assert library.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    (old,) = library.studies()
    assert old["issuer_of_patient_id"] is None
    assert PatientIdentity.from_study(old).issuer == ""
