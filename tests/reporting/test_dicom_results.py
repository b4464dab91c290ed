"""A signed read as DICOM (#23 item 4): the SR (TID 1500) holds one group per accepted finding
with its measurements, probability, model and acceptor; the SEG's segments sit where the findings
are; the PDF is the report; rejected and undecided candidates never go out. Read back with
highdicom and dcmtk's dsrdump, validated with dicom3tools' dciodvfy, and sent to a real Orthanc."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from tests.network.conftest import orthanc  # noqa: F401 - the real-Orthanc fixture
from workstation.cli import main
from workstation.imaging.phantom import write_demo_case
from workstation.inference.bundle import ModelBundle
from workstation.inference.findings import Finding
from workstation.inference.registry import SHIPPED_MODELS
from workstation.inference.runner import Analysis
from workstation.library import StudyLibrary
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import add_user, login

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("results-case")
    write_demo_case(folder, seed=11, matrix=128, slice_thickness_mm=5.0)
    return folder


# the shipped demo model's version: the monitor judges a run against that installed model's scope
DEMO_VERSION = ModelBundle.from_folder(SHIPPED_MODELS / "lung-nodule-demo").version


def _analysis(truth: list[dict], shape: tuple[int, int, int]) -> Analysis:
    """Three AI candidates: two at real nodules, one far off (to be rejected), plus one left undecided."""
    findings = [Finding(i + 1, tuple(n["centre_mm"]), (1.0, 1.0, 1.0), n["diameter_mm"], 4 / 3 * np.pi *
                        (n["diameter_mm"] / 2) ** 3, 20.0, 0.9 - i / 10, "solid", "lung-nodule-demo", DEMO_VERSION)
                for i, n in enumerate(truth[:2])]
    for number, centre in ((3, (0.0, 0.0, 0.0)), (4, (30.0, 30.0, 0.0))):
        findings.append(Finding(number, centre, (1.0, 1.0, 1.0), 6.0, 113.0, 20.0, 0.35, "ground-glass",
                                "lung-nodule-demo", DEMO_VERSION))
    heatmap = np.zeros(shape, dtype=np.float32)
    return Analysis("lung-nodule-demo", DEMO_VERSION, "ab" * 32, "CPU", 0.3, 1.0, heatmap, findings, [], "Demo only.")


def imported_case(home: Path, case: Path) -> tuple[dict, dict, Analysis, list[dict]]:
    """Import `case` (a demo-case folder): its library study, series, an Analysis sized to that
    series (see _analysis) and the case's truth."""
    assert main(["import", str(case / "dicom")]) == 0
    library = StudyLibrary(home)
    study = library.studies()[0]
    series = library.series(study["key"])[0]
    truth = json.loads((case / "truth.json").read_text())["nodules"]
    return study, series, _analysis(truth, (series["slices"], series["rows"], series["columns"])), truth


@pytest.fixture
def signed(case: Path, home: Path, monkeypatch) -> dict:
    """A library study read by dr_lee: two AI findings accepted, one rejected, one undecided, one added."""
    study, series, analysis, truth = imported_case(home, case)
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    add_user(store, admin, "dr_lee", PASSWORD, "radiologist")
    session = ReviewSession(store, login(store, "dr_lee", PASSWORD), study["study_uid"])
    ids = session.record_analysis(analysis, series["series_uid"])
    session.accept(ids[0])
    session.accept(ids[1])
    session.reject(ids[2], "vessel")
    added = tuple(truth[2]["centre_mm"]) if len(truth) > 2 else (-40.0, 20.0, 0.0)
    session.add(added, 7.0, "part-solid")
    session.sign("Two solid nodules and one part-solid.", password=PASSWORD, allow_undecided=True,
                 undecided_reason="a far-off mark, outside the lung")
    store.close()
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    return {"truth": truth, "added": added, "study": study, "rejected": (0.0, 0.0, 0.0), "undecided": (30.0, 30.0, 0.0)}


