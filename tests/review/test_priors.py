"""The linked prior without a screen (#24 item 3): the prior offered, the load-and-align job with
progress and cancel, the prior's findings (the core's one rule, prior_nodules_of), the current <->
prior point mapping checked against a phantom pair's truth.json, and the viewer's comparison being
the report's: recorded when the viewer expects it, reused (no second alignment), matched as the
report matches."""

from __future__ import annotations

import numpy as np
import pytest

from tests.prior_pair import write_pair
from workstation.dicom.load import load_volume
from workstation.errors import CancelledError, WorkstationError
from workstation.jobs import CancelToken, run_job
from workstation.library import StudyLibrary
from workstation.review import audit
from workstation.review.comparison_record import prior_nodules_of, record_comparison, recorded_comparison
from workstation.review.priors import (
    PriorComparison, compare_with_prior_job, describe_pair, offer_priors, pair_of, record_prior_viewed,
    recording_offer, report_findings_with, study_days,
)
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def library_pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The pair imported into a data folder of its own; the follow-up loaded; the prior read (its
    nodules accepted as the truth places them) and aligned once."""
    root = tmp_path_factory.mktemp("prior-link")
    pair = write_pair(root / "cases")
    home = root / "home"
    library = StudyLibrary(home)
    run_job(library.import_job([pair["prior"], pair["follow"]]))
    truth = pair["truth"]
    studies = {s["study_uid"]: s for s in library.studies()}
    follow = studies[truth["study_uid"]]
    prior = next(s for uid, s in studies.items() if uid != truth["study_uid"])
    store = ReviewStore.in_home(home)
    reader = add_user(store, add_user(store, None, "admin", PASSWORD, "admin"), "dr_lee", PASSWORD, "radiologist")
    session = ReviewSession(store, login(store, reader.username, PASSWORD), prior["study_uid"])
    for nodule in truth["prior_nodules"]:
        session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
    store.close()
    volume = load_volume(pair["follow"])
    steps = []
    comparison = run_job(compare_with_prior_job(home, volume, prior), steps.append)
    return {"home": home, "library": library, "truth": truth, "follow": follow, "prior": prior, "volume": volume,
            "comparison": comparison, "steps": steps}


def test_the_most_recent_comparable_prior_is_offered(library_pair: dict) -> None:
    offer = offer_priors(library_pair["library"], library_pair["follow"])
    assert offer.offered is not None and offer.offered["study_uid"] == library_pair["prior"]["study_uid"]
    assert offer.comparable == offer.priors and offer.warnings == []
    assert offer_priors(library_pair["library"], library_pair["prior"]).offered is None  # nothing earlier
    assert study_days(library_pair["prior"]["study_date"], library_pair["follow"]["study_date"]) == \
        round(library_pair["truth"]["days"])
    assert study_days("", "20260101") is None


def test_a_current_nodule_maps_onto_its_prior_truth(library_pair: dict) -> None:
    truth, comparison = library_pair["truth"], library_pair["comparison"]
    assert isinstance(comparison, PriorComparison) and comparison.registration.quality == "good"
    prior_by_id = {n["id"]: n for n in truth["prior_nodules"]}
    current_by_id = {n["id"]: n for n in truth["current_nodules"]}
    for match in truth["matches"]:
        current = np.array(current_by_id[match["current_id"]]["centre_mm"])
        prior = np.array(prior_by_id[match["prior_id"]]["centre_mm"])
        assert np.linalg.norm(comparison.to_prior(current) - prior) < 3.0
        assert np.linalg.norm(comparison.to_current(prior) - current) < 3.0
        np.testing.assert_allclose(comparison.to_current(comparison.to_prior(current)), current, atol=1e-6)
    # the identity would not do: the pose changed by more than the tolerance
    assert max(np.linalg.norm(np.array(current_by_id[m["current_id"]]["centre_mm"])
                              - np.array(prior_by_id[m["prior_id"]]["centre_mm"])) for m in truth["matches"]) > 3.0


def test_the_job_reports_progress_and_the_prior_read(library_pair: dict) -> None:
    steps, comparison = library_pair["steps"], library_pair["comparison"]
    fractions = [s.fraction for s in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("alignment" in s.message.lower() for s in steps) and "lung overlap" in steps[-1].message
    assert comparison.comparison.prior_source == "accepted" and "accepted findings" in comparison.findings_source
    assert len(comparison.findings) == len(library_pair["truth"]["prior_nodules"])
    assert comparison.days == round(library_pair["truth"]["days"]) and comparison.histogram is not None
    assert not comparison.recorded and not comparison.reused
    assert comparison.prior_volume.metadata.study_uid == library_pair["prior"]["study_uid"]
    store = ReviewStore.in_home(library_pair["home"])
    try:  # looking at the prior is audited, in the chain
        record_prior_viewed(store, "dr_lee", library_pair["follow"]["study_uid"], comparison)
        row = store.connection.execute("SELECT user, study_uid, details FROM audit ORDER BY seq DESC").fetchone()
        assert row[:2] == ("dr_lee", library_pair["follow"]["study_uid"])
        assert library_pair["prior"]["study_uid"] in row[2]
        assert audit.verify(store.connection).ok
    finally:
        store.close()


def test_matching_names_the_selected_findings_status(library_pair: dict) -> None:
    from types import SimpleNamespace

    truth, comparison = library_pair["truth"], library_pair["comparison"]
    current = [SimpleNamespace(number=n["id"], center_mm=tuple(n["centre_mm"]), diameter_mm=n["diameter_mm"],
                               volume_mm3=n["volume_mm3"], type="solid") for n in truth["current_nodules"]]
    pairs = comparison.match(current)
    for match in truth["matches"]:
        pair = pair_of(pairs, match["current_id"])
        assert pair is not None and pair.status == match["status"]
        assert describe_pair(pair).startswith(f"#{match['current_id']}: {match['status']} (prior P")
    new = pair_of(pairs, truth["new"][0]["current_id"])
    assert new.status == "new" and "new" in describe_pair(new)
    assert pair_of(pairs, 999) is None


def test_cancel_stops_the_job_and_another_patient_is_refused(library_pair: dict) -> None:
    cancel = CancelToken()
    job = compare_with_prior_job(library_pair["home"], library_pair["volume"], library_pair["prior"], cancel)
    next(job)
    cancel.cancel()
    with pytest.raises(CancelledError):
        run_job(job)
    other = {**library_pair["prior"], "patient_id": "SOMEONE-ELSE"}
    with pytest.raises(WorkstationError, match="different Patient IDs"):
        run_job(compare_with_prior_job(library_pair["home"], library_pair["volume"], other))
    with pytest.raises(WorkstationError, match="open study itself"):
        run_job(compare_with_prior_job(library_pair["home"], library_pair["volume"], library_pair["follow"]))


def test_an_unread_prior_offers_its_ai_findings(library_pair: dict) -> None:
    """The core's rule (prior_nodules_of): AI findings only while nobody decided on the prior.
    (Runs before the recording tests: it records a model run on the follow-up, read there later.)"""
    from workstation.inference.findings import Finding
    from workstation.inference.runner import Analysis
    from workstation.review.analyses import record_analysis

    volume, uid = library_pair["volume"], library_pair["follow"]["study_uid"]
    store = ReviewStore.in_home(library_pair["home"])
    try:
        assert prior_nodules_of(store, uid) == ([], "none")
        reader = login(store, "dr_lee", PASSWORD)
        findings = [Finding(n + 1, tuple(c["centre_mm"]), tuple(c["centre_voxel"]), c["diameter_mm"], 200.0, 20.0,
                            0.9 - 0.1 * n, "solid", "demo", "0.1")
                    for n, c in enumerate(library_pair["truth"]["current_nodules"][:2])]
        analysis = Analysis("demo", "0.1", "ab" * 32, "CPU", 0.5, 1.0, np.zeros(volume.shape, np.float32), findings,
                            [], "Test run.")
        record_analysis(store, reader, uid, volume.metadata.series_uid, analysis)
        shown, source = prior_nodules_of(store, uid)
        assert source == "ai" and len(shown) == 2
        ReviewSession(store, reader, uid).reject(shown[0].id, "vessel")
        # someone decided on it: its accepted findings only (none), never its AI proposals
        assert prior_nodules_of(store, uid) == ([], "accepted")
        findings, source = prior_nodules_of(store, library_pair["prior"]["study_uid"])
        assert source == "accepted" and all(f.decision == "accepted" for f in findings)
    finally:
        store.close()


def test_the_viewers_comparison_is_recorded_reused_and_reported(library_pair: dict) -> None:
    """A radiologist's aligned prior is recorded for the unsigned read; aligning it again reuses the
    recorded one (no second registration); the viewer's match line is the report's row; after
    signing, another record is an addendum with a reason."""
    from workstation.reporting.content import content_from_store

    home, uid, truth = library_pair["home"], library_pair["follow"]["study_uid"], library_pair["truth"]
    store = ReviewStore.in_home(home)
    try:
        reader = login(store, "dr_lee", PASSWORD)
        session = ReviewSession(store, reader, uid)
        for nodule in truth["current_nodules"]:  # the current read: the nodules where the truth has them
            session.add(tuple(nodule["centre_mm"]), nodule["diameter_mm"], "solid")
        shown = library_pair["comparison"]
        trainee = add_user(store, login(store, "admin", PASSWORD), "trainee_tom", PASSWORD, "trainee")
        assert recording_offer(None, shown) == "none"
        assert recording_offer(ReviewSession(store, trainee, uid), shown) == "offer"  # asked, never unasked
        assert recording_offer(session, shown) == "record"
        recorded = shown.recorded_as(record_comparison(session, shown.comparison))
        assert recorded.recorded and recording_offer(session, recorded) == "recorded"
        assert recorded_comparison(store, uid).id == recorded.comparison.id

        steps: list = []
        again = run_job(compare_with_prior_job(home, library_pair["volume"], library_pair["prior"]), steps.append)
        assert again.reused and again.comparison.id == recorded.comparison.id
        assert not any("alignment" in s.message.lower() and "reused" not in s.message for s in steps)
        np.testing.assert_array_equal(again.registration.prior_to_current, recorded.registration.prior_to_current)
        assert recording_offer(session, again) == "recorded"

        # the viewer's line for each finding is the report's row for it
        content = content_from_store(store, uid, library_pair["volume"])
        assert content.comparison is not None and content.comparison.comparison.id == again.comparison.id
        report_rows = {p.current.number: p for p in content.comparison.pairs if p.current is not None}
        states = session.findings()
        viewer_pairs = again.match(report_findings_with(states))
        assert {p.current.number: (p.status, p.prior and p.prior.number, p.volume_change)
                for p in viewer_pairs if p.current is not None} == \
            {n: (p.status, p.prior and p.prior.number, p.volume_change) for n, p in report_rows.items()}
        statuses = {report_rows[n].status for n in report_rows}
        assert statuses == {m["status"] for m in truth["matches"]} | {"new"}

        # signed: recording again is an addendum, only with a reason
        session.sign("Compared with the prior.", password=PASSWORD, allow_undecided=True,
                     undecided_reason="test stand-in run")
        assert recording_offer(session, shown) == "addendum"
        with pytest.raises(WorkstationError, match="say why"):
            record_comparison(session, shown.comparison)
        addendum = record_comparison(session, shown.comparison, reason="prior re-read")
        assert addendum.after_signing and recorded_comparison(store, uid, as_signed=True).id == recorded.comparison.id
        assert audit.verify(store.connection).ok
    finally:
        store.close()
