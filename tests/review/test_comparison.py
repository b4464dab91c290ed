"""Priors and growth on a phantom pair with known truth (#24): the follow-up generator, SimpleITK
registration, matching as growing/stable/new/resolved, doubling times within their uncertainty,
and the compare command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from workstation.cli import main
from workstation.imaging.follow_up import generate_follow_up
from workstation.imaging.phantom import PhantomSpec
from workstation.imaging.registration import register_job
from workstation.jobs import run_job
from workstation.library import StudyLibrary
from workstation.review.comparison import doubling_time, priors_of
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

PASSWORD = "correct horse battery"
PRIOR_SEED, FOLLOW_SEED, MONTHS = 21, 5, 12


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The prior demo case and its follow-up on disk, with the follow-up's truth."""
    root = tmp_path_factory.mktemp("pair")
    assert main(["demo-case", str(root / "prior"), "--seed", str(PRIOR_SEED), "--matrix", "128",
                 "--slice-thickness", "2.5"]) == 0
    assert main(["demo-case", str(root / "follow"), "--seed", str(FOLLOW_SEED), "--follow-up-of", str(PRIOR_SEED),
                 "--months", str(MONTHS), "--matrix", "128", "--slice-thickness", "2.5"]) == 0
    return {"root": root, "truth": json.loads((root / "follow" / "truth.json").read_text())}


def test_the_follow_up_has_known_changes(pair: dict) -> None:
    truth = pair["truth"]
    prior_truth = json.loads((pair["root"] / "prior" / "truth.json").read_text())
    assert [n["centre_mm"] for n in truth["prior_nodules"]] == [n["centre_mm"] for n in prior_truth["nodules"]]
    assert len(truth["new"]) == 1 and len(truth["resolved"]) == 1
    grown = [m for m in truth["matches"] if m["designed"] == "grown"]
    assert grown and all(m["current_diameter_mm"] > m["prior_diameter_mm"] for m in grown)
    assert all(m["doubling_time_days"] and 100 <= m["doubling_time_days"] <= 600 for m in grown)
    moved = np.array(truth["prior_to_current"])
    assert not np.allclose(moved, np.eye(4))  # another pose and breathing level
    import pydicom

    prior_file = next((pair["root"] / "prior" / "dicom").iterdir())
    follow_file = next((pair["root"] / "follow" / "dicom").iterdir())
    a, b = (pydicom.dcmread(f, stop_before_pixels=True) for f in (prior_file, follow_file))
    assert a.PatientID == b.PatientID and a.StudyInstanceUID != b.StudyInstanceUID and b.StudyDate > a.StudyDate


def test_registration_recovers_the_pose() -> None:
    case = generate_follow_up(PhantomSpec.from_seed(PRIOR_SEED, matrix=128, slice_thickness_mm=2.5), MONTHS,
                              FOLLOW_SEED)
    registration = run_job(register_job(case.follow.volume, case.prior.volume))
    assert registration.quality == "good" and registration.lung_overlap > registration.lung_overlap_before
    for match in case.truth["matches"]:
        prior = next(n for n in case.truth["prior_nodules"] if n["id"] == match["prior_id"])
        current = next(n for n in case.truth["current_nodules"] if n["id"] == match["current_id"])
        assert np.linalg.norm(registration.to_current(prior["centre_mm"]) - np.array(current["centre_mm"])) < 3.0
    # the identity would not do: without registration the nodules are this far off
    offsets = [np.linalg.norm(np.array(n["centre_mm"]) - np.array(m["centre_mm"]))
               for n, m in zip(case.truth["prior_nodules"], case.truth["current_nodules"])]
    assert max(offsets) > 3.0


def test_doubling_time_and_its_range() -> None:
    central, (fast, slow) = doubling_time(100.0, 200.0, 365.0, 0.1, 0.1)
    assert central == pytest.approx(365.0)
    assert fast < central < slow
    assert doubling_time(100.0, 105.0, 365.0, 0.2, 0.2)[1][1] == math.inf  # within the error: not told from stable
    assert doubling_time(100.0, 90.0, 365.0) == (None, None)


def _read(home: Path, study_uid: str, nodules: list[dict], who: str) -> None:
    store = ReviewStore.in_home(home)
    session = ReviewSession(store, login(store, who, PASSWORD), study_uid)
    for nodule in nodules:
        session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
    store.close()


