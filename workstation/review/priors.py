"""The prior beside the current scan (issue #24 item 3), without a screen: which earlier study is
offered, the job that loads and aligns the chosen one, and the mapping of a point in patient
millimetres from one scan to the same anatomy in the other.

What is matched and reported is the core's one `Comparison` (review/comparison_record.py): the job
builds it as `workstation compare` does (the prior's findings by `prior_nodules_of`), or, when one
is already recorded for this study and this prior, loads the prior and reuses the recorded one (its
registration, its snapshot of the prior's findings, the reader's corrections): no second alignment.
The viewer's match line is `Comparison.pairs` of the findings the report would print, so what the
reader sees for a finding is the report's row for it. `recording_offer` says whether the viewer
records the comparison shown for the read (see ui/controllers/prior_compare.py).

The viewer links its current and prior views through `PriorComparison.to_prior` / `to_current`
(the registration's matrix and its inverse), so the crosshair in one lands where the registration
says the same anatomy is in the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from workstation.dicom.load import load_largest_series_job
from workstation.errors import WorkstationError
from workstation.imaging.registration import Registration
from workstation.imaging.statistics import hu_histogram
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job, Progress
from workstation.review.comparison import NodulePair, priors_of
from workstation.review.comparison_record import Comparison, PriorNodule, compare_job, recorded_comparison
from workstation.review.same_patient import PatientIdentity, check_same_patient

MIN_SLICES = 16  # a study whose largest series is thinner (a scout, a few slices) is not offered for comparison
STAGES = 100  # the job's progress: loading the prior 0-40, aligning it 40-100 (a reused alignment: loading only)


@dataclass(frozen=True)
class PriorOffer:
    """The same patient's earlier studies (newest first), the warnings about them, and the one offered."""

    priors: list[dict]
    warnings: list[str]
    offered: dict | None  # the most recent comparable prior, or None

    @property
    def comparable(self) -> list[dict]:
        return [p for p in self.priors if p.get("comparable")]


def offer_priors(library, study: dict) -> PriorOffer:
    """`priors_of` with each prior marked comparable (a series of at least MIN_SLICES slices) and
    the most recent comparable one offered; the reader may pick another, or none."""
    earlier, warnings = priors_of(library, study)
    marked = []
    for prior in earlier:
        slices = max((s["slices"] for s in library.series(prior["key"])), default=0)
        marked.append({**prior, "slices": slices, "comparable": slices >= MIN_SLICES})
    offered = next((p for p in marked if p["comparable"]), None)
    return PriorOffer(marked, warnings, offered)


def study_days(prior_date: str, current_date: str) -> int | None:
    """Days between two DICOM dates (YYYYMMDD); None when either is missing or unreadable."""
    try:
        first, second = (dt.datetime.strptime(d or "", "%Y%m%d").date() for d in (prior_date, current_date))
    except ValueError:
        return None
    return (second - first).days


@dataclass(frozen=True)
class PriorComparison:
    """A prior loaded and aligned to the current scan: all a linked prior view needs, around the
    core's Comparison (recorded or not) that is matched and reported."""

    prior_study: dict  # the library row (key, study_uid, study_date, study_description, ...)
    prior_volume: Volume
    comparison: Comparison
    histogram: tuple | None = None  # the prior's HU histogram, computed on the worker
    reused: bool = False  # the recorded comparison's alignment, not a new one

    @property
    def registration(self) -> Registration:
        return self.comparison.registration

    @property
    def findings(self) -> tuple[PriorNodule, ...]:
        """The prior's findings matched against (drawn on the prior): the comparison's snapshot."""
        return self.comparison.prior_nodules

    @property
    def findings_source(self) -> str:
        return self.comparison.prior_source_text

    @property
    def days(self) -> int:
        return self.comparison.days

    @property
    def recorded(self) -> bool:
        return self.comparison.id is not None

    def recorded_as(self, comparison: Comparison) -> "PriorComparison":
        """The same prior with `comparison` (e.g. as record_comparison returned it)."""
        return replace(self, comparison=comparison)

    def to_prior(self, point_mm) -> np.ndarray:
        """A point of the current scan (LPS mm) -> the same anatomy in the prior (LPS mm)."""
        return self.registration.to_prior(point_mm)

    def to_current(self, point_mm) -> np.ndarray:
        """A point of the prior (LPS mm) -> the same anatomy in the current scan."""
        return self.registration.to_current(point_mm)

    def match(self, current_findings: Sequence) -> list[NodulePair]:
        """The current findings matched to the prior's (new, stable, growing, ...): the comparison's pairs."""
        return self.comparison.pairs(list(current_findings))


def report_findings_with(states: Sequence, selected=None) -> list:
    """What the report matches (the accepted findings), plus `selected` when it is still undecided:
    the pairs the report would print once the reader accepts it."""
    chosen = [s for s in states if getattr(s, "decision", "accepted") == "accepted"]
    if selected is not None and selected not in chosen and getattr(selected, "decision", "") == "undecided":
        chosen.append(selected)
    return chosen


def pair_of(pairs: list[NodulePair], finding_number: int) -> NodulePair | None:
    """The pair a current finding (by its number) belongs to."""
    return next((p for p in pairs if p.current is not None and p.current.number == finding_number), None)


