"""The PDF report on a real phantom series with the real demo model: content read back from the
PDF text, key images checked on pages rendered by pdftoppm, bad input, decisions export."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import subprocess
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pypdf import PdfReader

from workstation.dicom.load import load_largest_series_job
from workstation.imaging.phantom import write_demo_case
from workstation.inference.registry import find_model
from workstation.inference.runner import run_inference_job
from workstation.jobs import run_job
from workstation.reporting.content import ReportError, content_from_store
from workstation.reporting.decisions import decisions_csv
from workstation.reporting.fonts import report_fonts
from workstation.reporting.key_images import MARKER_RGB
from workstation.reporting.pdf import export_report_job, write_report_pdf
from workstation.reporting.study import export_decisions, study_report_job
from workstation.review import audit
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

pytestmark = pytest.mark.usefixtures("model_runs_once")  # what happens around a run, not the run

PASSWORD = "correct horse 1"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 256x256 phantom written as DICOM, loaded, and analysed by the shipped model."""
    folder = tmp_path_factory.mktemp("report-case")
    series, truth = write_demo_case(folder, seed=3, matrix=256)
    volume = run_job(load_largest_series_job([series]))
    analysis = run_job(run_inference_job(volume, find_model()))
    assert len(analysis.findings) >= 2, "the case needs two AI findings: one to accept, one to reject"
    return volume, analysis, json.loads(truth.read_text())


@pytest.fixture
def store(tmp_path: Path):
    store = ReviewStore(tmp_path / "data" / "review.db")
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_ada", PASSWORD, "radiologist")
    yield store
    store.close()


