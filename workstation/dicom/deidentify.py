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
Longitudinal Temporal Information with Modified Dates, Clean Descriptors. Without the last, the
descriptions, comments and protocol names the table marks X are removed, as the Basic Profile
says; with it they are kept after cleaning against a vocabulary of words known to carry no
identity (confidentiality/vocabulary.py), every other word dropped. Teaching packs use it
(trainers want "CT CHEST W CONTRAST"); a plain `deidentify` does not unless asked. Images that
may show burned-in text (BurnedInAnnotation YES, secondary capture) are refused unless overridden.

Hostile files are bounded before pydicom recurses into them (dicom/structure.py: nesting depth
and element count), and text values longer than any scanner writes are removed unread (named in
the summary). Output goes to a temporary folder beside OUT that becomes OUT only when every file
is written, so a refusal or a crash leaves nothing behind.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from workstation.dicom import configured_pydicom
from workstation.dicom.confidentiality.vocabulary import clean_descriptor
from workstation.dicom.structure import check_structure
from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job, Progress

EDITION = "2026c"
TABLES = Path(__file__).with_name("confidentiality")
PATIENT_CHARACTERISTICS = {  # kept with the Retain Patient Characteristics option
    "00101010": "PatientAge", "00100040": "PatientSex", "00101020": "PatientSize", "00101030": "PatientWeight",
    "00102160": "EthnicGroup", "001021A0": "SmokingStatus", "001021C0": "PregnancyStatus",
    "00102203": "PatientSexNeutered"}
_DESCRIPTOR_TABLE = json.loads((TABLES / "clean_descriptors.json").read_text(encoding="utf-8"))
DESCRIPTORS: dict[str, str] = {**_DESCRIPTOR_TABLE["standard"], **_DESCRIPTOR_TABLE["ours"]}  # the option's C column
FREE_TEXT_VRS = {"LO", "LT", "ST", "UT", "UC", "PN"}  # inside a descriptor sequence: cleaned like a description
# Longest text value kept (bytes): PS3.5 caps these VRs at 64 characters or fewer (LT 10240), so
# anything longer is not a real value; it is removed unread rather than parsed, split and cleaned.
SHORT_TEXT_LIMIT = 4096
LONG_TEXT_LIMIT = 64 * 1024
LONG_TEXT_VRS = {"LT", "ST", "UT", "UC", "UR"}
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
    clean_descriptors: bool = False  # the Basic Profile removes descriptions; the option keeps them cleaned
    allow_burned_in: bool = False  # the user's override for burned-in text / secondary capture


TEACHING_OPTIONS = DeidOptions(clean_descriptors=True)  # packs: "CT CHEST W CONTRAST" is what a trainee learns from