def test_the_signed_read_as_sr_seg_and_pdf(signed: dict, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results"
    assert main(["results", "1", "--out", str(out), "--as", "dr_lee"]) == 0
    files = {path.name.split("-")[0]: path for path in out.iterdir()}
    assert set(files) == {"sr", "seg", "pdf"}
    truth = signed["truth"]
    accepted = [tuple(truth[0]["centre_mm"]), tuple(truth[1]["centre_mm"]), signed["added"]]

    seg = hd.seg.segread(files["seg"])
    assert seg.number_of_segments == 3
    assert str(seg.StudyInstanceUID) == signed["study"]["study_uid"]
    for number in range(1, 4):
        assert seg.get_segment_description(number).SegmentLabel.startswith("Finding ")
    # every segment's voxels are centred on its accepted finding (within a slice), none at the rejected one
    for number, centre in enumerate(accepted, 1):
        frames = [i for i in range(int(seg.NumberOfFrames))
                  if int(seg.PerFrameFunctionalGroupsSequence[i].SegmentIdentificationSequence[0]
                         .ReferencedSegmentNumber) == number]
        z = [float(seg.PerFrameFunctionalGroupsSequence[i].PlanePositionSequence[0].ImagePositionPatient[2])
             for i in frames]
        assert frames and abs(np.mean(z) - centre[2]) <= 5.0, (number, z, centre)

    sr = hd.sr.srread(files["sr"])
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == 3
    identifiers = sorted(g.tracking_identifier for g in groups)
    assert all(i.startswith("Finding ") for i in identifiers)
    long_axes = sorted(round(g.get_measurements(name=pydicom.sr.codedict.codes.SCT.LongAxis)[0].value, 1)
                       for g in groups)
    assert long_axes == sorted(round(d, 1) for d in (truth[0]["diameter_mm"], truth[1]["diameter_mm"], 7.0))
    text = files["sr"].read_bytes()
    assert b"dr_lee" in text and b"lung-nodule-demo" in text and b"AI nodule probability" in text
    assert sr.VerificationFlag == "VERIFIED" and sr.CompletionFlag == "COMPLETE"

    pdf = pydicom.dcmread(files["pdf"])
    assert pdf.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert bytes(pdf.EncapsulatedDocument).startswith(b"%PDF")
    assert str(pdf.StudyInstanceUID) == signed["study"]["study_uid"] and pdf.Modality == "DOC"
    assert "3 accepted finding(s)" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("dciodvfy") is None or shutil.which("dsrdump") is None,
                    reason="dicom3tools / dcmtk not installed")
def test_our_objects_pass_dciodvfy_and_dsrdump_reads_them(signed: dict, tmp_path: Path) -> None:
    out = tmp_path / "results"
    assert main(["results", "1", "--out", str(out), "--as", "dr_lee"]) == 0
    for path in out.iterdir():
        check = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (check.stdout + check.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{path.name}: " + "\n".join(errors[:10])
    sr = next(p for p in out.iterdir() if p.name.startswith("sr-"))
    dump = subprocess.run(["dsrdump", str(sr)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0 and "Imaging Measurement Report" in dump.stdout
    assert dump.stdout.count("Finding ") >= 3 and "Long axis" in dump.stdout


def test_an_unsigned_read_does_not_go_out(case: Path, home: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("WORKSTATION_PASSWORD", PASSWORD)
    study, series, analysis, _truth = imported_case(home, case)
    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", PASSWORD, "admin")
    session = ReviewSession(store, admin, study["study_uid"])
    ids = session.record_analysis(analysis, series["series_uid"])
    session.accept(ids[0])  # decided, but never signed
    store.close()
    capsys.readouterr()
    assert main(["results", "1", "--out", str(tmp_path / "r"), "--as", "admin"]) == 2
    assert "Only a signed read goes out as DICOM results" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_send_the_results_to_orthanc(signed: dict, orthanc, capsys) -> None:  # noqa: F811 - the fixture
    orthanc.clear()
    assert main(["pacs", "nodes", "add", "pacs", "--aet", orthanc.ae_title, "--host", "127.0.0.1",
                 "--port", str(orthanc.dicom_port), "--as", "admin"]) == 0
    assert main(["pacs", "send", "pacs", "1", "--results", "--as", "dr_lee"]) == 0
    assert "Sent 3 of 3" in capsys.readouterr().out
    modalities = sorted(s["MainDicomTags"]["Modality"] for s in orthanc.rest("/series?expand"))
    assert modalities == ["DOC", "SEG", "SR"]
