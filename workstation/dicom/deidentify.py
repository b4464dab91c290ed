"""De-identification: DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile, with
the options a teaching file needs.

The action table is one pinned edition of the standard (confidentiality/table_2026c.json);
attributes the table does not list are kept only when confidentiality/retained.json decides
so (K keep, C clean), everything else is removed and named in the summary. Private attributes
are removed. UIDs are replaced by 2.25 UIDs derived with a keyed hash, so the same input UID
always maps to the same output UID (references between files still resolve) while nobody
without the installation's secret can map back. Dates shift by a per-patient number of days
(same key), so intervals between a patient's studies are kept.

Options (PS3.15 names): Retain Patient Characteristics (age, sex, size, weight, ...), Retain
Longitudinal Temporal Information with Modified Dates, Clean Descriptors. Images that may show
burned-in text (BurnedInAnnotation YES, secondary capture) are refused unless overridden.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.datadict import keyword_for_tag
from pydicom.sequence import Sequence

from workstation.dicom import configured_pydicom
from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job, Progress

EDITION = "2026c"
TABLES = Path(__file__).with_name("confidentiality")
PATIENT_CHARACTERISTICS = {  # kept with the Retain Patient Characteristics option
    "00101010": "PatientAge", "00100040": "PatientSex", "00101020": "PatientSize", "00101030": "PatientWeight",
    "00102160": "EthnicGroup", "001021A0": "SmokingStatus", "001021C0": "PregnancyStatus",
    "00102203": "PatientSexNeutered"}
DESCRIPTORS = {  # kept after cleaning with the Clean Descriptors option
    "00081030": "StudyDescription", "0008103E": "SeriesDescription", "00181030": "ProtocolName",
    "00204000": "ImageComments", "00184000": "AcquisitionComments", "00082111": "DerivationDescription",
    "00400254": "PerformedProcedureStepDescription", "00321060": "RequestedProcedureDescription"}
NEVER_SHIFTED = {"00100030"}  # birth date: removed even with modified dates (age is kept instead)
STANDARD_UID_ROOT = "1.2.840.10008."
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
METHOD_CODES = (("113100", "Basic Application Confidentiality Profile"),
                ("113108", "Retain Patient Characteristics Option"),
                ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
                ("113105", "Clean Descriptors Option"))
TEXT_VRS = {"LO", "SH", "LT", "ST", "UT", "PN", "AE", "UC", "UR", "CS"}
DUMMY = {"PN": "ANONYMOUS", "LO": "ANONYMIZED", "SH": "ANON", "LT": "ANONYMIZED", "ST": "ANONYMIZED",
         "UT": "ANONYMIZED", "UC": "ANONYMIZED", "CS": "ANON", "AE": "ANON", "DA": "19000101",
         "DT": "19000101000000", "TM": "000000", "IS": "0", "DS": "0", "AS": "000D"}


class DeidentificationError(WorkstationError):
    """A file cannot be de-identified safely (burned-in text without override, unreadable)."""


@dataclass(frozen=True)
class DeidOptions:
    retain_patient_characteristics: bool = True
    modified_dates: bool = True  # shift dates per patient instead of removing them
    clean_descriptors: bool = True
    allow_burned_in: bool = False  # the user's override for burned-in text / secondary capture


@dataclass
class DeidSummary:
    files: int = 0
    series: set[str] = field(default_factory=set)
    removed_undecided: set[str] = field(default_factory=set)  # attributes neither table nor list decided
    overridden: list[str] = field(default_factory=list)  # files let through by the burned-in override


@lru_cache(maxsize=1)
def action_table() -> tuple[dict[str, str], list[dict], dict[str, str]]:
    """(Table E.1-1 actions by tag, masked group entries (the table's, then ours), retained K/C by tag)."""
    table = json.loads((TABLES / f"table_{EDITION}.json").read_text(encoding="utf-8"))
    ours = json.loads((TABLES / "retained.json").read_text(encoding="utf-8"))
    return (table["actions"], table["masked"] + ours["masked"],
            {tag: entry["action"] for tag, entry in ours["retained"].items()})


def decision(tag: int) -> str | None:
    """The action for a (non-private) tag: a Table E.1-1 code, K, C, or None when undecided."""
    actions, masked, retained = action_table()
    key = f"{tag:08X}"
    if key in actions:
        return actions[key]
    for entry in masked:
        if tag & int(entry["mask"], 16) == int(entry["tag"], 16):
            return entry["action"]
    return retained.get(key)


class Deidentifier:
    """De-identifies datasets consistently under one secret (the installation's)."""

    def __init__(self, secret: bytes, options: DeidOptions | None = None) -> None:
        self.secret, self.options = secret, options or DeidOptions()

    # -- consistent replacements ----------------------------------------------------------------
    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        value = str(value).strip()
        if not value or value.startswith(STANDARD_UID_ROOT):
            return value
        return "2.25." + str(int.from_bytes(self._digest("uid", value)[:16], "big"))

    def pseudonym(self, patient_id: str) -> str:
        return "TP" + self._digest("patient", patient_id).hex()[:10].upper()

    def day_shift(self, patient_id: str) -> int:
        """-3650..-366 days: back by 1 to 10 years, the same for every study of the patient."""
        return -366 - int.from_bytes(self._digest("days", patient_id)[:4], "big") % 3285

    # -- datasets -------------------------------------------------------------------------------
    def check_allowed(self, dataset: Dataset) -> bool:
        """False when the override let a burned-in / secondary-capture image through."""
        burned = str(dataset.get("BurnedInAnnotation", "")).upper() == "YES"
        capture = str(dataset.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE)
        if (burned or capture) and not self.options.allow_burned_in:
            why = "is marked BurnedInAnnotation=YES" if burned else "is a secondary capture"
            raise DeidentificationError(f"An image {why}: text in its pixels may identify the patient. "
                                        "Refused; override only after checking the pixels yourself")
        return not (burned or capture)

    def dataset(self, source: Dataset, summary: DeidSummary | None = None) -> Dataset:
        """A de-identified copy (the source is not changed)."""
        summary = summary or DeidSummary()
        dataset = copy.deepcopy(source)
        patient_id = str(source.get("PatientID", "")) or str(source.get("PatientName", ""))
        identifying = _identifying_values(source)
        self._walk(dataset, patient_id, identifying, summary)
        pseudonym = self.pseudonym(patient_id)
        dataset.PatientID = pseudonym
        dataset.PatientName = f"TEACHING^{pseudonym}"
        dataset.PatientIdentityRemoved = "YES"
        dataset.DeidentificationMethod = f"Workstation PS3.15 {EDITION} Basic Profile; options: " + ", ".join(
            name for name, on in (("retain patient characteristics", self.options.retain_patient_characteristics),
                                  ("modified dates", self.options.modified_dates),
                                  ("clean descriptors", self.options.clean_descriptors)) if on)
        dataset.DeidentificationMethodCodeSequence = Sequence([_code(code, meaning) for code, meaning in METHOD_CODES
                                                               if self._option_for(code)])
        if self.options.modified_dates:
            dataset.LongitudinalTemporalInformationModified = "MODIFIED"
        if "SOPInstanceUID" in dataset and hasattr(dataset, "file_meta"):
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        return dataset

    def _option_for(self, code: str) -> bool:
        return {"113100": True, "113108": self.options.retain_patient_characteristics,
                "113107": self.options.modified_dates, "113105": self.options.clean_descriptors}[code]

    def _walk(self, dataset: Dataset, patient_id: str, identifying: list[str], summary: DeidSummary) -> None:
        for element in list(dataset):
            tag = int(element.tag)
            if element.tag.is_private:
                del dataset[element.tag]
                continue
            key = f"{tag:08X}"
            action = decision(tag)
            if self.options.retain_patient_characteristics and key in PATIENT_CHARACTERISTICS:
                action = "K"
            elif self.options.clean_descriptors and key in DESCRIPTORS:
                action = "C"
            if action is None:
                summary.removed_undecided.add(keyword_for_tag(tag) or key)
                del dataset[element.tag]
                continue
            self._apply(dataset, element, action, key, patient_id, identifying, summary)

    def _apply(self, dataset: Dataset, element, action: str, key: str, patient_id: str, identifying: list[str],
               summary: DeidSummary) -> None:
        vr, tag = element.VR, element.tag
        if vr == "SQ":
            if action == "X":
                del dataset[tag]
            elif action in ("Z", "X/Z"):
                element.value = Sequence()
            else:  # K, C, D, U and compound codes: keep the items, de-identified by the same rules
                for item in element.value:
                    self._walk(item, patient_id, identifying, summary)
            return
        if vr == "UI":
            if action == "X":
                del dataset[tag]
            else:
                self._replace_uids(element, exempt_classes=action in ("K", "C"))
            return
        if vr in ("DA", "DT") and self.options.modified_dates and action not in ("K", "C") \
                and key not in NEVER_SHIFTED and element.value not in (None, ""):
            element.value = _shift(str(element.value), vr, self.day_shift(patient_id))
            return
        if action == "K":
            return
        if action == "C":
            if vr in TEXT_VRS and element.value not in (None, ""):
                element.value = _clean(element.value, identifying)
            return
        if action in ("X", "X/Z/U*"):
            del dataset[tag]
        elif action in ("Z", "X/Z"):
            element.value = "" if vr in TEXT_VRS | {"DA", "DT", "TM", "AS", "IS", "DS"} else None
        else:  # D, Z/D, X/D, X/Z/D: a dummy that keeps the file valid (type 1 attributes among them)
            element.value = DUMMY.get(vr, None)
            if element.value is None:
                del dataset[tag]

    def _replace_uids(self, element, exempt_classes: bool) -> None:
        """Every instance UID is remapped; class and syntax UIDs outside the table are not identifying."""
        keyword = keyword_for_tag(element.tag) or ""
        if exempt_classes and keyword.endswith(("ClassUID", "ClassUIDInFile", "SyntaxUID", "SyntaxUIDInFile")):
            return
        if element.VM > 1:
            element.value = [self.uid(v) for v in element.value]
        elif element.value:
            element.value = self.uid(element.value)


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return item


def _shift(value: str, vr: str, days: int) -> str:
    """Move the date part by `days`; an unparseable value is removed rather than kept."""
    try:
        date = dt.datetime.strptime(value[:8], "%Y%m%d").date() + dt.timedelta(days=days)
    except ValueError:
        return ""
    return date.strftime("%Y%m%d") + (value[8:] if vr == "DT" else "")


def _identifying_values(dataset: Dataset) -> list[str]:
    """Every text value the profile removes or replaces (names, IDs, places, dates), longest first:
    what a descriptor must not repeat."""
    values: set[str] = set()

    def collect(ds: Dataset) -> None:
        for element in ds:
            if element.VR == "SQ":
                for item in element.value:
                    collect(item)
                continue
            key = f"{int(element.tag):08X}"
            action = decision(int(element.tag)) if not element.tag.is_private else "X"
            if action in (None, "K", "C") or key in DESCRIPTORS or key in PATIENT_CHARACTERISTICS \
                    or element.VR not in TEXT_VRS | {"DA", "DT", "TM"}:
                continue  # (descriptors are what gets cleaned; characteristics are not identifying)
            text = str(element.value or "")
            for part in re.split(r"[\^=\\]", text) + [text]:
                if len(part.strip()) >= 3:
                    values.add(part.strip())

    collect(dataset)
    return sorted(values, key=len, reverse=True)


def _clean(value, identifying: list[str]):
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [_clean(v, identifying) for v in value]
    text = str(value)
    for secret in identifying:
        text = re.sub(re.escape(secret), "", text, flags=re.IGNORECASE)
    text = re.sub(r"\d{6,}", "", text)  # long numbers: dates, record numbers
    return re.sub(r"\s{2,}", " ", text).strip()


def deidentify_job(paths: Iterable[Path], out: Path, secret: bytes, options: DeidOptions | None = None,
                   cancel: CancelToken | None = None) -> Job[DeidSummary]:
    """De-identify every DICOM file found under `paths` into `out/<series>/<n>.dcm` (file names
    never carry anything from the input)."""
    from workstation.dicom.sources import find_sources

    cancel = cancel or CancelToken()
    deidentifier = Deidentifier(secret, options)
    summary = DeidSummary()
    sources = find_sources([Path(p) for p in paths])
    out = Path(out)
    for index, source in enumerate(sources):
        cancel.check()
        if index % 10 == 0:
            yield Progress(index, len(sources), f"De-identifying {index + 1} of {len(sources)}")
        if source.refusal:  # a DICOMDIR record leaving its folder: said as it is, nothing written
            raise DeidentificationError(source.refusal)
        try:
            with source.open() as stream:
                original = configured_pydicom().dcmread(stream, force=True)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise DeidentificationError(f"{Path(source.label).name} cannot be read as DICOM: {exc}") from exc
        if "PixelData" not in original and "SOPClassUID" not in original:
            continue  # DICOMDIR and other non-image files
        if not deidentifier.check_allowed(original):
            summary.overridden.append(Path(source.label).name)
        result = deidentifier.dataset(original, summary)
        series = str(result.get("SeriesInstanceUID", "series"))
        folder = out / f"series-{hashlib.sha256(series.encode()).hexdigest()[:12]}"
        folder.mkdir(parents=True, exist_ok=True)
        summary.series.add(series)
        number = len(list(folder.iterdir())) + 1
        result.save_as(folder / f"{number:05d}.dcm", enforce_file_format=True)
        summary.files += 1
    yield Progress(len(sources), len(sources), "De-identified")
    return summary


def installation_secret(home: Path) -> bytes:
    """The key behind UID mapping, pseudonyms and date shifts: made once, never exported."""
    import os
    import secrets

    path = Path(home) / "deid-secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(secrets.token_bytes(32))
    return path.read_bytes()
