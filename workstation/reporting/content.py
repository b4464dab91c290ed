"""What a report says, gathered from the review store (or from a fresh analysis, for a draft).

The report shows as findings only what a person accepted or added. A signed read gives a
final report; anything else gives a draft, in which the AI's undecided proposals appear in
their own section, labelled as not reviewed. A read signed with candidates left undecided says
how many were not reviewed and the reason the signer gave. Findings keep their study number
(the one the viewer shows) in every section.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from workstation.errors import WorkstationError
from workstation.imaging.volume import SeriesMetadata, Volume
from workstation.inference.preprocess import lung_crop
from workstation.inference.registry import list_models
from workstation.reporting.lungrads import EDITION, LungRadsSuggestion, NoduleInput, suggest_category
from workstation.reporting.comparison_section import ComparisonReport, comparison_report, display_date
from workstation.review import audit
from workstation.review.comparison_record import comparisons_after_signing
from workstation.review.session import FindingState, ReviewSession
from workstation.review.store import ReviewStore


class ReportError(WorkstationError):
    """A report cannot be made (nothing to report on, output not writable, fonts unusable)."""


@dataclass(frozen=True)
class ModelRun:
    name: str
    version: str
    sha256: str
    device: str
    threshold: float
    run_at: str
    run_by: str
    series_uid: str
    scope_warnings: tuple[str, ...] = ()
    notice: str = ""
    intended_use: str = ""
    stated_sensitivity: float | None = None  # at the operating threshold, from the model card
    stated_fp_per_scan: float | None = None
    stated_measured_on: str = ""  # the data those figures come from
    analysis_id: int | None = None
    second_stage_sha256: str = ""


@dataclass(frozen=True)
class ReportFinding:
    number: int
    finding_id: int
    source: str  # ai or clinician
    location: str
    center_mm: tuple[float, float, float]
    diameter_mm: float
    volume_mm3: float | None
    type: str
    probability: float | None
    model: str  # "name version" for AI findings
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    analysis_id: int | None
    volume_estimated: bool = False  # from an edited diameter, not the model's segmentation


@dataclass(frozen=True)
class Addendum:
    """A change made after signing, printed after the signed content (which stays as signed)."""

    by: str
    at: str
    why: str
    what: str


@dataclass(frozen=True)
class ReportContent:
    institution: str
    metadata: SeriesMetadata
    model_runs: tuple[ModelRun, ...]
    findings: tuple[ReportFinding, ...]  # accepted by a person or added by one
    proposals: tuple[ReportFinding, ...]  # AI findings nobody decided (listed in drafts, counted when signed)
    rejected: tuple[ReportFinding, ...]
    suggestion: LungRadsSuggestion
    impression: str = ""
    lung_rads_override: dict | None = None  # {"category", "reason"} chosen by the reader
    reading_seconds: float | None = None
    signer: str | None = None
    signed_at: str | None = None
    audit_head: tuple[int, str] = (0, audit.GENESIS)
    addenda: tuple[Addendum, ...] = ()
    unreviewed_reason: str = ""  # why the signer left AI candidates undecided
    comparison: ComparisonReport | None = None  # when a prior was chosen for the read
    generated_by: str = ""
    generated_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    @property
    def draft(self) -> bool:
        return self.signed_at is None

    @property
    def lung_rads(self) -> str:
        return (self.lung_rads_override or {}).get("category") or self.suggestion.category

    @property
    def lung_rads_edition(self) -> str:
        """Which rules the suggestion follows: baseline (no prior study for comparison) or with the prior."""
        if self.comparison is None:
            return EDITION
        from workstation.reporting.lungrads_comparison import EDITION as WITH_PRIOR

        return WITH_PRIOR


def content_from_store(store: ReviewStore, study_uid: str, volume: Volume, *, institution: str = "",
                       generated_by: str = "") -> ReportContent:
    """The study's read as it stands: the newest signed reading session, else a draft."""
    connection = store.connection
    runs = _model_runs(connection, study_uid)
    reading = connection.execute(
        "SELECT user, status, impression, signed_at, active_seconds, lung_rads FROM reading_sessions "
        "WHERE study_uid = ? ORDER BY status = 'signed' DESC, signed_at DESC, started_at DESC", (study_uid,)).fetchone()
    if not runs and reading is None:
        raise ReportError("Nothing has been read or analysed on this study yet; open it and run the AI first")
    analysis_of = dict(connection.execute("SELECT id, analysis_id FROM findings WHERE study_uid = ?", (study_uid,)))
    signed = reading is not None and reading[1] == "signed"
    states = ReviewSession.findings_of(store, study_uid, as_signed=signed)  # a signed read: as it was signed
    locate = _locator(volume)

    def report_finding(state: FindingState) -> ReportFinding:
        return ReportFinding(state.number, state.id, state.source, locate(state.center_mm), state.center_mm,
                             state.diameter_mm, state.volume_mm3, state.type, state.probability,
                             f"{state.model_name} {state.model_version}" if state.model_name else "",
                             state.decided_by, state.decided_at, state.reason, analysis_of.get(state.id),
                             state.volume_estimated)

    accepted = sorted((report_finding(s) for s in states if s.reportable), key=lambda f: f.number)
    undecided = [report_finding(s) for s in states if s.decision == "undecided"]
    rejected = [report_finding(s) for s in states if s.decision == "rejected"]
    numbers = {s.id: s.number for s in states}
    # the prior chosen for the read, matched with the accepted findings only; a signed read keeps the
    # comparison it was signed with (one recorded later is an addendum)
    comparison = comparison_report(store, study_uid, accepted, as_signed=signed)
    addenda = _addenda(connection, study_uid, numbers, locate) + _comparison_addenda(store, study_uid) \
        if signed else ()
    return ReportContent(
        institution=institution, metadata=volume.metadata, model_runs=tuple(runs), findings=tuple(accepted),
        proposals=tuple(undecided), rejected=tuple(rejected),
        suggestion=comparison.suggestion if comparison else _suggest(accepted), comparison=comparison,
        impression=(reading[2] or "") if reading else "",
        lung_rads_override=json.loads(reading[5]) if reading and reading[5] else None,
        reading_seconds=float(reading[4]) if reading else None, signer=reading[0] if signed else None,
        signed_at=reading[3] if signed else None, audit_head=audit.head(connection),
        addenda=tuple(sorted(addenda, key=lambda a: a.at)),
        unreviewed_reason=_unreviewed_reason(connection, study_uid) if signed else "", generated_by=generated_by)


