"""`workstation evaluate DATASET` (#25 item 2): FROC with bootstrap intervals on the site's labelled
cases, LUNA16 CSV and LIDC XML labels, subgroups too small marked so, JSON/CSV/PNG/PDF written."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from workstation.cli import main
from workstation.dicom.load import load_volume
from workstation.imaging.phantom import write_demo_case
from workstation.validation.froc import ScanResult, froc, froc_with_intervals
from workstation.validation.labels import Label, LabelError, group_readers, read_lidc_xml, read_luna_csv


def test_froc_by_hand() -> None:
    a = ScanResult([(0.9, (0, 0, 0)), (0.8, (50, 0, 0)), (0.7, (0.5, 0, 0)), (0.2, (100, 0, 0))],
                   [((0, 0, 0), 10.0), ((30, 0, 0), 8.0)])
    b = ScanResult([(0.6, (30, 30, 30)), (0.5, (9, 9, 9))], [((30, 30, 30), 6.0)])
    result = froc([a, b])
    # ranked: 0.9 hit a0 | 0.8 FP (0.5/scan) | 0.7 repeat hit, ignored | 0.6 hit b0 | 0.5 FP (1/scan) | 0.2 FP
    assert result["nodules"] == 3 and result["scans"] == 2
    assert result["sensitivity"]["0.25"] == pytest.approx(1 / 3, abs=1e-3)
    assert result["sensitivity"]["0.5"] == pytest.approx(2 / 3, abs=1e-3)
    assert result["sensitivity"]["8.0"] == pytest.approx(2 / 3, abs=1e-3)  # a1 is never found
    with_ci = froc_with_intervals([a, b] * 5, repeats=200, seed=1)
    low, high = with_ci["interval_95"]["1.0"]
    assert low <= with_ci["sensitivity"]["1.0"] <= high
    assert froc_with_intervals([a, b] * 5, repeats=200, seed=1) == with_ci  # seeded


def test_luna_csv_errors_are_named(tmp_path: Path) -> None:
    path = tmp_path / "annotations.csv"
    path.write_text("seriesuid,coordX,coordY,diameter_mm\n1.2.3,1,2,5\n")
    with pytest.raises(LabelError, match="needs the columns"):
        read_luna_csv(path)
    path.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,1,2,nan,5\n")
    with pytest.raises(LabelError, match="line 2"):
        read_luna_csv(path)


def _lidc_xml(volume, marks: list[list[tuple[tuple[float, float, float], float]]]) -> str:
    """An LIDC-style file: one readingSession per reader, each nodule a circle of edge points per slice."""
    ns = "http://www.nih.gov"
    sessions = []
    for reader in marks:
        nodules = []
        for centre, diameter in reader:
            i, j, k = volume.patient_to_voxel(centre)
            spacing = volume.spacing_mm[0]
            rois = []
            for dk in (-1, 0, 1):
                z = volume.voxel_to_patient((0, 0, round(k) + dk))[2]
                edges = "".join(f"<edgeMap><xCoord>{i + np.cos(a) * diameter / 2 / spacing:.1f}</xCoord>"
                                f"<yCoord>{j + np.sin(a) * diameter / 2 / spacing:.1f}</yCoord></edgeMap>"
                                for a in np.linspace(0, 2 * np.pi, 12, endpoint=False))
                rois.append(f"<roi><imageZposition>{z}</imageZposition>{edges}</roi>")
            nodules.append(f"<unblindedReadNodule><noduleID>n</noduleID>{''.join(rois)}</unblindedReadNodule>")
        sessions.append(f"<readingSession>{''.join(nodules)}</readingSession>")
    return (f'<?xml version="1.0"?><LidcReadMessage xmlns="{ns}"><ResponseHeader><SeriesInstanceUid>'
            f"{volume.metadata.series_uid}</SeriesInstanceUid></ResponseHeader>{''.join(sessions)}</LidcReadMessage>")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    for seed in (31, 32):
        write_demo_case(root / f"case-{seed}", seed=seed, matrix=128, slice_thickness_mm=5.0)
    return root


def test_lidc_readers_are_grouped_by_agreement(dataset: Path, tmp_path: Path) -> None:
    volume = load_volume(dataset / "case-31" / "dicom")
    truth = json.loads((dataset / "case-31" / "truth.json").read_text())["nodules"]
    first, second = (tuple(n["centre_mm"]) for n in truth[:2])
    path = tmp_path / "read.xml"
    path.write_text(_lidc_xml(volume, [[(first, 12.0), (second, 8.0)], [(first, 11.0)], [(first, 12.0)]]))
    labels = sorted(read_lidc_xml(path, volume), key=lambda label: -label.readers)
    assert [label.readers for label in labels] == [3, 1]
    assert np.linalg.norm(np.subtract(labels[0].center_mm, first)) < volume.spacing_mm[2]
    assert 9.0 < labels[0].diameter_mm < 14.0
    assert group_readers([[Label((0, 0, 0), 5)], [Label((40, 0, 0), 5)]])[1].readers == 1


def _coarse_demo_model(home: Path) -> str:
    """The demo network run at 4 mm (a user-installed copy of its bundle): the same code path at a
    fraction of the cost, for a test about the evaluation rather than the model."""
    import shutil

    from workstation.paths import shipped

    folder = home / "models" / "coarse-demo"
    shutil.copytree(shipped("models") / "lung-nodule-demo", folder,
                    ignore=shutil.ignore_patterns("*.py", "checkpoint*", "snapshot*", "evaluation*", "fpr*"))
    meta = json.loads((folder / "metadata.json").read_text())
    meta.pop("false_positive_reduction", None)
    meta.pop("large_lesion_pass", None)
    meta.update(name="coarse-demo", test_time_flips=[[]])
    meta["input"].update(spacing_mm=[4.0, 4.0, 4.0], patch_size=[32, 32, 32])
    (folder / "metadata.json").write_text(json.dumps(meta))
    return "coarse-demo"


def test_evaluate_a_labelled_dataset(dataset: Path, tmp_path: Path, home: Path, capsys) -> None:
    model = _coarse_demo_model(home)
    labels = tmp_path / "annotations.csv"
    total = 0
    with open(labels, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for case in sorted(dataset.iterdir()):
            truth = json.loads((case / "truth.json").read_text())
            for nodule in truth["nodules"]:
                writer.writerow([truth["series_uid"], *nodule["centre_mm"], nodule["diameter_mm"]])
                total += 1
    out = tmp_path / "evaluation"
    assert main(["evaluate", str(dataset), "--labels", str(labels), "--out", str(out), "--bootstrap", "50",
                 "--device", "cpu", "--model", model, "--workers", "2"]) == 0
    printed = capsys.readouterr().out
    assert "on 2 labelled scan(s) of this site" in printed and "Too small to say anything" in printed
    report = json.loads((out / "evaluation.json").read_text())
    assert report["overall"]["nodules"] == total and report["overall"]["scans"] == 2
    assert all(result["too_small"] for values in report["subgroups"].values() for result in values.values())
    rows = list(csv.DictReader(open(out / "evaluation.csv")))
    assert rows[0]["group"] == "overall" and any("not enough to say anything" in r["note"] for r in rows)
    from pypdf import PdfReader

    text = PdfReader(out / "evaluation.pdf").pages[0].extract_text()
    assert "Measured on 2 labelled scan(s) of this site" in text and "too small to say" in text
    assert (out / "froc.png").read_bytes()[:4] == b"\x89PNG"


def test_no_labels_is_a_named_error(dataset: Path, tmp_path: Path, capsys) -> None:
    assert main(["evaluate", str(dataset), "--out", str(tmp_path / "e")]) == 2
    assert "No labels" in capsys.readouterr().err
