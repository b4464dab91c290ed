"""The prior beside the current scan (issue #24 item 3), without a screen: which earlier study is
offered, the job that loads and aligns the chosen one, the prior's findings that can be shown on it,
and the mapping of a point in patient millimetres from one scan to the same anatomy in the other.

The viewer links its current and prior views through `PriorComparison.to_prior` / `to_current`
(the registration's matrix and its inverse), so the crosshair in one lands where the registration
says the same anatomy is in the other.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from workstation.dicom.load import load_largest_series_job
from workstation.errors import WorkstationError
from workstation.imaging.registration import Registration, register_job
from workstation.imaging.statistics import hu_histogram
from workstation.imaging.volume import Volume
from workstation.jobs import CancelToken, Job, Progress
from workstation.review.comparison import NodulePair, match_nodules, priors_of

MIN_SLICES = 16  # a study whose largest series is thinner (a scout, a few slices) is not offered for comparison
STAGES = 100  # the job's progress: loading the prior 0-40, aligning it 40-100


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


def prior_findings(store, study_uid: str) -> tuple[list, str]:
    """What the prior's read holds, for its overlay and for matching: its accepted findings, or its AI
    findings (rejected ones left out) when nobody accepted any; and a phrase saying which."""
    from workstation.review.session import ReviewSession

    states = [s for s in ReviewSession.findings_of(store, study_uid) if s.decision != "rejected"]
    accepted = [s for s in states if s.decision == "accepted"]
    if accepted:
        return accepted, "accepted findings"
    if states:
        return states, "AI findings (the prior was not read)"
    return [], "no findings recorded"


@dataclass(frozen=True)
class PriorComparison:
    """A prior loaded and aligned to the current scan: all a linked prior view needs."""

    prior_study: dict  # the library row (key, study_uid, study_date, study_description, ...)
    prior_volume: Volume
    registration: Registration
    findings: list = field(default_factory=list)  # the prior's FindingStates (see prior_findings)
    findings_source: str = ""
    days: int | None = None
    histogram: tuple | None = None  # the prior's HU histogram, computed on the worker

    def to_prior(self, point_mm) -> np.ndarray:
        """A point of the current scan (LPS mm) -> the same anatomy in the prior (LPS mm)."""
        return self.registration.to_prior(point_mm)

    def to_current(self, point_mm) -> np.ndarray:
        """A point of the prior (LPS mm) -> the same anatomy in the current scan."""
        return self.registration.to_current(point_mm)

    def match(self, current_findings: list, current_voxel_mm: float = 1.0) -> list[NodulePair]:
        """The current read's findings matched to the prior's (new, stable, growing, ...)."""
        return match_nodules(list(current_findings), list(self.findings), self.registration.prior_to_current,
                             float(self.days or 0), current_voxel_mm=current_voxel_mm,
                             prior_voxel_mm=max(self.prior_volume.spacing_mm))


def pair_of(pairs: list[NodulePair], finding_number: int) -> NodulePair | None:
    """The pair a current finding (by its number) belongs to."""
    return next((p for p in pairs if p.current is not None and p.current.number == finding_number), None)


def describe_pair(pair: NodulePair) -> str:
    """One line for the reader: status, sizes then -> now, volume ratio and doubling time."""
    if pair.status == "new":
        return f"#{pair.current.number}: new (no prior nodule within reach)"
    if pair.status == "resolved":
        return f"prior #{pair.prior.number}: resolved"
    text = (f"#{pair.current.number}: {pair.status} (prior #{pair.prior.number}, "
            f"{pair.prior.diameter_mm:.1f} -> {pair.current.diameter_mm:.1f} mm")
    if pair.volume_change is not None:
        text += f", volume x{pair.volume_change:.2f}"
    if pair.doubling_days is not None:
        slow = pair.doubling_range_days[1] if pair.doubling_range_days else None
        text += f", doubling {pair.doubling_days:.0f} days" + (
            " (not told from stable)" if slow == float("inf") else "")
    return text + ")"


def record_prior_viewed(store, who: str, current_study_uid: str, comparison: PriorComparison) -> None:
    """Audit that `who` looked at the prior's images beside the current study (as `compare` does)."""
    from workstation.review import audit

    with store.transaction() as connection:
        audit.append(connection, who, "study_viewed", study_uid=current_study_uid,
                     details={"compared_with": comparison.prior_study["study_uid"],
                              "lung_overlap": comparison.registration.lung_overlap})


def _series_folder(library, store, study: dict) -> Path:
    """The prior's series the AI ran on (its findings belong to it), else its largest."""
    series = library.series(study["key"])
    if not series:
        raise WorkstationError("The prior has no series left in the library; import it again")
    analysed = store.connection.execute("SELECT series_uid FROM analyses WHERE study_uid = ? ORDER BY id DESC",
                                        (study["study_uid"],)).fetchone()
    chosen = next((s for s in series if analysed and s["series_uid"] == analysed[0]), None)
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
    """Load the prior study from the library and align it to `current` (rigid then affine, its
    quality measured); with the prior's findings. Refuses another patient's study."""
    from workstation.library import StudyLibrary
    from workstation.review.store import ReviewStore

    cancel = cancel or CancelToken()
    meta = current.metadata
    if not meta.patient_id or prior_study.get("patient_id") != meta.patient_id:
        raise WorkstationError("The prior has another Patient ID than this study: different patients are not "
                               "compared")
    if prior_study.get("study_uid") == meta.study_uid:
        raise WorkstationError("That is the open study itself; choose an earlier one")
    yield Progress(0, STAGES, "Loading the prior")
    library = StudyLibrary(home)
    store = ReviewStore.in_home(home)  # its own connection: this runs on a worker thread
    try:
        folder = _series_folder(library, store, prior_study)
        findings, source = prior_findings(store, prior_study["study_uid"])
    finally:
        store.close()
    prior = yield from _staged(load_largest_series_job([folder], cancel), 0, 40, cancel)
    if prior.metadata.patient_id != meta.patient_id:
        raise WorkstationError("The prior's images carry another Patient ID than this study: not compared")
    registration = yield from _staged(register_job(current, prior, cancel), 40, 55, cancel)
    yield Progress(97, STAGES, "Summarising the prior")
    histogram = hu_histogram(prior.voxels)
    yield Progress(STAGES, STAGES, f"Prior aligned: {registration.statement}")
    return PriorComparison(prior_study, prior, registration, findings, source,
                           study_days(prior_study.get("study_date", ""), meta.study_date), histogram)