def _unreviewed_reason(connection: sqlite3.Connection, study_uid: str) -> str:
    """The reason the signer gave for leaving AI candidates undecided (kept in the 'signed' audit row)."""
    row = connection.execute("SELECT new_value FROM audit WHERE study_uid = ? AND action = 'signed' "
                             "ORDER BY seq DESC LIMIT 1", (study_uid,)).fetchone()
    return (json.loads(row[0]) or {}).get("undecided_reason", "") if row and row[0] else ""


_ADDENDUM_VERBS = {"accept": "accepted", "reject": "rejected", "edit": "edited", "add": "added", "undo": "took back "
                   "an earlier decision on"}


def _addenda(connection: sqlite3.Connection, study_uid: str, numbers: dict[int, int], locate) -> tuple[Addendum, ...]:
    addenda = []
    for finding_id, user, action, reason, new_values, why, at in connection.execute(
            "SELECT d.finding_id, d.user, d.action, d.reason, d.new_values, d.addendum_reason, d.created_at "
            "FROM decisions d WHERE d.study_uid = ? AND d.addendum = 1 ORDER BY d.id", (study_uid,)):
        centre = connection.execute("SELECT center_mm FROM findings WHERE id = ?", (finding_id,)).fetchone()
        which = (f"finding {numbers[finding_id]}" if finding_id in numbers
                 else f"a finding at {locate(tuple(json.loads(centre[0])))}" if centre else f"finding id {finding_id}")
        detail = f" ({reason})" if reason else f" ({new_values})" if action in ("edit", "add") and new_values else ""
        addenda.append(Addendum(user, at, why or "", f"{_ADDENDUM_VERBS[action]} {which}{detail}"))
    return tuple(addenda)


def _comparison_addenda(store: ReviewStore, study_uid: str) -> tuple[Addendum, ...]:
    return tuple(Addendum(c.recorded_by, c.recorded_at, c.addendum_reason,
                          f"recorded a comparison with the prior of {display_date(c.prior.date)} (alignment "
                          f"{c.registration.quality}{_corrections(c)}); not part of the signed read, whose "
                          "Comparison section is as signed") for c in comparisons_after_signing(store, study_uid))


