"""The report's Comparison section (#24 item 5) on a phantom pair with known truth: the prior's
date, the alignment said plainly (a poor one too), the matched nodules' table from the current
read's accepted findings only, the Lung-RADS suggestion with comparison and its rule, key images
of both time points; a signed read unchanged by a comparison recorded after signing; without a
prior, today's wording."""

from __future__ import annotations

import dataclasses
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.prior_pair import write_pair
from workstation.dicom.load import load_largest_series_job
from workstation.errors import WorkstationError
from workstation.imaging.registration import Registration
from workstation.inference.findings import Finding
from workstation.inference.runner import Analysis
from workstation.jobs import run_job
from workstation.reporting.study import study_report_job
from workstation.review import audit
from workstation.review.comparison import ReaderEdit
from workstation.review.comparison_record import Comparison, prior_nodules_of, record_comparison
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The phantom pair (128 matrix) loaded: prior and follow-up volumes and the follow-up's truth."""
    cases = write_pair(tmp_path_factory.mktemp("comparison-report"))
    return {"prior": run_job(load_largest_series_job([cases["prior"]])),
            "current": run_job(load_largest_series_job([cases["follow"]])), "truth": cases["truth"]}


def _analysis(volume, nodules: list[dict]) -> Analysis:
    """An AI run that found exactly `nodules` (truth centres, diameters and voxel volumes)."""
    findings = [Finding(n + 1, tuple(item["centre_mm"]), (0, 0, 0), item["diameter_mm"], item["volume_mm3"], 30.0,
                        0.9 - 0.01 * n, "solid", "demo-truth", "1") for n, item in enumerate(nodules)]
    return Analysis("demo-truth", "1", "0" * 64, "CPU", 0.5, 0.0, np.zeros(volume.shape, np.float32), findings, [],
                    "test run")


@pytest.fixture
def reads(pair: dict, tmp_path: Path) -> dict:
    """The prior read and signed (its nodules accepted); the current read with its nodules accepted
    and one more AI candidate, where the resolved nodule was, left undecided."""
    truth = pair["truth"]
    store = ReviewStore(tmp_path / "data" / "review.db")
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_lee", PASSWORD, "radiologist")
    add_user(store, admin, "tom", PASSWORD, "trainee")
    reader = login(store, "dr_lee", PASSWORD)
    prior_session = ReviewSession(store, reader, pair["prior"].metadata.study_uid)
    for finding_id in prior_session.record_analysis(_analysis(pair["prior"], truth["prior_nodules"])):
        prior_session.accept(finding_id)
    prior_session.sign("Baseline.", password=PASSWORD)
    resolved = next(n for n in truth["prior_nodules"] if n["id"] == truth["resolved"][0]["prior_id"])
    where = np.array(truth["prior_to_current"]) @ np.array([*resolved["centre_mm"], 1.0])
    decoy = {"centre_mm": list(where[:3]), "diameter_mm": resolved["diameter_mm"], "volume_mm3": 100.0}
    session = ReviewSession(store, reader, pair["current"].metadata.study_uid)
    ids = session.record_analysis(_analysis(pair["current"], [*truth["current_nodules"], decoy]))
    for finding_id in ids[:-1]:
        session.accept(finding_id)
    yield {"store": store, "session": session, "reader": reader}
    store.close()


def _comparison(pair: dict, store, overlap: float = 0.93, edits=()) -> Comparison:
    """The comparison with the truth's own transform as the registration (registration itself is
    tested in tests/review/test_comparison.py; here its seconds are saved)."""
    registration = Registration(np.array(pair["truth"]["prior_to_current"]), overlap, 0.61)
    findings, source = prior_nodules_of(store, pair["prior"].metadata.study_uid)
    return Comparison.build(pair["current"], pair["prior"], registration, findings, source, edits)


def _sign(session) -> None:
    """Signed, so the pages carry no DRAFT watermark across the text pdftotext reads."""
    session.sign("Growing nodule.", password=PASSWORD, allow_undecided=True, undecided_reason="decoy left")


