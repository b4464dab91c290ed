"""A comparison with a prior study, recorded for the current study's read (issue #24 items 4, 5).

What the report needs later is kept in one row of `comparisons`, bound into the audit chain like
the other clinical rows: the prior (study, series, date, description, accession), the registration
(its matrix and its quality), a snapshot of the prior's findings that were matched against (and
whether they are the prior's accepted findings or, when it was never read, its AI findings), the
pairs as the reader saw them, and the reader's corrections of the matching.

The report matches again from this row and the current read's accepted findings (the ones as
signed, for a signed read), so its table always agrees with its findings, and a comparison does not
depend on the prior's read changing later. A comparison recorded after signing is an addendum:
only a role that may sign records it, saying why, and the signed report keeps the comparison it
was signed with (`recorded_comparison(..., as_signed=True)`).

`compare_job` builds a Comparison from two volumes (`Comparison.build` from the registration and
`prior_nodules_of`), as `workstation compare` does and the viewer's compare_with_prior_job
(review/priors.py) does; `with_edits` applies the reader's corrections, and `record_comparison(
session, comparison)` keeps it for the report (whose job then takes `prior_volume` for the key
images of both time points) and returns it as kept, so what the viewer goes on showing is what the
report prints.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from workstation.errors import WorkstationError
from workstation.imaging.registration import Registration, register_job
from workstation.imaging.volume import SeriesMetadata, Volume
from workstation.jobs import CancelToken, Job
from workstation.review import audit
from workstation.review.comparison import (Measured, NodulePair, ReaderEdit, apply_reader_edits, match_nodules,
                                           merged_edits)
from workstation.review.same_patient import PatientIdentity, check_same_patient

PRIOR_SOURCES = {
    "signed": "the prior's accepted findings (its signed read)",
    "accepted": "the prior's accepted findings (its read is not signed)",
    "ai": "the prior's AI findings: the prior was never read",
    "none": "no findings recorded on the prior",
}


class ComparisonError(WorkstationError):
    """Two studies that cannot be compared (other patient, no date order) or a record refused."""


@dataclass(frozen=True)
class PriorNodule:
    """A prior finding as it was matched against (a snapshot: the prior's read may change later)."""

    number: int
    center_mm: tuple[float, float, float]
    diameter_mm: float
    volume_mm3: float | None
    type: str

    def to_dict(self) -> dict:
        return {"number": self.number, "center_mm": list(self.center_mm), "diameter_mm": self.diameter_mm,
                "volume_mm3": self.volume_mm3, "type": self.type}

    @classmethod
    def from_finding(cls, finding: Measured) -> "PriorNodule":
        return cls(int(finding.number), tuple(float(v) for v in finding.center_mm),  # type: ignore[arg-type]
                   float(finding.diameter_mm), None if finding.volume_mm3 is None else float(finding.volume_mm3),
                   finding.type)


@dataclass(frozen=True)
class PriorStudy:
    study_uid: str
    series_uid: str
    date: str  # DICOM DA
    description: str
    accession: str

    @classmethod
    def from_metadata(cls, metadata: SeriesMetadata) -> "PriorStudy":
        return cls(metadata.study_uid, metadata.series_uid, metadata.study_date, metadata.study_description,
                   metadata.accession_number)


@dataclass(frozen=True)
class Comparison:
    """The current study compared with one prior: everything needed to match and report again."""

    study_uid: str
    prior: PriorStudy
    days: int
    registration: Registration
    prior_nodules: tuple[PriorNodule, ...]
    prior_source: str  # a key of PRIOR_SOURCES
    current_voxel_mm: float
    prior_voxel_mm: float
    edits: tuple[ReaderEdit, ...] = ()
    warnings: tuple[str, ...] = ()
    id: int | None = None  # the row, once recorded
    recorded_by: str = ""
    recorded_at: str = ""
    after_signing: bool = False
    addendum_reason: str = ""

    @property
    def prior_source_text(self) -> str:
        return PRIOR_SOURCES.get(self.prior_source, self.prior_source)

    def pairs(self, current: Sequence[Measured]) -> list[NodulePair]:
        """`current` matched to the prior's nodules through the registration, the reader's edits applied."""
        return self.matched(current)[0]

    def matched(self, current: Sequence[Measured]) -> tuple[list[NodulePair], list[str]]:
        """(pairs, a sentence for each reader edit that no longer fits `current`, e.g. its finding rejected)."""
        transform = self.registration.to_current
        sizes = {"current_voxel_mm": self.current_voxel_mm, "prior_voxel_mm": self.prior_voxel_mm}
        automatic = match_nodules(list(current), list(self.prior_nodules), transform, self.days, **sizes)
        return apply_reader_edits(automatic, self.edits, transform, self.days, **sizes)

    def with_edits(self, edits: Sequence[ReaderEdit]) -> "Comparison":
        """The same comparison with `edits` added (a later edit of a finding replaces its earlier one)."""
        return replace(self, edits=merged_edits(self.edits, tuple(edits)), id=None)

    @classmethod
    def build(cls, current: Volume, prior: Volume, registration: Registration, prior_findings: Sequence[Measured],
              prior_source: str, edits: Sequence[ReaderEdit] = ()) -> "Comparison":
        """From the pieces the viewer already has (both volumes, the registration, the prior's findings)."""
        days, warnings = check_comparable(current.metadata, prior.metadata)
        return cls(current.metadata.study_uid, PriorStudy.from_metadata(prior.metadata), days, registration,
                   tuple(PriorNodule.from_finding(f) for f in prior_findings), prior_source,
                   float(max(current.spacing_mm)), float(max(prior.spacing_mm)), tuple(edits), tuple(warnings))


def check_comparable(current: SeriesMetadata, prior: SeriesMetadata) -> tuple[int, list[str]]:
    """(days between the scans, warnings); refuses another patient (another Patient ID, or the same
    one from another issuer: review/same_patient.py) and a prior that is not earlier."""
    patient = check_same_patient(PatientIdentity.from_metadata(current), PatientIdentity.from_metadata(prior))
    if not patient.same:
        raise ComparisonError(patient.refusal)
    if current.study_uid == prior.study_uid:
        raise ComparisonError("That is the current study itself; choose an earlier one")
    try:
        first, second = (dt.datetime.strptime(d or "", "%Y%m%d").date() for d in (prior.study_date,
                                                                                    current.study_date))
    except ValueError:
        raise ComparisonError("Both studies need a study date to be compared (one has none or an unreadable one)") \
            from None
    if second <= first:
        raise ComparisonError("The prior must have an earlier study date than the current study")
    return (second - first).days, list(patient.warnings)


def prior_nodules_of(store, study_uid: str) -> tuple[list, str]:
    """The prior's findings to match against, and which they are (a PRIOR_SOURCES key): the
    accepted findings of its read (as signed, when signed), else, when nobody ever decided on it,
    its AI findings. A read that accepted nothing is matched against nothing, never its AI."""
    from workstation.review.session import ReviewSession, study_signed

    connection = store.connection
    signed = study_signed(connection, study_uid)
    states = ReviewSession.findings_of(store, study_uid, as_signed=signed)
    decided = connection.execute("SELECT 1 FROM decisions WHERE study_uid = ? LIMIT 1", (study_uid,)).fetchone()
    if signed or decided:
        return [s for s in states if s.reportable], "signed" if signed else "accepted"
    return states, ("ai" if states else "none")


def current_nodules(store, study_uid: str, *, accepted_only: bool = False, as_signed: bool = False) -> list:
    """The current read's findings to match: accepted and undecided while reading (what the reader
    sees), accepted only for a report."""
    from workstation.review.session import ReviewSession

    states = ReviewSession.findings_of(store, study_uid, as_signed=as_signed)
    return [s for s in states if s.reportable or (not accepted_only and s.decision == "undecided")]


def compare_job(store, current: Volume, prior: Volume, edits: Sequence[ReaderEdit] = (),
                cancel: CancelToken | None = None) -> Job[Comparison]:
    """Check the pair, align the prior to the current scan (progress, cancel) and take the prior's
    findings: a Comparison ready to show, match and record."""
    check_comparable(current.metadata, prior.metadata)  # refused before the registration's seconds
    registration = yield from register_job(current, prior, cancel)
    findings, source = prior_nodules_of(store, prior.metadata.study_uid)
    return Comparison.build(current, prior, registration, findings, source, edits)


def record_comparison(session, comparison: Comparison, *, reason: str = "") -> Comparison:
    """Record `comparison` for the session's study, with its audit row in the same transaction, and
    return it as recorded (read back). After signing it is an addendum: a role that may sign, and
    `reason` says why."""
    from workstation.review.session import study_signed

    session.user.require("review")
    if comparison.study_uid != session.study_uid:
        raise ComparisonError("This comparison belongs to another study than the one being read")
    store = session.store
    if study_signed(store.connection, session.study_uid):
        if session.user.can("sign") and not reason.strip():
            raise ComparisonError("This read is signed and stays as signed: a comparison recorded now is an "
                                  "addendum; say why")
        session.begin_addendum(reason)  # refuses a trainee
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    pairs = comparison.pairs(current_nodules(store, session.study_uid))
    matches = [pair.as_dict() for pair in pairs]
    registration = comparison.registration
    with store.transaction() as connection:
        addendum = session.may_change(connection)
        row = (session.study_uid, comparison.prior.study_uid,
               json.dumps({"series_uid": comparison.prior.series_uid, "date": comparison.prior.date,
                           "description": comparison.prior.description, "accession": comparison.prior.accession,
                           "days": comparison.days, "voxel_mm": comparison.prior_voxel_mm,
                           "warnings": list(comparison.warnings)}),
               json.dumps({"prior_to_current": registration.prior_to_current.round(6).tolist(),
                           "lung_overlap": registration.lung_overlap,
                           "lung_overlap_before": registration.lung_overlap_before,
                           "quality": registration.quality, "current_voxel_mm": comparison.current_voxel_mm,
                           "deformation": registration.deformation}),
               json.dumps([n.to_dict() for n in comparison.prior_nodules]), comparison.prior_source,
               json.dumps(matches), json.dumps([e.to_dict() for e in comparison.edits]), int(addendum),
               session.addendum_reason if addendum else None, session.user.username, now)
        row_id = connection.execute(
            "INSERT INTO comparisons (study_uid, prior_study_uid, prior, registration, prior_findings, prior_source, "
            "matches, edits, addendum, addendum_reason, created_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            row).lastrowid
        audit.append(connection, session.user.username, "comparison_recorded", study_uid=session.study_uid,
                     object_id=str(row_id),
                     new_value={"prior_study_uid": comparison.prior.study_uid, "quality": registration.quality,
                                "lung_overlap": registration.lung_overlap, "prior_findings": comparison.prior_source,
                                "statuses": [m["status"] for m in matches],
                                "edits": [e.describe() for e in comparison.edits]},
                     details={"addendum": True, "reason": session.addendum_reason} if addendum else None)
    # read back as kept (the matrix rounded as stored): the viewer then shows what the report prints
    return _from_row(store.connection.execute(f"SELECT {_COLUMNS} FROM comparisons WHERE id = ?",
                                              (row_id,)).fetchone())


def recorded_comparison(store, study_uid: str, *, as_signed: bool = False) -> Comparison | None:
    """The comparison in force for the study: the newest recorded one (`as_signed`: the newest
    recorded before signing, which the signed report keeps)."""
    sealed = " AND addendum = 0" if as_signed else ""
    row = store.connection.execute(f"SELECT {_COLUMNS} FROM comparisons WHERE study_uid = ?{sealed} "
                                   "ORDER BY id DESC LIMIT 1", (study_uid,)).fetchone()
    return _from_row(row) if row else None


def comparisons_after_signing(store, study_uid: str) -> list[Comparison]:
    """Comparisons recorded as addenda, oldest first (the report lists them after the signed content)."""
    return [_from_row(row) for row in store.connection.execute(
        f"SELECT {_COLUMNS} FROM comparisons WHERE study_uid = ? AND addendum = 1 ORDER BY id", (study_uid,))]


_COLUMNS = ("id, study_uid, prior_study_uid, prior, registration, prior_findings, prior_source, edits, addendum, "
            "addendum_reason, created_by, created_at")


def _from_row(row: tuple) -> Comparison:
    (row_id, study_uid, prior_uid, prior_text, registration_text, findings_text, source, edits_text, addendum,
     reason, by, at) = row
    prior, registration = json.loads(prior_text), json.loads(registration_text)
    return Comparison(
        study_uid, PriorStudy(prior_uid, prior.get("series_uid", ""), prior.get("date", ""),
                              prior.get("description", ""), prior.get("accession", "")),
        int(prior["days"]), Registration(np.array(registration["prior_to_current"], dtype=float),
                                         float(registration["lung_overlap"]),
                                         float(registration["lung_overlap_before"]),
                                         registration.get("deformation")),
        tuple(PriorNodule(int(n["number"]), tuple(n["center_mm"]), float(n["diameter_mm"]), n.get("volume_mm3"),
                          n.get("type") or "solid") for n in json.loads(findings_text)),
        source, float(registration.get("current_voxel_mm", 1.0)), float(prior.get("voxel_mm", 1.0)),
        tuple(ReaderEdit.from_dict(e) for e in json.loads(edits_text or "[]")), tuple(prior.get("warnings", ())),
        row_id, by, at, bool(addendum), reason or "")
