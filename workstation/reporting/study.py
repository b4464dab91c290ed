"""Report and decisions exports of a study, each recorded as an audit event.

The one place CLI and GUI go through, so both write the same report and the same audit row.
An export is written under a staging name beside its target, recorded, and only then renamed
to the name asked for: a crash at any point leaves the target either absent or recorded, and
an export that cannot be audited (a read-only database) is removed again. Nothing leaves the
workstation unrecorded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workstation.errors import WorkstationError
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job
from workstation.reporting.content import ReportContent, content_from_analysis, content_from_store
from workstation.reporting.decisions import decisions_csv, decisions_export
from workstation.reporting.pdf import export_report_job
from workstation.review import audit
from workstation.review.analyses import stored_heatmap
from workstation.review.exports import record_export, staging_path
from workstation.review.store import ReviewStore



@dataclass(frozen=True)
class ExportedReport:
    path: Path
    content: ReportContent
    sha256: str


def study_report_job(store: ReviewStore, volume: Volume, path: Path, *, generated_by: str, institution: str = "",
                     record: bool = True, cancel: CancelToken | None = None,
                     prior_volume: Volume | None = None) -> Job[ExportedReport]:
    """The study's read from the store as a PDF: final when signed, else a watermarked draft.
    `record=False` makes a preview; `publish_report` then audits the copy that is kept.
    `prior_volume`: the images of the prior the read was compared with (see `report_prior_series`),
    for the key images of both time points."""
    content = content_from_store(store, volume.metadata.study_uid, volume, institution=institution,
                                 generated_by=generated_by)
    heatmaps = stored_heatmaps(store, content)
    if not record:
        return ExportedReport((yield from export_report_job(content, volume, heatmaps, path, cancel, prior_volume)),
                              content, "")
    staging = staging_path(path)
    yield from export_report_job(content, volume, heatmaps, staging, cancel, prior_volume)
    return publish_report(store, generated_by, content, staging, path)


def draft_report_job(store: ReviewStore, analysis: Any, volume: Volume, path: Path, *, generated_by: str,
                     institution: str = "", cancel: CancelToken | None = None) -> Job[ExportedReport]:
    """A draft straight from a model run that nobody has reviewed (the headless pipeline)."""
    content = content_from_analysis(analysis, volume, institution=institution, generated_by=generated_by,
                                    audit_head=audit.head(store.connection))
    staging = staging_path(path)
    yield from export_report_job(content, volume, {None: analysis.heatmap}, staging, cancel)
    return publish_report(store, generated_by, content, staging, path)


def report_prior_series(store: ReviewStore, library, study_uid: str) -> dict | None:
    """The library series of the prior the study's report compares with (the one registered), or
    None: no comparison recorded, or the prior is no longer in the library."""
    from workstation.review.comparison_record import recorded_comparison
    from workstation.review.session import study_signed

    comparison = recorded_comparison(store, study_uid, as_signed=study_signed(store.connection, study_uid))
    if comparison is None:
        return None
    study = next((s for s in library.studies() if s["study_uid"] == comparison.prior.study_uid), None)
    if study is None:
        return None
    series = library.series(study["key"])
    return next((s for s in series if s["series_uid"] == comparison.prior.series_uid), None) or \
        max(series, key=lambda row: row["slices"], default=None)


def report_prior_volume_job(store: ReviewStore, library, study_uid: str,
                            cancel: CancelToken | None = None) -> Job[Volume | None]:
    """The images of the prior the study's report compares with (`report_prior_series`) loaded, for
    `study_report_job(prior_volume=...)`; None when no comparison is recorded or the prior is gone."""
    from workstation.dicom.load import load_largest_series_job

    row = report_prior_series(store, library, study_uid)
    if row is None:
        return None
    return (yield from load_largest_series_job([library.series_folder(row)], cancel))


def export_decisions(store: ReviewStore, study_uid: str, path: Path, fmt: str, *, exported_by: str) -> Path:
    """Findings, decisions, readers and model identity as JSON or CSV; audited."""
    record = decisions_export(store, study_uid, exported_by)
    if not record["findings"] and not record["readers"]:
        raise WorkstationError("Nothing has been read or analysed on this study yet")
    text = json.dumps(record, indent=1, ensure_ascii=False) if fmt == "json" else decisions_csv(record)
    path = Path(path)
    staging = staging_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging.write_text(text, encoding="utf-8")
    except OSError as exc:
        staging.unlink(missing_ok=True)
        raise WorkstationError(f"Cannot write {path}: {exc.strerror or exc}; choose another folder") from exc
    record_export(store, exported_by, study_uid, staging, path, kind=f"decisions-{fmt}",
                  findings=len(record["findings"]))
    return path


def stored_heatmaps(store: ReviewStore, content: ReportContent) -> dict[int | None, np.ndarray]:
    """The heatmap of each model run, where it was kept; a lost one only drops the overlay."""
    heatmaps: dict[int | None, np.ndarray] = {}
    for run in content.model_runs:
        heatmap = stored_heatmap(store, run.analysis_id)
        if heatmap is not None:
            heatmaps[run.analysis_id] = heatmap
    return heatmaps


def publish_report(store: ReviewStore, user: str, content: ReportContent, staging: Path, path: Path
                   ) -> ExportedReport:
    """Record the report written at `staging` as exported to `path`, and put it there."""
    digest = record_export(store, user, content.metadata.study_uid, staging, path, kind="report",
                           draft=content.draft, findings=len(content.findings))
    return ExportedReport(Path(path), content, digest)
