"""`workstation review STUDY ...` (#23 item 5): the same session, roles, sealing and audit rows as
the viewer, findings named by their study number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reporting.test_dicom_results import PASSWORD, imported_case
from workstation.cli import main
from workstation.imaging.phantom import write_demo_case
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("review-case")
    write_demo_case(folder, seed=11, matrix=128, slice_thickness_mm=10.0)
    return folder


@pytest.fixture
def analysed(case: Path, home: Path, monkeypatch) -> list[int]:
    """The study with four AI candidates recorded; accounts for a radiologist and a trainee."""
    study, series, analysis, truth = imported_case(home, case)
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_lee", PASSWORD, "radiologist")
    add_user(store, admin, "trainee", PASSWORD, "trainee")
    ReviewSession(store, admin, study["study_uid"]).record_analysis(analysis, series["series_uid"])
    store.close()
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    return truth


def _listed(capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["review", "1", "--as", "dr_lee", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_read_from_the_command_line(analysed, home: Path, capsys) -> None:
    findings = _listed(capsys)
    assert [f["number"] for f in findings] == [1, 2, 3, 4] and {f["decision"] for f in findings} == {"undecided"}
    assert main(["review", "1", "--as", "dr_lee", "accept", "1"]) == 0
    assert main(["review", "1", "--as", "dr_lee", "reject", "3", "--reason", "vessel"]) == 0
    assert main(["review", "1", "--as", "dr_lee", "edit", "2", "--diameter", "5.5", "--type", "part-solid"]) == 0
    assert main(["review", "1", "--as", "dr_lee", "accept", "2"]) == 0
    assert main(["review", "1", "--as", "dr_lee", "add", "--center=-40,20,0", "--diameter", "7"]) == 0
    assert main(["review", "1", "--as", "dr_lee", "accept", "9"]) == 2
    assert "No finding 9 in this study (its findings: 1, 2, 3, 4, 5)" in capsys.readouterr().err
    assert main(["review", "1", "--as", "dr_lee", "add", "--center", "1,2", "--diameter", "7"]) == 2
    assert "three numbers x,y,z" in capsys.readouterr().err

    assert main(["review", "1", "--as", "trainee", "sign", "--impression", "x"]) == 2
    assert "sign" in capsys.readouterr().err
    assert main(["review", "1", "--as", "dr_lee", "sign", "--impression", "Two nodules."]) == 2
    assert "undecided" in capsys.readouterr().err
    assert main(["review", "1", "--as", "dr_lee", "sign", "--impression", "Two nodules.",
                 "--undecided-reason", "outside the lung"]) == 0
    findings = {f["number"]: f for f in _listed(capsys)}
    assert findings[1]["decision"] == "accepted" and findings[3]["reason"] == "vessel"
    assert findings[2]["diameter_mm"] == 5.5 and findings[2]["type"] == "part-solid"
    assert findings[5]["decision"] == "accepted" and findings[4]["decision"] == "undecided"

    assert main(["review", "1", "--as", "dr_lee", "accept", "4"]) == 2  # sealed
    assert "signed" in capsys.readouterr().err
    assert main(["review", "1", "--as", "dr_lee", "addendum", "--reason", "second look", "accept", "4"]) == 0
    assert _listed(capsys)[3]["decision"] == "accepted"
    assert main(["review", "1", "--as", "dr_lee", "addendum", "--reason", "x", "sign", "--impression", "y"]) == 2
    assert "An addendum is a decision" in capsys.readouterr().err

    store = ReviewStore.in_home(home)
    actions = [row[0] for row in store.connection.execute("SELECT action FROM audit ORDER BY seq")]
    store.close()
    assert actions.count("finding_accepted") == 3 and "finding_added" in actions and "finding_edited" in actions
    assert "finding_accepted" in actions[actions.index("signed"):]  # the addendum's, after the signature
    assert main(["audit", "verify"]) == 0


def test_reading_needs_an_account(case: Path, home: Path, capsys) -> None:
    assert main(["import", str(case / "dicom")]) == 0
    assert main(["review", "1", "--as", "nobody", "list"]) == 2
    assert "Reading needs an account" in capsys.readouterr().err