def _pdf_text(path: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def _section(text: str) -> str:
    """The Comparison section's text, without the page footers (the audit head moves on)."""
    section = text.split("\n Comparison\n")[1].split("AI candidates not reviewed")[0]
    return "\n".join(line for line in section.splitlines() if "audit head" not in line)


def _report(store, pair: dict, path: Path, prior: bool = True):
    return run_job(study_report_job(store, pair["current"], path, generated_by="dr_lee",
                                    prior_volume=pair["prior"] if prior else None))


def test_the_comparison_section_lists_the_matched_nodules(pair, reads, tmp_path) -> None:
    truth, store = pair["truth"], reads["store"]
    record_comparison(reads["session"], _comparison(pair, store))
    _sign(reads["session"])
    result = _report(store, pair, tmp_path / "report.pdf")
    text = _pdf_text(result.path)
    section = _section(text)
    prior_date = truth["prior_study_date"]
    assert f"{prior_date[:4]}-{prior_date[4:6]}-{prior_date[6:]}" in section
    assert "CT CHEST" in section and f"{round(truth['days'])} days earlier" in section
    assert "good: the lungs overlap 93% after registration (61% before" in section
    assert "the prior's accepted findings (its signed read)" in section
    # one row per nodule: the truth's pairs (by their numbers), the new one and the resolved one
    table = section.split("Doubling time")[1].split("Long axis: the longest")[0]
    rows = [line.split() for line in table.splitlines() if line.split()[:1] and (line.split()[0].isdigit()
                                                                               or line.split()[0] == "-")]
    by_current = {row[0]: row for row in rows if row[0] != "-"}
    for match in truth["matches"]:
        row = by_current[str(match["current_id"])]
        assert row[1] == f"P{match['prior_id']}" and row[2] == match["status"]
        then, now = (f"{match[k]:.1f}" for k in ("prior_diameter_mm", "current_diameter_mm"))
        line = " ".join(row)
        assert f"{then} → {now}" in line  # long axis then -> now
        assert f"{match['prior_volume_mm3']:.0f} → {match['current_volume_mm3']:.0f}" in line
        change = match["current_volume_mm3"] / match["prior_volume_mm3"] - 1
        assert f"{change:+.0%}" in line
        if match["designed"] == "grown":
            assert "days (" in line
    new = truth["new"][0]["current_id"]
    assert by_current[str(new)][1:3] == ["-", "new"]
    resolved = [row for row in rows if row[0] == "-"]
    assert [row[1:3] for row in resolved] == [[f"P{truth['resolved'][0]['prior_id']}", "resolved"]]
    # the undecided AI candidate where the resolved nodule was is not a finding: it matches nothing
    assert f"{len(truth['current_nodules']) + 1}" not in by_current
    assert "Lung-RADS with comparison: suggested category" in section and "rule applied: finding" in section
    assert f"Suggested category {result.content.suggestion.category}" in text
    assert "with a prior study for comparison" in text and "no prior study for comparison" not in text
    # key images of both time points for each nodule seen on both scans
    assert section.count("now and prior finding P") == len(truth["matches"])
    assert section.count("close-up, 60 mm field") == 2 * len(truth["matches"])
    _look(result.path, tmp_path)


def _look(pdf: Path, folder: Path) -> None:
    """Render the Comparison pages (kept in the test's folder to be looked at); a key image is there."""
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(folder / "page")], check=True)
    pages = sorted(folder.glob("page-*.png"))
    assert len(pages) >= 2
    pixels = np.asarray(Image.open(pages[1]).convert("RGB")).astype(int)
    greys = (np.abs(pixels[..., 0] - pixels[..., 1]) < 4) & (pixels[..., 0] < 100)
    assert greys.mean() > 0.02  # dark CT pixels on a page of the section, not only text


def test_a_poor_alignment_is_said_not_hidden(pair, reads, tmp_path) -> None:
    record_comparison(reads["session"], _comparison(pair, reads["store"], overlap=0.41))
    _sign(reads["session"])
    section = _section(_pdf_text(_report(reads["store"], pair, tmp_path / "r.pdf", prior=False).path))
    assert "poor: the lungs overlap 41%" in section and "The alignment is poor" in section
    assert "compare the images by eye" in " ".join(section.split())
    assert "no key images of the prior" in " ".join(section.split())


