"""Priors and growth (issue #24): the patient's earlier studies in the library, and each current
nodule matched to the prior's (through the registration) as new, stable, growing, shrinking or
resolved, with the change in size and volume and the volume doubling time with its uncertainty.

Growth follows Lung-RADS v2022: a mean-diameter increase of more than 1.5 mm is growth, a decrease
of more than 1.5 mm shrinking, anything between stable. The doubling time comes from the volumes
(a sphere of the diameter when the model gave no volume); its range spans each volume's
measurement error, taken from a diameter error of half a voxel (at least 0.5 mm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Protocol, Sequence

import numpy as np

from workstation.errors import WorkstationError

ToCurrent = Callable[[Sequence[float]], np.ndarray]  # a prior point (patient mm) -> the current scan's

GROWTH_MM = 1.5
MATCH_MM = 10.0  # a prior nodule this far (after alignment) or farther is not the same nodule


class Measured(Protocol):
    number: int
    center_mm: tuple[float, float, float]
    diameter_mm: float
    volume_mm3: float | None
    type: str


@dataclass(frozen=True)
class NodulePair:
    status: str  # "new", "stable", "growing", "shrinking", "resolved"
    current: Measured | None
    prior: Measured | None
    distance_mm: float | None = None  # between the current centre and the aligned prior centre
    diameter_change_mm: float | None = None
    volume_change: float | None = None  # ratio current / prior
    doubling_days: float | None = None
    doubling_range_days: tuple[float, float] | None = None  # (fastest, slowest); inf: not told from stable
    by_reader: bool = False  # the pairing or status was set by the reader, not by the matching

    def as_dict(self) -> dict:
        def side(finding: Measured | None) -> dict | None:
            if finding is None:
                return None
            return {"number": finding.number, "center_mm": [round(v, 2) for v in finding.center_mm],
                    "diameter_mm": finding.diameter_mm, "volume_mm3": round(volume_of(finding), 1),
                    "type": finding.type}

        return {"status": self.status, "current": side(self.current), "prior": side(self.prior),
                "distance_mm": _rounded(self.distance_mm), "diameter_change_mm": _rounded(self.diameter_change_mm),
                "volume_change": _rounded(self.volume_change, 3), "doubling_days": _rounded(self.doubling_days, 0),
                "doubling_range_days": [None if math.isinf(v) else round(v) for v in self.doubling_range_days]
                if self.doubling_range_days else None, "set_by_reader": self.by_reader}


def _rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def volume_of(finding: Measured) -> float:
    if finding.volume_mm3:
        return float(finding.volume_mm3)
    return math.pi / 6 * finding.diameter_mm ** 3


def mean_diameter(finding: Measured) -> float:
    """The diameter of a sphere of the finding's volume (its long axis when there is no volume)."""
    return (6 * volume_of(finding) / math.pi) ** (1 / 3)


def doubling_time(prior_mm3: float, current_mm3: float, days: float, prior_error: float = 0.0,
                  current_error: float = 0.0) -> tuple[float | None, tuple[float, float] | None]:
    """(doubling days, (fastest, slowest)) from two volumes `days` apart, with relative errors.
    None when the nodule did not grow; the slowest bound is inf when growth is within the error."""
    if days <= 0 or prior_mm3 <= 0 or current_mm3 <= prior_mm3:
        return None, None

    def vdt(v1: float, v2: float) -> float:
        return days * math.log(2) / math.log(v2 / v1) if v2 > v1 else math.inf

    central = vdt(prior_mm3, current_mm3)
    fastest = vdt(prior_mm3 * (1 - prior_error), current_mm3 * (1 + current_error))
    slowest = vdt(prior_mm3 * (1 + prior_error), current_mm3 * (1 - current_error))
    return central, (fastest, slowest)


def relative_volume_error(diameter_mm: float, voxel_mm: float) -> float:
    """The volume's relative error from a diameter error of half a voxel (at least 0.5 mm)."""
    return min(0.9, 3 * max(0.5, voxel_mm / 2) / max(diameter_mm, 1e-3))


