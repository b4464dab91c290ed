"""Scan inputs into studies and series; derive stable keys when UIDs are empty."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from workstation.dicom.headers import SliceHeader, read_headers
from workstation.dicom.sources import find_sources
from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job, Progress


@dataclass
class SeriesGroup:
    """Slices that form one volume: same series and same stack geometry."""

    key: str
    study_key: str
    slices: list[SliceHeader]
    uids_derived: bool

    @property
    def metadata(self) -> dict:
        return self.slices[0].metadata

    @property
    def description(self) -> str:
        meta = self.metadata
        return str(meta.get("series_description") or f"Series {meta.get('series_number') or '?'}")


@dataclass
class StudyGroup:
    key: str
    series: list[SeriesGroup] = field(default_factory=list)
    uids_derived: bool = False

    @property
    def metadata(self) -> dict:
        return self.series[0].metadata


@dataclass
class ScanResult:
    studies: list[StudyGroup]
    skipped: list[tuple[str, str]]  # (file, one-sentence reason)

    @property
    def series(self) -> list[SeriesGroup]:
        return [s for study in self.studies for s in study.series]


def derived_uid(*parts: object) -> str:
    """A deterministic 2.25 UID from identifying values (used when a file's UID is empty)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return "2.25." + str(int(digest[:30], 16))


def scan_job(paths: list[Path], cancel: CancelToken | None = None) -> Job[ScanResult]:
    """Read the headers of every file under `paths` and group them into studies and series."""
    cancel = cancel or CancelToken()
    sources = find_sources(paths)
    headers: list[SliceHeader] = []
    skipped: list[tuple[str, str]] = []
    metadata_cache: dict = {}
    for index, source in enumerate(sources):
        cancel.check()
        try:
            headers.extend(read_headers(source, metadata_cache))
        except WorkstationError as exc:
            skipped.append((source.label, str(exc)))
        if index % 16 == 0 or index == len(sources) - 1:
            yield Progress(index + 1, len(sources), f"Reading headers ({index + 1}/{len(sources)})")
    return ScanResult(group_slices(headers), skipped)


def group_slices(headers: list[SliceHeader]) -> list[StudyGroup]:
    """Group by study and series UID, falling back to patient, date and geometry keys."""
    studies: dict[str, StudyGroup] = {}
    series_slices: dict[tuple[str, str, tuple], list[SliceHeader]] = defaultdict(list)
    derived_flags: dict[str, bool] = {}
    for header in headers:
        meta = header.metadata
        study_key = meta["study_uid"] or derived_uid(
            "study", meta["patient_id"], meta["patient_name"], meta["study_date"], meta["study_time"],
            meta["accession_number"])
        derived_flags.setdefault(study_key, not meta["study_uid"])
        series_uid = meta["series_uid"] or derived_uid(
            "series", study_key, meta["frame_of_reference_uid"], meta["series_number"], meta["modality"],
            meta["series_description"], meta["kernel"])
        series_slices[(study_key, series_uid, _stack_signature(header))].append(header)

    per_series_uid: dict[tuple[str, str], int] = defaultdict(int)
    for (study_key, series_uid, _signature), slices in series_slices.items():
        per_series_uid[(study_key, series_uid)] += 1
        count = per_series_uid[(study_key, series_uid)]
        key = series_uid if count == 1 else f"{series_uid}#{count}"
        study = studies.setdefault(study_key, StudyGroup(study_key, uids_derived=derived_flags[study_key]))
        study.series.append(SeriesGroup(key, study_key, slices, uids_derived=not slices[0].metadata["series_uid"]))
    for study in studies.values():
        study.series.sort(key=lambda s: (_number(s.metadata.get("series_number")), s.key))
    return sorted(studies.values(), key=lambda s: (str(s.metadata.get("study_date")), s.key))


def _stack_signature(header: SliceHeader) -> tuple:
    # Slices of one series with another orientation or size (localizers) form another stack.
    return (tuple(round(v, 3) for v in header.orientation), header.rows, header.columns,
            tuple(round(v, 3) for v in header.pixel_spacing))


def _number(value: object) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 1 << 30
