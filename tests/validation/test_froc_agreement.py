"""`workstation evaluate` agrees with itself and with the demo model's evaluate.py (#25 tests):
the same candidates measured against the phantoms' truth written as a LUNA16 CSV and as LIDC
XML give the same FROC, and the same as evaluate.py's froc() on the truth itself; subgroups
split the scans by their metadata, each measured on its own scans, the small ones marked.

The model's candidates are scripted here (hits on some nodules, misses, false positives, drawn
from a seed) in place of the batch engine's model runs: what is tested is the labels, the
matching and the FROC, not a model."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.validation.test_site_evaluation import _lidc_xml
from workstation.dicom.load import load_volume
from workstation.imaging.phantom import write_demo_case
from workstation.imaging.volume import SeriesMetadata
from workstation.jobs import run_job
from workstation.validation.froc import ScanResult, froc
from workstation.validation.site_evaluation import EvaluatedScan, _subgroups, evaluate_dataset_job

EVALUATE_PY = Path(__file__).resolve().parents[2] / "models" / "lung-nodule-demo" / "evaluate.py"
SEEDS = (51, 52, 53)


def _evaluate_py():
    spec = importlib.util.spec_from_file_location("demo_evaluate", EVALUATE_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("labelled")
    for seed in SEEDS:  # 2.5 mm slices: an LIDC contour's centre lies within 1.25 mm of the truth's in z
        write_demo_case(root / f"case-{seed}", seed=seed, matrix=128, slice_thickness_mm=2.5)
    return root


def _scripted_candidates(truth: dict, seed: int) -> list[tuple[float, tuple[float, float, float]]]:
    """Hits within 1 mm of most nodules, a miss or two, false positives 40+ mm from every nodule."""
    rng = np.random.default_rng(seed)
    centres = [np.array(n["centre_mm"]) for n in truth["nodules"]]
    candidates = []
    for centre in centres:
        if rng.random() < 0.75:
            candidates.append((float(rng.uniform(0.3, 0.99)), tuple(centre + rng.uniform(-0.5, 0.5, 3))))
    while len(candidates) < len(centres) + 4:
        point = centres[0] + rng.uniform(-150, 150, 3)
        if min(np.linalg.norm(point - c) for c in centres) > 40:
            candidates.append((float(rng.uniform(0.05, 0.9)), tuple(point)))
    return candidates


def _scripted_cluster(cases_root: Path):
    """Stands in for workstation.batch.analyses_on_cluster: each series loaded here, its
    candidates scripted from its case's truth."""
    def analyses(tasks, _bundle, **_options):
        for key, paths in tasks.items():
            volume = load_volume(Path(paths[0]).parent)
            case = Path(paths[0]).parent.parent
            truth = json.loads((case / "truth.json").read_text())
            findings = [SimpleNamespace(probability=p, center_mm=c)
                        for p, c in _scripted_candidates(truth, int(case.name.split("-")[1]))]
            yield key, (volume.metadata, SimpleNamespace(findings=findings, runtime_s=1.0), volume.affine,
                        volume.shape)
    return analyses


def test_csv_xml_and_evaluate_py_give_the_same_froc(cases: Path, tmp_path: Path, monkeypatch) -> None:
    import workstation.batch

    monkeypatch.setattr(workstation.batch, "analyses_on_cluster", _scripted_cluster(cases))
    labels_csv = tmp_path / "annotations.csv"
    xml_folder = tmp_path / "lidc"
    xml_folder.mkdir()
    demo_cases = []
    evaluate_py = _evaluate_py()
    with open(labels_csv, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for case in sorted(cases.iterdir()):
            truth = json.loads((case / "truth.json").read_text())
            volume = load_volume(case / "dicom")
            for nodule in truth["nodules"]:
                writer.writerow([truth["series_uid"], *nodule["centre_mm"], nodule["diameter_mm"]])
            # one reader's session per nodule set, contours of the truth's diameter on three slices
            marks = [[(tuple(n["centre_mm"]), n["diameter_mm"]) for n in truth["nodules"]]]
            (xml_folder / f"{case.name}.xml").write_text(_lidc_xml(volume, marks))
            findings = [{"probability": p, "center_mm": c}
                        for p, c in _scripted_candidates(truth, int(case.name.split("-")[1]))]
            demo_cases.append((evaluate_py.match(findings, truth["nodules"]), truth["nodules"]))
    bundle = SimpleNamespace(name="scripted", version="1", weights_sha256="0" * 64)
    from_csv = run_job(evaluate_dataset_job(cases, bundle, labels=labels_csv, bootstrap=20))
    from_xml = run_job(evaluate_dataset_job(cases, bundle, labels=xml_folder, bootstrap=20))
    reference = evaluate_py.froc(demo_cases)
    assert from_csv["overall"]["scans"] == from_xml["overall"]["scans"] == len(SEEDS)
    assert from_csv["overall"]["nodules"] == from_xml["overall"]["nodules"] == reference["nodules"]
    theirs = {float(rate): value for rate, value in reference["sensitivity_at_fp_per_scan"].items()}
    for report in (from_csv, from_xml):
        ours = {float(rate): value for rate, value in report["overall"]["sensitivity"].items()}
        assert ours == theirs
        assert report["overall"]["cpm"] == reference["cpm"]
    assert 0 < reference["cpm"] < 1  # a curve with something to agree on, not all 0 or all 1


def _scan(sex: str, manufacturer: str, seed: int) -> EvaluatedScan:
    rng = np.random.default_rng(seed)
    nodules = [((float(x), 0.0, 0.0), 8.0) for x in range(0, 100, 25)]  # 4 nodules, 25 mm apart
    candidates = [(float(rng.uniform(0.2, 1)), centre) for centre, _ in nodules if rng.random() < 0.7]
    candidates += [(float(rng.uniform(0, 0.6)), (0.0, 200.0 + 10 * i, 0.0)) for i in range(2)]
    metadata = SeriesMetadata(patient_sex=sex, manufacturer=manufacturer, patient_age="061Y", slice_thickness=1.0,
                              kernel="B30f", series_uid=f"1.2.{seed}")
    return EvaluatedScan(metadata.series_uid, metadata, ScanResult(candidates, nodules), 1.0)


def test_subgroups_split_by_metadata() -> None:
    scans = [_scan("F", "GE", s) for s in range(6)] + [_scan("M", "GE", s) for s in range(6, 12)] + \
            [_scan("M", "Canon", s) for s in range(12, 14)]
    groups = _subgroups(scans, bootstrap=20)
    assert set(groups["sex"]) == {"female", "male"} and set(groups["manufacturer"]) == {"GE", "Canon"}
    female = groups["sex"]["female"]
    assert not female["too_small"] and female["scans"] == 6 and female["nodules"] == 24
    assert female["sensitivity"] == froc([s.result for s in scans[:6]])["sensitivity"]  # its own scans only
    assert groups["sex"]["male"]["scans"] == 8
    canon = groups["manufacturer"]["Canon"]
    assert canon["too_small"] and canon["scans"] == 2 and "not enough to say anything" in canon["why"]
    assert "sensitivity" not in canon  # no figure without meaning
    assert list(groups["age"]) == ["50-64"] and list(groups["slice thickness"]) == ["thin (<= 2.5 mm)"]