def match_nodules(current: list[Measured], prior: list[Measured], to_current: ToCurrent, days: float, *,
                  current_voxel_mm: float = 1.0, prior_voxel_mm: float = 1.0) -> list[NodulePair]:
    """Pairs by the smallest total distance (Hungarian) after mapping the prior's centres through
    the registration (`to_current`: a prior point -> the current one); unpaired current nodules are
    new, unpaired prior ones resolved."""
    from scipy.optimize import linear_sum_assignment

    aligned = [to_current(p.center_mm) for p in prior]
    pairs: list[NodulePair] = []
    used_current, used_prior = set(), set()
    if current and prior:
        distance = np.array([[float(np.linalg.norm(np.array(c.center_mm) - a)) for a in aligned] for c in current])
        for ci, pi in zip(*linear_sum_assignment(distance)):
            limit = max(MATCH_MM, 0.75 * max(current[ci].diameter_mm, prior[pi].diameter_mm))
            if distance[ci, pi] > limit:
                continue
            used_current.add(ci)
            used_prior.add(pi)
            pairs.append(_pair(current[ci], prior[pi], float(distance[ci, pi]), days, current_voxel_mm,
                               prior_voxel_mm))
    pairs += [NodulePair("new", c, None) for i, c in enumerate(current) if i not in used_current]
    pairs += [NodulePair("resolved", None, p) for i, p in enumerate(prior) if i not in used_prior]
    return _ordered(pairs)


def _pair(current: Measured, prior: Measured, distance: float, days: float, current_voxel_mm: float,
          prior_voxel_mm: float) -> NodulePair:
    change = current.diameter_mm - prior.diameter_mm
    status = "growing" if change > GROWTH_MM else "shrinking" if change < -GROWTH_MM else "stable"
    v1, v2 = volume_of(prior), volume_of(current)
    central, spread = doubling_time(v1, v2, days, relative_volume_error(prior.diameter_mm, prior_voxel_mm),
                                    relative_volume_error(current.diameter_mm, current_voxel_mm))
    return NodulePair(status, current, prior, distance, change, v2 / v1, central, spread)


def priors_of(library, study: dict) -> tuple[list[dict], list[str]]:
    """The same patient's earlier studies in the library, newest first, and warnings when their
    names, birth dates or issuers of the Patient ID disagree with the current study's (same
    Patient ID, maybe not the same person). The same ID from another issuer is another patient's:
    not offered, and said (see review/same_patient.py)."""
    from workstation.review.same_patient import PatientIdentity, check_same_patient

    if not study.get("patient_id"):
        return [], ["This study has no Patient ID: its priors cannot be found safely"]
    current = PatientIdentity.from_study(study)
    earlier, warnings = [], []
    for other in library.studies():
        if (other["patient_id"] != study["patient_id"] or other["study_uid"] == study["study_uid"]
                or (other["study_date"] or "") >= (study["study_date"] or "")):
            continue
        which = f"The prior of {other['study_date'] or 'unknown date'}"
        check = check_same_patient(current, PatientIdentity.from_study(other), which)
        if check.same:
            earlier.append(other)
            warnings += check.warnings
        else:
            warnings.append(f"{which} has the same Patient ID from another issuer "
                            f"({other.get('issuer_of_patient_id')}): another patient's, not offered")
    return sorted(earlier, key=lambda s: s["study_date"] or "", reverse=True), warnings


EDIT_KINDS = ("pair", "unpair", "status")
EDITABLE_STATUSES = ("stable", "growing", "shrinking")