@dataclass
class DeidSummary:
    files: int = 0
    series: set[str] = field(default_factory=set)
    removed_undecided: set[str] = field(default_factory=set)  # attributes neither table nor list decided
    removed_overlong: set[str] = field(default_factory=set)  # text values longer than the standard allows
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
        patient_id = _text_of(source, 0x00100020) or _text_of(source, 0x00100010)
        identifying = _identifying_tokens(source)
        self._walk(dataset, patient_id, identifying, summary, in_descriptor=False)
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

    def _walk(self, dataset: Dataset, patient_id: str, identifying: frozenset[str], summary: DeidSummary,
              in_descriptor: bool) -> None:
        # Decided by tag and raw length first: private and undecided attributes, and overlong
        # values, are removed without pydicom ever converting (or recursing into) them.
        for tag in list(dataset.keys()):
            if tag.is_private:
                del dataset[tag]
                continue
            key = f"{int(tag):08X}"
            action = decision(int(tag))
            if self.options.retain_patient_characteristics and key in PATIENT_CHARACTERISTICS:
                action = "K"
            elif key in DESCRIPTORS:
                if self.options.clean_descriptors:
                    action = "V"  # kept, cleaned against the vocabulary
                elif action and action.startswith("X"):
                    action = "X"  # X/D, X/Z: removed; no image IOD needs a description (ProtocolName is type 3)
            if action is None:
                summary.removed_undecided.add(keyword_for_tag(tag) or key)
                del dataset[tag]
                continue
            if _overlong(dataset, tag):
                summary.removed_overlong.add(keyword_for_tag(tag) or key)
                del dataset[tag]
                continue
            self._apply(dataset, dataset[tag], action, key, patient_id, identifying, summary, in_descriptor)

    def _apply(self, dataset: Dataset, element, action: str, key: str, patient_id: str, identifying: frozenset[str],
               summary: DeidSummary, in_descriptor: bool) -> None:
        vr, tag = element.VR, element.tag
        if vr == "SQ":
            if action == "X":
                del dataset[tag]
            elif action in ("Z", "X/Z"):
                element.value = Sequence()
            else:  # K, C, V, D, U and compound codes: keep the items, de-identified by the same rules
                for item in element.value:
                    self._walk(item, patient_id, identifying, summary, in_descriptor or action == "V")
            return
        if vr == "UI":
            if action == "X":
                del dataset[tag]
            else:
                self._replace_uids(element, exempt_classes=action in ("K", "C"))
            return
        if vr in ("DA", "DT") and self.options.modified_dates and action not in ("K", "C", "V") \
                and key not in NEVER_SHIFTED and element.value not in (None, ""):
            element.value = _shift(str(element.value), vr, self.day_shift(patient_id))
            return
        if in_descriptor and action in ("K", "C") and vr in FREE_TEXT_VRS:
            action = "V"  # a code meaning inside a procedure code sequence is typed like a description
        if action == "K":
            return
        if action in ("C", "V"):
            if vr in TEXT_VRS and element.value not in (None, ""):
                clean = _vocabulary_clean if action == "V" else _clean
                element.value = _each(element.value, lambda text: clean(text, identifying))
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


def _vr_of(dataset: Dataset, tag) -> str:
    """The VR without converting the value (implicit VR files leave it to the dictionary)."""
    raw = dataset.get_item(tag)
    if raw is not None and raw.VR:
        return str(raw.VR)
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _overlong(dataset: Dataset, tag) -> bool:
    """A text value longer than the standard allows such a value to be, measured unconverted."""
    vr = _vr_of(dataset, tag)
    if vr not in TEXT_VRS | {"DA", "DT", "TM", "UI", "AS", "UR"}:
        return False
    raw = dataset.get_item(tag)
    if isinstance(raw, RawDataElement):
        size = len(raw.value or b"")
    else:
        value = raw.value
        size = sum(len(str(v)) for v in value) if isinstance(value, (list, pydicom.multival.MultiValue)) \
            else len(str(value or ""))
    return size > (LONG_TEXT_LIMIT if vr in LONG_TEXT_VRS else SHORT_TEXT_LIMIT)


def _text_of(dataset: Dataset, tag: int) -> str:
    """A value as text, or "" when it is missing or overlong (the pseudonym and day shift use it)."""
    if tag not in dataset or _overlong(dataset, tag):
        return ""
    return str(dataset[tag].value or "")


def _identifying_tokens(dataset: Dataset) -> frozenset[str]:
    """The words (lower case, three letters or more) of every value the profile removes or
    replaces (names, IDs, places, dates): what a kept text must not repeat. Sets, not patterns,
    so that cleaning stays linear however many values there are."""
    tokens: set[str] = set()
    pending = [dataset]  # iterative: nesting is bounded by check_structure, but no recursion is needed
    while pending:
        current = pending.pop()
        for tag in list(current.keys()):
            if tag.is_private or _overlong(current, tag):
                continue
            key = f"{int(tag):08X}"
            action = decision(int(tag))
            vr = _vr_of(current, tag)
            if vr == "SQ":
                pending.extend(current[tag].value)
                continue
            if action in (None, "K", "C") or key in DESCRIPTORS or key in PATIENT_CHARACTERISTICS \
                    or vr not in TEXT_VRS | {"DA", "DT", "TM"}:
                continue  # (descriptors are what gets cleaned; characteristics are not identifying)
            text = str(current[tag].value or "")
            tokens.update(word for word in _WORDS.findall(text.lower()) if len(word) >= 3)
    return frozenset(tokens)


_WORDS = re.compile(r"[^\W_]+")