def test_reader_edits_are_recorded_and_shown(pair, reads, tmp_path) -> None:
    truth, store = pair["truth"], reads["store"]
    grown = next(m for m in truth["matches"] if m["designed"] == "grown")
    edits = (ReaderEdit("unpair", grown["current_id"]), ReaderEdit("status", 99, status="stable"))
    recorded = record_comparison(reads["session"], _comparison(pair, store, edits=edits))
    assert recorded.id is not None and audit.verify(store.connection).ok
    row = store.connection.execute("SELECT action, new_value FROM audit ORDER BY seq DESC").fetchone()
    assert row[0] == "comparison_recorded" and "not the same nodule as any prior finding" in row[1]
    _sign(reads["session"])
    section = " ".join(_section(_pdf_text(_report(store, pair, tmp_path / "r.pdf", prior=False).path)).split())
    assert f"{grown['current_id']} - new *" in section and f"- P{grown['prior_id']} resolved" in section
    assert f"finding {grown['current_id']} not the same nodule as any prior finding" in section
    assert "finding 99 called stable: not applied" in section
    # the reader's correction is part of the record: taking it out behind the workstation's back is named
    outside = sqlite3.connect(store.path)
    outside.execute("UPDATE comparisons SET edits = '[]'")
    outside.commit()
    outside.close()
    verdict = audit.verify(store.connection)
    assert not verdict.ok and "comparisons row" in verdict.reason


def test_a_signed_read_keeps_the_comparison_it_was_signed_with(pair, reads, tmp_path) -> None:
    store, session = reads["store"], reads["session"]
    record_comparison(session, _comparison(pair, store))
    _sign(session)
    before = _section(_pdf_text(_report(store, pair, tmp_path / "a.pdf").path))
    with pytest.raises(WorkstationError, match="addendum; say why"):
        record_comparison(session, _comparison(pair, store, overlap=0.5))
    trainee = ReviewSession(store, login(store, "tom", PASSWORD), session.study_uid)
    with pytest.raises(WorkstationError, match="trainee"):
        record_comparison(trainee, _comparison(pair, store, overlap=0.5), reason="looked again")
    grown = next(m for m in pair["truth"]["matches"] if m["designed"] == "grown")
    later = record_comparison(session, _comparison(pair, store, overlap=0.5,
                                                   edits=(ReaderEdit("unpair", grown["current_id"]),)),
                              reason="second look at the prior")
    assert later.after_signing and audit.verify(store.connection).ok
    text = _pdf_text(_report(store, pair, tmp_path / "b.pdf").path)
    assert _section(text).split() == before.split()  # the signed read as signed (layout spaces aside)
    addenda = " ".join(text.split("Addenda after signing")[1].split())
    assert "recorded a comparison with the prior of" in addenda and "second look at the prior" in addenda


def test_without_a_prior_the_report_says_so(pair, reads, tmp_path) -> None:
    _sign(reads["session"])
    text = _pdf_text(_report(reads["store"], pair, tmp_path / "r.pdf", prior=False).path)
    assert "no prior study for comparison" in text and "\n Comparison\n" not in text


def test_another_patient_is_refused(pair, reads) -> None:
    other = dataclasses.replace(pair["prior"], metadata=dataclasses.replace(pair["prior"].metadata,
                                                                              patient_id="SOMEONE-ELSE"))
    registration = Registration(np.eye(4), 0.9, 0.9)
    with pytest.raises(WorkstationError, match="different Patient IDs"):
        Comparison.build(pair["current"], other, registration, [], "none")
    later = dataclasses.replace(pair["prior"], metadata=dataclasses.replace(pair["prior"].metadata,
                                                                              study_date="20991231"))
    with pytest.raises(WorkstationError, match="earlier study date"):
        Comparison.build(pair["current"], later, registration, [], "none")
