"""`workstation evaluate DATASET`: a model measured on the site's own labelled cases (issue #25
item 2). Every CT series under DATASET with labels is run through the model (the viewer's runner,
on the batch engine of workstation/batch.py), its candidates matched to the labels (of at least `min_agreement` readers), and
FROC reported overall and by subgroup (sex, age band, manufacturer, slice thickness, kernel) with
bootstrap 95% intervals. A subgroup with too few scans or nodules to say anything is marked so,
not reported as a number without meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workstation.dicom.series import scan_job
from workstation.errors import WorkstationError
from workstation.imaging.volume import SeriesMetadata
from workstation.jobs import CancelToken, Job, Progress
from workstation.subgroups import SUBGROUPS
from workstation.validation.froc import ScanResult, froc_with_intervals
from workstation.validation.labels import Label, LabelError, read_lidc_xml, read_luna_csv

MIN_SCANS, MIN_NODULES = 5, 10  # below either, a subgroup's figures are marked as too small
CANDIDATE_THRESHOLD = 0.05  # low, so the FROC curve reaches the high false-positive rates


@dataclass(frozen=True)
class EvaluatedScan:
    series_uid: str
    metadata: SeriesMetadata
    result: ScanResult
    seconds: float


@dataclass(frozen=True)
class Grid:
    """A series' voxel grid without its voxels: what LIDC labels need to land in patient mm."""

    affine: np.ndarray
    shape: tuple[int, int, int]

    def voxel_to_patient(self, ijk) -> np.ndarray:
        return (self.affine @ np.array([*ijk, 1.0]))[:3]


def _labels_for(series_uid: str, grid: Grid, csv_labels: dict[str, list[Label]] | None,
                xml_files: list[Path]) -> list[Label] | None:
    if csv_labels is not None:
        return csv_labels.get(series_uid)
    for path in xml_files:
        if series_uid in path.read_text(encoding="utf-8", errors="replace")[:20000]:
            return read_lidc_xml(path, grid)
    return None


def evaluate_dataset_job(dataset: Path, bundle, *, labels: Path | None = None, min_agreement: int = 1,
                         bootstrap: int = 1000, device: str = "cpu", workers: int = 1, scheduler: str | None = None,
                         cancel: CancelToken | None = None) -> Job[dict]:
    """Run `bundle` on every CT series under `dataset` on the batch engine (Dask: local workers or
    the site's scheduler), keep those with labels, and report."""
    from workstation.batch import analyses_on_cluster

    cancel = cancel or CancelToken()
    dataset = Path(dataset)
    csv_labels = None
    if labels is not None and labels.suffix.lower() == ".csv":
        csv_labels = read_luna_csv(labels)
    xml_root = labels if labels is not None and labels.is_dir() else dataset
    xml_files = sorted(xml_root.rglob("*.xml")) if csv_labels is None else []
    if csv_labels is None and not xml_files:
        raise LabelError("No labels: give --labels annotations.csv (LUNA16 columns) or LIDC XML files")
    scan = yield from scan_job([dataset], cancel)
    tasks = {}
    for series in scan.series:
        if csv_labels is not None and series.metadata.get("series_uid") not in csv_labels:
            continue  # nothing to measure it against: not worth a model run
        tasks[series.key] = sorted({h.source.path for h in series.slices if h.source.member is None})
    evaluated: list[EvaluatedScan] = []
    failed: dict[str, str] = {}
    yield Progress(0, max(len(tasks), 1), f"Running the model on {len(tasks)} series")
    for done, (key, outcome) in enumerate(analyses_on_cluster(tasks, bundle, workers=workers, scheduler=scheduler,
                                                              device=device, threshold=CANDIDATE_THRESHOLD,
                                                              cancel=cancel), 1):
        yield Progress(done, len(tasks), f"{done} of {len(tasks)} series evaluated")
        if isinstance(outcome, Exception):
            failed[key] = str(outcome)[:200]
            continue
        metadata, analysis, affine, shape = outcome
        found = _labels_for(metadata.series_uid, Grid(affine, shape), csv_labels, xml_files)
        if found is None:
            continue
        nodules = [(label.center_mm, label.diameter_mm) for label in found if label.readers >= min_agreement]
        candidates = [(f.probability, f.center_mm) for f in analysis.findings]
        evaluated.append(EvaluatedScan(metadata.series_uid, metadata, ScanResult(candidates, nodules),
                                       analysis.runtime_s))
    if not evaluated:
        raise WorkstationError(f"No labelled CT series under {dataset} could be evaluated "
                               f"({len(scan.series)} series found, {len(failed)} failed)")
    return {
        "model": {"name": bundle.name, "version": bundle.version, "sha256": bundle.weights_sha256},
        "dataset": str(dataset), "min_agreement": min_agreement, "bootstrap_repeats": bootstrap,
        "measured_on": f"{len(evaluated)} labelled scan(s) of this site",
        "overall": froc_with_intervals([e.result for e in evaluated], bootstrap),
        "subgroups": _subgroups(evaluated, bootstrap),
        "series_without_labels": len(scan.series) - len(tasks) + (len(tasks) - len(evaluated) - len(failed)),
        "failed_series": failed, "skipped_files": len(scan.skipped),
        "seconds_per_scan": round(sum(e.seconds for e in evaluated) / len(evaluated), 2),
    }


def _subgroups(evaluated: list[EvaluatedScan], bootstrap: int) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for name, key in SUBGROUPS.items():
        groups: dict[str, list[ScanResult]] = {}
        for scan in evaluated:
            groups.setdefault(key(scan.metadata), []).append(scan.result)
        out[name] = {}
        for value, results in sorted(groups.items()):
            nodules = sum(len(r.nodules) for r in results)
            if len(results) < MIN_SCANS or nodules < MIN_NODULES:
                out[name][value] = {"scans": len(results), "nodules": nodules, "too_small": True,
                                    "why": f"fewer than {MIN_SCANS} scans or {MIN_NODULES} nodules: not enough to "
                                           "say anything"}
            else:
                out[name][value] = {**froc_with_intervals(results, bootstrap), "too_small": False}
    return out
