"""Whether two studies are the same patient's (issue #24 item 1), decided in one place for the
priors offered, the viewer's comparison and `workstation compare`.

A Patient ID is only unique within the system that issued it (Issuer of Patient ID, 0010,0021):
two hospitals may both have a patient "12345". So the same patient is the same Patient ID and,
when both studies name an issuer, the same issuer; different issuers are different patients,
never compared. When only one study names an issuer (an older archive, a scanner that leaves it
out) the IDs are taken as the same but the reader is warned, as when names or birth dates disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from workstation.imaging.volume import SeriesMetadata

DIFFERENT_IDS = "The two studies have different Patient IDs: not comparing different patients"


@dataclass(frozen=True)
class PatientIdentity:
    """What a study says of who the patient is."""

    patient_id: str
    issuer: str = ""  # Issuer of Patient ID (0010,0021); "" when the study does not say
    name: str = ""
    birth_date: str = ""

    def __post_init__(self) -> None:
        # values come padded from DICOM text and NULL from an index written before the issuer was kept
        for name in ("patient_id", "issuer", "name", "birth_date"):
            object.__setattr__(self, name, str(getattr(self, name) or "").strip())

    @classmethod
    def from_study(cls, row: Mapping) -> "PatientIdentity":
        """From a library row (StudyLibrary.studies())."""
        return cls(row.get("patient_id") or "", row.get("issuer_of_patient_id") or "",
                   row.get("patient_name") or "", row.get("patient_birth_date") or "")

    @classmethod
    def from_metadata(cls, metadata: SeriesMetadata) -> "PatientIdentity":
        return cls(metadata.patient_id, metadata.issuer_of_patient_id, metadata.patient_name,
                   metadata.patient_birth_date)


@dataclass(frozen=True)
class PatientCheck:
    """`same`: whether the two are taken as one patient; `refusal`: why not, in one sentence;
    `warnings`: what the reader should check although they are taken as one."""

    same: bool
    refusal: str = ""
    warnings: tuple[str, ...] = ()


def check_same_patient(current: PatientIdentity, prior: PatientIdentity, which: str = "The prior") -> PatientCheck:
    """Whether `prior` is the same patient as `current`; `which` names the prior in the warnings
    ("The prior of 2025-03-01")."""
    if not current.patient_id or current.patient_id != prior.patient_id:
        return PatientCheck(False, DIFFERENT_IDS)
    if current.issuer and prior.issuer and current.issuer != prior.issuer:
        return PatientCheck(False, f"The two studies have the same Patient ID from different issuers "
                                   f"({current.issuer} and {prior.issuer}): they are different patients, "
                                   "not compared")
    warnings = []
    if bool(current.issuer) != bool(prior.issuer):
        named = current.issuer or prior.issuer
        only = "this study" if current.issuer else "the prior"
        warnings.append(f"{which} has the same Patient ID, but only {only} names its issuer ({named}): check it "
                        "is the same patient")
    warnings += [f"{which} has the same Patient ID but another {label}: check it is the same patient"
                 for label, then, now in (("name", prior.name, current.name),
                                          ("birth date", prior.birth_date, current.birth_date)) if then != now]
    return PatientCheck(True, "", tuple(warnings))
