"""The signed read written as DICOM results (SR, SEG, encapsulated PDF) into a folder, each file
staged, audited as an export, then renamed into place (review/exports.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workstation.dicom.results import build_results, sorted_sources
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job, Progress
from workstation.reporting.content import ReportError, content_from_store
from workstation.reporting.study import stored_heatmaps
from workstation.review.exports import record_export, staging_path
from workstation.review.store import ReviewStore


@dataclass(frozen=True)
class WrittenResults:
    files: dict[str, Path]  # "sr", "seg" (when any finding was accepted), "pdf"
    findings: int


def dicom_results_job(store: ReviewStore, volume: Volume, source_files: Iterable[Path], out: Path, *,
                      exported_by: str, institution: str = "", cancel: CancelToken | None = None
                      ) -> Job[WrittenResults]:
    """SR, SEG and PDF of the study's signed read, written under `out` (a folder)."""
    from workstation.reporting.pdf import export_report_job

    cancel = cancel or CancelToken()
    content = content_from_store(store, volume.metadata.study_uid, volume, institution=institution,
                                 generated_by=exported_by)
    if content.draft:
        raise ReportError("Only a signed read goes out as DICOM results; sign it first")
    yield Progress(0, 4, "Writing the PDF")
    with tempfile.TemporaryDirectory(prefix="results-") as scratch:
        pdf = yield from export_report_job(content, volume, stored_heatmaps(store, content),
                                           Path(scratch) / "report.pdf", cancel)
        pdf_bytes = Path(pdf).read_bytes()
    yield Progress(1, 4, "Reading the source images")
    sources = sorted_sources(sorted(source_files))
    cancel.check()
    yield Progress(2, 4, "Building the SR and SEG")
    results = build_results(content, sources, pdf_bytes)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for kind, dataset in (("sr", results.sr), ("seg", results.seg), ("pdf", results.pdf)):
        if dataset is None:
            continue
        path = out / f"{kind}-{dataset.SOPInstanceUID[-12:]}.dcm"
        staging = staging_path(path)
        dataset.save_as(staging, enforce_file_format=True)
        record_export(store, exported_by, content.metadata.study_uid, staging, path, kind=f"dicom-{kind}",
                      sop_instance_uid=str(dataset.SOPInstanceUID), findings=len(content.findings))
        written[kind] = path
    yield Progress(4, 4, "Written")
    return WrittenResults(written, len(content.findings))