@dataclass(frozen=True)
class ReaderEdit:
    """A reader's correction of the matching, by finding numbers: pair current N with prior M,
    unpair current N (new, and its prior partner resolved), or set a pair's status."""

    kind: str
    current: int
    prior: int | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in EDIT_KINDS:
            raise WorkstationError(f"A matching edit is one of {', '.join(EDIT_KINDS)}, not {self.kind!r}")
        if self.kind == "pair" and self.prior is None:
            raise WorkstationError("Pairing needs the prior's finding number: CURRENT=PRIOR, e.g. 3=2")
        if self.kind == "status" and self.status not in EDITABLE_STATUSES:
            raise WorkstationError(f"A pair's status is one of {', '.join(EDITABLE_STATUSES)}, not {self.status!r}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "current": self.current, "prior": self.prior, "status": self.status}

    @classmethod
    def from_dict(cls, values: dict) -> "ReaderEdit":
        return cls(values["kind"], int(values["current"]), values.get("prior"), values.get("status"))

    def describe(self) -> str:
        if self.kind == "pair":
            return f"finding {self.current} paired with prior finding {self.prior}"
        if self.kind == "unpair":
            return f"finding {self.current} not the same nodule as any prior finding"
        return f"finding {self.current} called {self.status}"


def merged_edits(earlier: tuple[ReaderEdit, ...], later: tuple[ReaderEdit, ...]) -> tuple[ReaderEdit, ...]:
    """`later` replaces an earlier edit of the same current finding (a pairing and a status are
    kept apart, so calling a re-paired nodule stable keeps the pairing)."""
    def slot(edit: ReaderEdit) -> tuple[int, str]:
        return edit.current, "status" if edit.kind == "status" else "pairing"

    kept = {slot(e): e for e in earlier}
    for edit in later:
        kept.pop(slot(edit), None)
        kept[slot(edit)] = edit
    return tuple(kept.values())


def apply_reader_edits(pairs: list[NodulePair], edits: tuple[ReaderEdit, ...], to_current: ToCurrent,
                       days: float, *, current_voxel_mm: float = 1.0, prior_voxel_mm: float = 1.0
                       ) -> tuple[list[NodulePair], list[str]]:
    """The pairs after the reader's edits, and a sentence for each edit that no longer applies
    (its finding was rejected or is gone). Measures of a re-paired nodule are computed afresh."""
    current = {p.current.number: p.current for p in pairs if p.current is not None}
    prior = {p.prior.number: p.prior for p in pairs if p.prior is not None}
    partner = {p.current.number: p.prior.number for p in pairs if p.current is not None and p.prior is not None}
    status: dict[int, str] = {}
    reader_set: set[int] = set()
    skipped = []
    for edit in edits:
        if edit.current not in current or (edit.kind == "pair" and edit.prior not in prior):
            skipped.append(f"{edit.describe()}: not applied, that finding is not in this comparison")
            continue
        if edit.kind == "pair":
            for number, prior_number in list(partner.items()):
                if prior_number == edit.prior:
                    del partner[number]
            partner[edit.current] = int(edit.prior)  # type: ignore[arg-type]
            status.pop(edit.current, None)
        elif edit.kind == "unpair":
            partner.pop(edit.current, None)
            status.pop(edit.current, None)
        elif edit.current not in partner:
            skipped.append(f"{edit.describe()}: not applied, finding {edit.current} has no prior partner")
            continue
        else:
            status[edit.current] = str(edit.status)
        reader_set.add(edit.current)
    result: list[NodulePair] = []
    for number, finding in current.items():
        if number not in partner:
            result.append(NodulePair("new", finding, None, by_reader=number in reader_set))
            continue
        then = prior[partner[number]]
        aligned = to_current(then.center_mm)
        pair = _pair(finding, then, float(np.linalg.norm(np.array(finding.center_mm) - aligned)), days,
                     current_voxel_mm, prior_voxel_mm)
        result.append(replace(pair, status=status.get(number, pair.status), by_reader=number in reader_set))
    paired = set(partner.values())
    result += [NodulePair("resolved", None, p) for n, p in prior.items() if n not in paired]
    return _ordered(result), skipped


def _ordered(pairs: list[NodulePair]) -> list[NodulePair]:
    order = {"growing": 0, "new": 1, "stable": 2, "shrinking": 3, "resolved": 4}
    return sorted(pairs, key=lambda p: (order[p.status], (p.current or p.prior).number))