def test_compare_matches_nodules_as_the_truth_says(pair: dict, home: Path, tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    truth = pair["truth"]
    assert main(["import", str(pair["root"] / "prior" / "dicom"), str(pair["root"] / "follow" / "dicom")]) == 0
    store = ReviewStore.in_home(home)
    add_user(store, add_user(store, None, "admin", PASSWORD, "admin"), "dr_lee", PASSWORD, "radiologist")
    store.close()
    library = StudyLibrary(home)
    by_uid = {s["study_uid"]: s for s in library.studies()}
    follow_uid = truth["study_uid"]
    prior_uid = next(uid for uid in by_uid if uid != follow_uid)
    _read(home, prior_uid, truth["prior_nodules"], "dr_lee")
    _read(home, follow_uid, truth["current_nodules"], "dr_lee")
    earlier, warnings = priors_of(library, by_uid[follow_uid])
    assert [s["study_uid"] for s in earlier] == [prior_uid] and warnings == []

    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    out = tmp_path / "compare.json"
    assert main(["compare", follow_uid, "--json", str(out), "--as", "dr_lee"]) == 0
    printed = capsys.readouterr().out
    assert "alignment good" in printed
    result = json.loads(out.read_text())
    statuses = sorted(n["status"] for n in result["nodules"])
    expected = sorted([m["status"] for m in truth["matches"]] + ["new", "resolved"])
    assert statuses == expected
    for match in truth["matches"]:
        centre = next(n["centre_mm"] for n in truth["prior_nodules"] if n["id"] == match["prior_id"])
        pair_found = next(n for n in result["nodules"] if n["prior"] and n["current"]
                          and np.allclose(n["prior"]["center_mm"], centre, atol=0.01))
        assert pair_found["status"] == match["status"]
        if match["doubling_time_days"]:
            low, high = pair_found["doubling_range_days"]
            assert low <= match["doubling_time_days"] <= (high or math.inf)


def test_a_prior_of_another_patient_is_refused(pair: dict, home: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "other"
    assert main(["demo-case", str(other), "--seed", "22", "--matrix", "128", "--slice-thickness", "5"]) == 0
    assert main(["import", str(pair["root"] / "follow" / "dicom"), str(other / "dicom")]) == 0
    follow_uid = pair["truth"]["study_uid"]
    other_uid = next(s["study_uid"] for s in StudyLibrary(home).studies() if s["study_uid"] != follow_uid)
    capsys.readouterr()
    assert main(["compare", follow_uid, other_uid]) == 2
    assert "different Patient IDs" in capsys.readouterr().err
    assert main(["compare", follow_uid]) == 2
    assert "No earlier study of this patient" in capsys.readouterr().err


def test_lung_rads_with_comparison() -> None:
    from types import SimpleNamespace as Nodule

    from workstation.reporting.lungrads_comparison import compared_category, suggest_with_comparison
    from workstation.review.comparison import NodulePair

    def solid(number: int, diameter: float, kind: str = "solid") -> Nodule:
        return Nodule(number=number, center_mm=(0, 0, 0), diameter_mm=diameter, volume_mm3=None, type=kind)

    assert compared_category(NodulePair("new", solid(1, 5.0), None), 365) == ("3", "new solid nodule 4 to < 6 mm")
    assert compared_category(NodulePair("new", solid(1, 9.0), None), 365)[0] == "4B"
    assert compared_category(NodulePair("growing", solid(1, 7.0), solid(1, 5.0)), 365) == \
        ("4A", "growing solid nodule < 8 mm")
    assert compared_category(NodulePair("stable", solid(1, 7.0), solid(1, 7.0)), 200)[0] == "2"  # 3, stable 6 months
    assert compared_category(NodulePair("stable", solid(1, 7.0), solid(1, 7.0)), 60)[0] == "3"  # too soon
    assert compared_category(NodulePair("stable", solid(1, 10.0), solid(1, 10.0)), 100)[0] == "3"  # 4A at 3 months
    assert "not applied" in compared_category(NodulePair("new", solid(1, 9.0, "ground-glass"), None), 365)[1]
    suggestion = suggest_with_comparison([NodulePair("stable", solid(1, 7.0), solid(1, 7.0)),
                                          NodulePair("growing", solid(2, 9.0), solid(2, 6.0)),
                                          NodulePair("resolved", None, solid(3, 12.0))], 365)
    assert suggestion.category == "4B" and suggestion.driver == 2 and "growing" in suggestion.rule
