"""Model runs in the record: run the AI on a study and store what it proposed, in one place for
the viewer, the command line and batch runs; and read the newest stored run back.

Every run is recorded: the analysis row (model name, version, weights' sha256s, device,
threshold, stage timings, who and when), its findings, its heatmap and an audit row naming the
model and the study, in one transaction (the heatmap file right after it). A run of the same
model (same weights and threshold) on the same series as an earlier one is recorded too, but
proposes no second copy of the same findings: the reader reviews each proposal once, and the
new row points at the run whose findings stand (`repeats`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workstation.errors import WorkstationError
from workstation.inference.heatmap_file import load_heatmap, save_heatmap
from workstation.jobs import CancelToken, Job, Progress
from workstation.review import audit
from workstation.review.store import ReviewStore
from workstation.review.users import User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredAnalysis:
    """A model run as the store keeps it: what the viewer shows for a study opened later."""

    id: int
    study_uid: str
    series_uid: str
    model_name: str
    model_version: str
    model_sha256: str
    device: str
    threshold: float
    runtime_s: float
    created_by: str
    created_at: str
    notice: str = ""
    scope_warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    second_stage_sha256: str = ""
    repeats: int | None = None  # the earlier run of the same model whose findings stand


@dataclass(frozen=True)
class RecordedRun:
    """A fresh model run and the id it was stored under."""

    analysis_id: int
    analysis: Any  # inference.runner.Analysis
    finding_ids: list[int]
    repeats: int | None


def run_and_record_job(store: ReviewStore, user: User, volume: Any, bundle: Any, device: str = "auto",
                       threshold: float | None = None, cancel: CancelToken | None = None) -> Job[RecordedRun]:
    """Run `bundle` on `volume` (the study's series) and record the run under `user`."""
    from workstation.inference.runner import run_inference_job  # torch: only when the AI runs

    user.require("run_ai")
    analysis = yield from run_inference_job(volume, bundle, device, threshold, cancel)
    yield Progress(1, 1, "Recording the findings")
    return record_analysis(store, user, volume.metadata.study_uid, volume.metadata.series_uid, analysis)


def record_analysis(store: ReviewStore, user: User, study_uid: str, series_uid: str, analysis: Any) -> RecordedRun:
    """Store a model run and its findings (the AI proposes; nothing is decided yet)."""
    user.require("run_ai")
    second_stage = getattr(analysis, "second_stage_sha256", "")
    details = {"scope_warnings": list(analysis.scope_warnings), "notice": analysis.notice,
               "notes": list(analysis.notes), "second_stage_sha256": second_stage,
               "stage_seconds": {k: round(v, 3) for k, v in getattr(analysis, "stage_seconds", {}).items()}}
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    with store.transaction() as connection:
        repeats = _earlier_run(connection, study_uid, series_uid, analysis.model_sha256, second_stage,
                               analysis.threshold)
        if repeats is not None:
            details["repeats"] = repeats
        analysis_id = connection.execute(
            "INSERT INTO analyses (study_uid, series_uid, model_name, model_version, model_sha256, device, "
            "threshold, runtime_s, created_by, created_at, details) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (study_uid, series_uid, analysis.model_name, analysis.model_version, analysis.model_sha256,
             analysis.device, analysis.threshold, analysis.runtime_s, user.username, now,
             json.dumps(details))).lastrowid
        ids = [] if repeats is not None else [connection.execute(
            "INSERT INTO findings (study_uid, analysis_id, source, center_mm, diameter_mm, volume_mm3, "
            "mean_hu, probability, type, model_name, model_version, created_by, created_at) "
            "VALUES (?,?,'ai',?,?,?,?,?,?,?,?,?,?)",
            (study_uid, analysis_id, json.dumps(list(finding.center_mm)), finding.diameter_mm,
             finding.volume_mm3, finding.mean_hu, finding.probability, finding.type, finding.model_name,
             finding.model_version, user.username, now)).lastrowid for finding in analysis.findings]
        audit.append(connection, user.username, "analysis_run", study_uid=study_uid, object_id=str(analysis_id),
                     new_value={"findings": len(ids), "repeats": repeats},
                     details={"model": analysis.model_name, "version": analysis.model_version,
                              "sha256": analysis.model_sha256, "second_stage_sha256": second_stage,
                              "series_uid": series_uid, "device": analysis.device})
    _save_heatmap(store, analysis_id, analysis.heatmap)
    return RecordedRun(analysis_id, analysis, ids, repeats)


def _earlier_run(connection, study_uid: str, series_uid: str, sha256: str, second_stage: str,
                 threshold: float) -> int | None:
    """The first run of the same model on the same series whose findings were stored."""
    for analysis_id, details in connection.execute(
            "SELECT id, details FROM analyses WHERE study_uid = ? AND series_uid = ? AND model_sha256 = ? "
            "AND threshold = ? ORDER BY id", (study_uid, series_uid, sha256, threshold)):
        extra = json.loads(details) if details else {}
        if extra.get("second_stage_sha256", "") == second_stage and "repeats" not in extra:
            return analysis_id
    return None


def _save_heatmap(store: ReviewStore, analysis_id: int, heatmap: Any) -> None:
    """After the commit: a lost heatmap only costs the overlay, never a decision."""
    try:
        save_heatmap(store.heatmap_folder / f"analysis-{analysis_id}.heatmap", heatmap)
    except OSError as exc:
        log.warning("heatmap of analysis %s not saved: %s", analysis_id, exc)


def latest_analysis(store: ReviewStore, study_uid: str) -> StoredAnalysis | None:
    """The study's newest recorded model run, or None when the AI never ran on it."""
    row = store.connection.execute(
        "SELECT id, study_uid, series_uid, model_name, model_version, model_sha256, device, threshold, runtime_s, "
        "created_by, created_at, details FROM analyses WHERE study_uid = ? ORDER BY id DESC LIMIT 1",
        (study_uid,)).fetchone()
    if row is None:
        return None
    details = json.loads(row[11]) if row[11] else {}
    return StoredAnalysis(row[0], row[1], row[2] or "", row[3], row[4], row[5], row[6] or "", float(row[7] or 0),
                          float(row[8] or 0), row[9], row[10], details.get("notice", ""),
                          list(details.get("scope_warnings", [])), list(details.get("notes", [])),
                          dict(details.get("stage_seconds", {})), details.get("second_stage_sha256", ""),
                          details.get("repeats"))


def stored_heatmap(store: ReviewStore, analysis_id: int) -> np.ndarray | None:
    """A recorded run's heatmap, or None when its file is missing or damaged (said in the log)."""
    path = store.heatmap_folder / f"analysis-{analysis_id}.heatmap"
    if not path.is_file():
        return None
    try:
        return load_heatmap(path)
    except WorkstationError as exc:
        log.warning("%s", exc)
        return None