def _each(value, clean):
    """`clean` applied to each value of a multi-valued element."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [clean(str(v)) for v in value]
    return clean(str(value))


def _clean(text: str, identifying: frozenset[str]) -> str:
    """Equipment and coded text (retained.json's C): the words that name this patient, their
    places or dates, and long numbers (dates, record numbers) are removed; the rest is kept."""
    kept = [word for word in re.split(r"(\W+)", text)
            if word.lower() not in identifying and not re.fullmatch(r"\d{6,}", word)]
    return re.sub(r"\s{2,}", " ", "".join(kept)).strip()


def _vocabulary_clean(text: str, identifying: frozenset[str]) -> str:
    return clean_descriptor(text, identifying)


def deidentify_job(paths: Iterable[Path], out: Path, secret: bytes, options: DeidOptions | None = None,
                   cancel: CancelToken | None = None) -> Job[DeidSummary]:
    """De-identify every DICOM file found under `paths` into `out/<series>/<n>.dcm` (file names
    never carry anything from the input). `out` must be new or empty: the files are written to a
    temporary folder beside it, which becomes `out` only when all of them are written."""
    from workstation.dicom.sources import find_sources

    cancel = cancel or CancelToken()
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DeidentificationError(f"{out} already exists and is not an empty folder; choose a new folder for the "
                                    "de-identified copy")
    # the highest folder this job creates: removed again when it fails
    made = next((folder for folder in reversed([out.parent, *out.parent.parents]) if not folder.exists()), None)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as exc:
        raise DeidentificationError(f"Cannot write to {out.parent}: {exc.strerror or exc}; choose another "
                                    "folder") from exc
    done = False
    try:
        summary = yield from _deidentify_into(find_sources([Path(p) for p in paths]), scratch, secret, options,
                                              cancel)
        try:
            os.replace(scratch, out)  # atomic on one file system; replaces an empty `out`
        except OSError as exc:
            raise DeidentificationError(f"Cannot move the de-identified copy into {out}: {exc.strerror or exc}") \
                from exc
        done = True
    finally:  # a refusal, a cancel or a crash leaves nothing behind
        shutil.rmtree(scratch, ignore_errors=True)
        if not done and made is not None:
            shutil.rmtree(made, ignore_errors=True)
    return summary


def _deidentify_into(sources: list, folder: Path, secret: bytes, options: DeidOptions | None,
                     cancel: CancelToken) -> Job[DeidSummary]:
    deidentifier = Deidentifier(secret, options)
    summary = DeidSummary()
    written: dict[str, int] = {}  # files per output series folder
    for index, source in enumerate(sources):
        cancel.check()
        if index % 10 == 0:
            yield Progress(index, len(sources), f"De-identifying {index + 1} of {len(sources)}")
        if source.refusal:  # a DICOMDIR record leaving its folder: said as it is, nothing written
            raise DeidentificationError(source.refusal)
        label = Path(source.label).name
        try:
            with source.open() as stream:
                # bounded before pydicom recurses: nesting depth and element count (SizeLimitError)
                check_structure(stream, label)
                stream.seek(0)
                original = configured_pydicom().dcmread(stream, force=True)
        except WorkstationError:
            raise
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise DeidentificationError(f"{label} cannot be read as DICOM: {exc}") from exc
        if "PixelData" not in original and "SOPClassUID" not in original:
            continue  # DICOMDIR and other non-image files
        if not deidentifier.check_allowed(original):
            summary.overridden.append(label)
        try:
            result = deidentifier.dataset(original, summary)
            series = str(result.get("SeriesInstanceUID", "series"))
            name = f"series-{hashlib.sha256(series.encode()).hexdigest()[:12]}"
            written[name] = written.get(name, 0) + 1
            (folder / name).mkdir(exist_ok=True)
            result.save_as(folder / name / f"{written[name]:05d}.dcm", enforce_file_format=True)
        except OSError as exc:
            raise DeidentificationError(f"Cannot write the de-identified copy: {exc.strerror or exc}; free some "
                                        "disk space or choose another folder") from exc
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError) as exc:
            raise DeidentificationError(f"{label} cannot be de-identified: {exc}") from exc
        summary.series.add(series)
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