def _corrections(comparison) -> str:
    """A re-matching after signing is said in the addendum, not only that a comparison was recorded."""
    edits = "; ".join(e.describe() for e in comparison.edits)
    return f"; the reader's corrections: {edits}" if edits else ""


def content_from_analysis(analysis: Any, volume: Volume, *, institution: str = "", generated_by: str = "",
                          audit_head: tuple[int, str] = (0, audit.GENESIS)) -> ReportContent:
    """A draft straight from a model run (the headless pipeline): every finding is a proposal."""
    locate = _locator(volume)
    proposals = tuple(
        ReportFinding(f.id, f.id, "ai", locate(f.center_mm), tuple(f.center_mm), f.diameter_mm, f.volume_mm3, f.type,
                      f.probability, f"{f.model_name} {f.model_version}", None, None, None, None)
        for f in analysis.findings)
    run = _with_model_card(ModelRun(
        analysis.model_name, analysis.model_version, analysis.model_sha256, analysis.device, analysis.threshold,
        dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), generated_by, volume.metadata.series_uid,
        tuple(analysis.scope_warnings), analysis.notice, second_stage_sha256=analysis.second_stage_sha256))
    return ReportContent(institution=institution, metadata=volume.metadata, model_runs=(run,), findings=(),
                         proposals=proposals, rejected=(), suggestion=_suggest([]), audit_head=audit_head,
                         generated_by=generated_by)


def _suggest(findings: list[ReportFinding]) -> LungRadsSuggestion:
    return suggest_category(NoduleInput(f.number, f.type, f.diameter_mm) for f in findings)


def _model_runs(connection: sqlite3.Connection, study_uid: str) -> list[ModelRun]:
    runs = []
    for row in connection.execute(
            "SELECT id, model_name, model_version, model_sha256, device, threshold, created_at, created_by, "
            "series_uid, details FROM analyses WHERE study_uid = ? ORDER BY id", (study_uid,)):
        details = json.loads(row[9]) if row[9] else {}
        runs.append(_with_model_card(ModelRun(
            row[1], row[2], row[3], row[4] or "", float(row[5] or 0), row[6], row[7], row[8] or "",
            tuple(details.get("scope_warnings", ())), details.get("notice", ""), analysis_id=row[0],
            second_stage_sha256=details.get("second_stage_sha256", ""))))
    return runs


def _with_model_card(run: ModelRun) -> ModelRun:
    """Intended use and the stated performance at the run's threshold, from the same bundle (by sha256)."""
    bundle = next((e.bundle for e in list_models() if e.bundle and e.bundle.weights_sha256 == run.sha256), None)
    if bundle is None:
        return run
    point = min(bundle.operating_points, key=lambda p: abs(p.threshold - run.threshold), default=None)
    matches = point is not None and abs(point.threshold - run.threshold) < 1e-6
    return replace(run, intended_use=bundle.intended_use, notice=run.notice or bundle.notice,
                   stated_sensitivity=point.sensitivity if matches else None,
                   stated_fp_per_scan=point.false_positives_per_scan if matches else None,
                   stated_measured_on=point.measured_on if matches else "")


def _locator(volume: Volume):
    """Side and zone (upper/middle/lower third of the lungs' height) of a point, from the lung box."""
    box = lung_crop(volume).box
    low = volume.voxel_to_patient(np.array([box[2].start, box[1].start, box[0].start]))
    high = volume.voxel_to_patient(np.array([box[2].stop - 1, box[1].stop - 1, box[0].stop - 1]))
    mid_x = (low[0] + high[0]) / 2
    z_low, z_high = sorted((low[2], high[2]))

    def locate(center_mm) -> str:
        x, _, z = center_mm
        side = "left" if x > mid_x else "right"  # LPS: +x is the patient's left
        if z_high - z_low < 1e-3:
            return f"{side} lung"
        share = (z - z_low) / (z_high - z_low)
        zone = "upper" if share > 2 / 3 else "middle" if share > 1 / 3 else "lower"
        return f"{side} {zone} zone"

    return locate