def _read(store, volume, analysis, *, sign: bool = True, override: str | None = None) -> dict:
    """Accept the first AI finding, reject the second (vessel), add one, sign: a complete read."""
    session = ReviewSession(store, login(store, "dr_ada", PASSWORD), volume.metadata.study_uid)
    ids = session.record_analysis(analysis, volume.metadata.series_uid)
    session.accept(ids[0])
    session.reject(ids[1], "vessel")
    added = session.add((10.0, -20.0, float(volume.voxel_to_patient((0, 0, volume.shape[0] // 2))[2])), 5.0,
                        "ground-glass")
    if sign:
        session.sign("Solid nodule in the left lower zone.\n\nFollow-up as per Lung-RADS.", password=PASSWORD,
                     allow_undecided=True, undecided_reason="left for the second reader",
                     lung_rads=override, lung_rads_reason="growth on outside study" if override else "")
    return {"accepted": ids[0], "rejected": ids[1], "added": added, "session": session}


def _text(path: Path) -> list[str]:
    return [page.extract_text() for page in PdfReader(str(path)).pages]


def _report(store, volume, path: Path, who: str = "dr_ada"):
    return run_job(study_report_job(store, volume, path, generated_by=who, institution="Klinik Nord"))


def test_signed_report_says_what_was_decided_and_nothing_rejected_as_a_finding(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    read = _read(store, volume, analysis)
    result = _report(store, volume, tmp_path / "out" / "report.pdf")
    pages = _text(result.path)
    whole = "\n".join(pages)
    accepted = next(f for f in analysis.findings if f.probability == max(x.probability for x in analysis.findings))
    rejected_state = next(s for s in read["session"].findings() if s.id == read["rejected"])
    # header and footer on every page, page X of Y
    for number, page in enumerate(pages, start=1):
        assert "Klinik Nord" in page and "PH000003" in page and f"page {number} of {len(pages)}" in page
        assert "DRAFT" not in page
    # AI identity, threshold and stated performance, intended use
    bundle = find_model()
    assert f"{bundle.name} {bundle.version}" in whole and bundle.weights_sha256[:12] in whole
    assert f"second stage {bundle.fp_reduction.weights_sha256[:12]}" in whole  # stored with the run, read back
    assert "stated sensitivity" in whole and "Intended use" in whole
    # findings table: the accepted AI finding and the added one, with who accepted
    findings_part = whole.split("Findings (accepted or added by the reader)")[1].split("AI findings rejected")[0]
    assert f"{accepted.diameter_mm:.1f} mm" in findings_part and "dr_ada" in findings_part
    assert "(added by the reader)" in findings_part and "ground-glass" in findings_part
    centre = ", ".join(f"{v:.1f}" for v in rejected_state.center_mm)
    assert centre not in findings_part  # the rejected one is only in the rejected list
    rejected_part = whole.split("AI findings rejected by the reader")[1].split("Impression")[0]
    assert "vessel" in rejected_part and "dr_ada" in rejected_part
    # impression, Lung-RADS with its rule, signature, reading time, audit head
    assert "Solid nodule in the left lower zone." in whole
    assert "rule applied" in whole and "Lung-RADS v2022" in whole
    assert "Electronically signed by dr_ada" in whole
    assert result.content.audit_head[1] in whole.replace("\n", "")
    # the export itself is an audit event carrying the file's hash
    last = store.connection.execute("SELECT user, action, new_value FROM audit ORDER BY seq DESC").fetchone()
    assert last[:2] == ("dr_ada", "exported")
    assert json.loads(last[2])["sha256"] == hashlib.sha256(result.path.read_bytes()).hexdigest()
    assert audit.verify(store.connection).ok


def test_unsigned_read_is_a_draft_on_every_page(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    _read(store, volume, analysis, sign=False)
    result = _report(store, volume, tmp_path / "draft.pdf")
    assert result.content.draft
    for page in _text(result.path):
        assert "DRAFT" in page and "not reviewed" in page


def test_reader_override_of_lung_rads_is_printed_with_the_suggestion(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    _read(store, volume, analysis, override="4B")
    whole = "\n".join(_text(_report(store, volume, tmp_path / "r.pdf").path))
    assert "Reader's category: 4B (growth on outside study)" in whole
    assert "Overrides the suggestion" in whole and "Suggested category" in whole


def test_key_images_outline_the_heatmap_inside_the_marker(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    _read(store, volume, analysis)
    path = _report(store, volume, tmp_path / "r.pdf").path
    subprocess.run(["pdftoppm", "-r", "110", "-png", str(path), str(tmp_path / "page")], check=True)
    checked = 0
    for page in sorted(tmp_path.glob("page*.png")):
        rgb = np.asarray(Image.open(page).convert("RGB")).astype(int)
        marker = (np.abs(rgb - np.array(MARKER_RGB)).sum(axis=-1) < 90)
        from scipy import ndimage

        labels, _ = ndimage.label(ndimage.binary_dilation(marker, iterations=2))
        for index, region in enumerate(ndimage.find_objects(labels), start=1):
            height, width = region[0].stop - region[0].start, region[1].stop - region[1].start
            if not (25 <= height <= 250 and 0.7 < width / height < 1.4):
                continue  # only the close-up's ring is big enough to look inside reliably
            cy, cx = (region[0].start + region[0].stop) // 2, (region[1].start + region[1].stop) // 2
            centre = rgb[cy - 2:cy + 3, cx - 2:cx + 3]
            ring = rgb[region]
            heat = (ring[..., 0] > 200) & (ring[..., 1] > 140) & (ring[..., 2] < 80)  # the outline's yellow
            grey = np.abs(centre[..., 0] - centre[..., 2]).mean() < 25  # the lesion itself, not covered
            if heat.sum() > 10 and grey:
                checked += 1
    assert checked >= 1, "no close-up key image with the heatmap's outline inside its marker and the lesion visible"


def test_non_latin_names_long_impression_and_fifty_findings(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    names = {"arabic": "محمد^علي", "chinese": "Wang^XiaoDong=王^小東", "accented": "Müller-Ødegård^Zoë"}
    session = ReviewSession(store, login(store, "dr_ada", PASSWORD), volume.metadata.study_uid)
    session.record_analysis(analysis, volume.metadata.series_uid)
    z = float(volume.voxel_to_patient((0, 0, volume.shape[0] // 2))[2])
    for n in range(50):
        session.add((-60.0 + 2.4 * n, -20.0, z), 4.0 + n % 20, "solid")
    impression = " ".join(f"Sentence {n} of a very long impression." for n in range(3000))
    session.sign(impression, password=PASSWORD, allow_undecided=True,
                 undecided_reason="out of scope for this test")
    for kind, name in names.items():
        patient = dataclasses.replace(volume, metadata=dataclasses.replace(volume.metadata, patient_name=name))
        content = content_from_store(store, volume.metadata.study_uid, patient, institution="مستشفى الشفاء")
        path = run_job(export_report_job(content, patient, {}, tmp_path / f"{kind}.pdf"))
        pages = _text(path)
        whole = unicodedata.normalize("NFKC", "\n".join(pages))
        assert "[U+" not in whole, f"a character of the {kind} name had no glyph"
        assert "Sentence 2999 of a very long impression." in whole.replace("\n", " ")
        assert len(content.findings) == 50 and all(f"{n}" in whole for n in (1, 25, 50))
        if kind == "chinese":
            assert "王, 小東" in pages[0]
        if kind == "accented":
            assert "Müller-Ødegård, Zoë" in pages[0]
        if kind == "arabic":  # drawn in visual order; reading it back reverses the letters' order
            assert "محمد"[::-1] in whole.replace(" ", "") or "محمد" in whole


def test_missing_fonts_still_build_and_say_so(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    _read(store, volume, analysis)
    patient = dataclasses.replace(volume, metadata=dataclasses.replace(volume.metadata, patient_name="王^小東"))
    content = content_from_store(store, volume.metadata.study_uid, patient)
    path = write_report_pdf(content, {}, tmp_path / "r.pdf", fonts=report_fonts(tmp_path / "no-fonts"))
    whole = "\n".join(_text(path))
    assert "Fonts missing" in whole and "[U+738B]" in whole  # 王 as its code point, not dropped


def test_unwritable_output_fails_clearly_and_loses_nothing(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    _read(store, volume, analysis)
    before = store.connection.execute("SELECT count(*) FROM audit").fetchone()[0]
    findings_before = ReviewSession.findings_of(store, volume.metadata.study_uid)
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x")
    for target in (not_a_folder / "report.pdf", Path("/proc/report.pdf")):  # (tests run as root: no chmod)
        with pytest.raises(ReportError, match="Cannot write the report"):
            _report(store, volume, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "data"]
    assert store.connection.execute("SELECT count(*) FROM audit").fetchone()[0] == before
    assert ReviewSession.findings_of(store, volume.metadata.study_uid) == findings_before


def test_report_of_an_unread_study_is_refused(case, store, tmp_path) -> None:
    volume, _, _ = case
    with pytest.raises(ReportError, match="Nothing has been read"):
        _report(store, volume, tmp_path / "r.pdf")


def test_decisions_export_json_and_csv(case, store, tmp_path) -> None:
    volume, analysis, _ = case
    read = _read(store, volume, analysis)
    path = export_decisions(store, volume.metadata.study_uid, tmp_path / "d.json", "json", exported_by="dr_ada")
    record = json.loads(path.read_text())
    by_id = {f["finding_id"]: f for f in record["findings"]}
    assert by_id[read["accepted"]]["decision"] == "accepted"
    assert by_id[read["rejected"]]["reason"] == "vessel"
    assert by_id[read["accepted"]]["model"]["sha256"] == find_model().weights_sha256
    assert by_id[read["added"]]["source"] == "clinician" and by_id[read["added"]]["model"] is None
    assert record["readers"][0]["user"] == "dr_ada" and record["readers"][0]["status"] == "signed"
    assert record["readers"][0]["role"] == "radiologist"
    rows = list(csv.DictReader(io.StringIO(decisions_csv(record))))
    assert {row["action"] for row in rows} == {"accept", "reject", "add"}
    assert all(row["time_utc"] and row["user"] == "dr_ada" for row in rows)
    export = store.connection.execute("SELECT new_value FROM audit WHERE action = 'exported'").fetchone()
    assert json.loads(export[0])["kind"] == "decisions-json"

    assert by_id[read["added"]]["number"] == len(analysis.findings) + 1  # the viewer's number, after the AI's
    assert {row["finding_number"] for row in rows} >= {"1", str(len(analysis.findings) + 1)}


def test_signed_with_undecided_candidates_says_how_many_were_not_reviewed_and_why(case, store, tmp_path) -> None:
    """#22: 'Sign anyway' must not leave the report silent; numbers are the viewer's, in every section."""
    volume, analysis, _ = case
    session = ReviewSession(store, login(store, "dr_ada", PASSWORD), volume.metadata.study_uid)
    ids = session.record_analysis(analysis, volume.metadata.series_uid)
    session.accept(ids[-1])  # the least probable: number n in the viewer, the report's only finding
    session.sign("One nodule.", password=PASSWORD, allow_undecided=True,
                 undecided_reason="the second reader reviews the rest")
    whole = "\n".join(_text(_report(store, volume, tmp_path / "r.pdf").path))
    undecided = len(ids) - 1
    assert f"{undecided} AI candidate(s) were not reviewed" in whole
    assert "Reason given at signing: the second reader reviews the rest" in whole
    assert f"Finding {len(ids)}:" in whole and "Finding 1:" not in whole
    assert "Institution not set" not in whole  # _report names one; an unset one is left out (see below)
    content = content_from_store(store, volume.metadata.study_uid, volume)
    assert not content.institution and [f.number for f in content.findings] == [len(ids)]
    path = run_job(export_report_job(content, volume, {}, tmp_path / "no-institution.pdf"))
    assert all("Institution not set" not in page for page in _text(path))