def describe_pair(pair: NodulePair) -> str:
    """One line for the reader: status, sizes then -> now, volume ratio and doubling time, named as the
    report's table names them (P3: the prior's finding 3)."""
    if pair.status == "new":
        why = "set by the reader: not any prior nodule" if pair.by_reader else "no prior nodule within reach"
        return f"#{pair.current.number}: new ({why})"
    if pair.status == "resolved":
        return f"P{pair.prior.number}: resolved"
    text = (f"#{pair.current.number}: {pair.status}{' (set by the reader)' if pair.by_reader else ''} "
            f"(prior P{pair.prior.number}, {pair.prior.diameter_mm:.1f} -> {pair.current.diameter_mm:.1f} mm")
    if pair.volume_change is not None:
        text += f", volume x{pair.volume_change:.2f}"
    if pair.doubling_days is not None:
        slow = pair.doubling_range_days[1] if pair.doubling_range_days else None
        text += f", doubling {pair.doubling_days:.0f} days" + (
            " (not told from stable)" if slow == float("inf") else "")
    return text + ")"


def recording_offer(session, shown: PriorComparison) -> str:
    """What the viewer does about the read's comparison once a prior is aligned:
    'recorded'  it is the comparison recorded for the read (in force for the report);
    'record'    record it now, unasked: the reader (one who may sign) chose this prior for a read not
                yet signed and none is recorded, so the report compares with what they looked at;
    'offer'     record only when asked ("Use this prior in the report"): another prior is already
                recorded (replacing it is the reader's call), or the reader is a trainee;
    'addendum'  the read is signed: only when asked, as an addendum with a reason;
    'none'      nobody is reading (no session), or this role may not record."""
    if session is None or not session.user.can("review"):
        return "none"
    in_force = recorded_comparison(session.store, session.study_uid)
    if shown.recorded and in_force is not None and in_force.id == shown.comparison.id:
        return "recorded"
    if session.signed:
        return "addendum" if session.user.can("sign") else "none"
    if in_force is None and session.user.can("sign"):
        return "record"
    return "offer"


def record_prior_viewed(store, who: str, current_study_uid: str, comparison: PriorComparison) -> None:
    """Audit that `who` looked at the prior's images beside the current study (as `compare` does
    when it records nothing; a recorded comparison has its own audit row)."""
    from workstation.review import audit

    with store.transaction() as connection:
        audit.append(connection, who, "study_viewed", study_uid=current_study_uid,
                     details={"compared_with": comparison.prior_study["study_uid"],
                              "lung_overlap": comparison.registration.lung_overlap})


def _series_folder(library, store, study: dict, series_uid: str = "") -> Path:
    """The prior's series `series_uid` (a recorded comparison's), else the one the AI ran on (its
    findings belong to it), else its largest."""
    series = library.series(study["key"])
    if not series:
        raise WorkstationError("The prior has no series left in the library; import it again")
    if not series_uid:
        analysed = store.connection.execute("SELECT series_uid FROM analyses WHERE study_uid = ? ORDER BY id DESC",
                                            (study["study_uid"],)).fetchone()
        series_uid = analysed[0] if analysed else ""
    chosen = next((s for s in series if series_uid and s["series_uid"] == series_uid), None)
    return library.series_folder(chosen or max(series, key=lambda row: row["slices"]))


def _staged(job: Job, start: int, span: int, cancel: CancelToken) -> Generator[Progress, None, object]:
    """A sub-job's progress rescaled into [start, start + span] of the whole job, never going back
    (a load scans, then decodes, each counting from zero); returns the sub-job's result."""
    done = start
    while True:
        try:
            step = next(job)
        except StopIteration as stop:
            return stop.value
        cancel.check()
        done = max(done, start + round(span * step.fraction))
        yield Progress(done, STAGES, step.message)


def compare_with_prior_job(home: Path, current: Volume, prior_study: dict,
                           cancel: CancelToken | None = None) -> Job[PriorComparison]:
    """Load the prior study from the library and align it to `current` (`compare_job`: rigid then
    affine, its quality measured, the prior's findings by `prior_nodules_of`); or, when a comparison
    with this prior is recorded for the study, load the prior it registered and reuse that
    comparison. Refuses another patient's study (review/same_patient.py)."""
    from workstation.library import StudyLibrary
    from workstation.review.store import ReviewStore

    cancel = cancel or CancelToken()
    meta = current.metadata
    patient = check_same_patient(PatientIdentity.from_metadata(meta), PatientIdentity.from_study(prior_study))
    if not patient.same:
        raise WorkstationError(patient.refusal)
    if prior_study.get("study_uid") == meta.study_uid:
        raise WorkstationError("That is the open study itself; choose an earlier one")
    yield Progress(0, STAGES, "Loading the prior")
    library = StudyLibrary(home)
    store = ReviewStore.in_home(home)  # its own connection: this runs on a worker thread
    try:
        recorded = recorded_comparison(store, meta.study_uid)
        if recorded is not None and recorded.prior.study_uid != prior_study["study_uid"]:
            recorded = None  # another prior: nothing to reuse
        folder = _series_folder(library, store, prior_study, recorded.prior.series_uid if recorded else "")
        prior = yield from _staged(load_largest_series_job([folder], cancel), 0, 95 if recorded else 40, cancel)
        patient = check_same_patient(PatientIdentity.from_metadata(meta),
                                     PatientIdentity.from_metadata(prior.metadata))
        if not patient.same:
            raise WorkstationError(f"The prior's images say otherwise than the library: {patient.refusal}")
        if recorded is not None:
            comparison = recorded
        else:
            comparison = yield from _staged(compare_job(store, current, prior, (), cancel), 40, 55, cancel)
    finally:
        store.close()
    yield Progress(97, STAGES, "Summarising the prior")
    histogram = hu_histogram(prior.voxels)
    how = "the recorded alignment reused" if recorded is not None else "aligned"
    yield Progress(STAGES, STAGES, f"Prior {how}: {comparison.registration.statement}")
    return PriorComparison(prior_study, prior, comparison, histogram, reused=recorded is not None)
