"""The local study library: studies copied into the data folder and indexed in SQLite.

Copies make studies survive the USB stick being removed. File names inside the library
are hashes, never UIDs or names from the input, so nothing from a file can steer a path.
Importing the same files again changes nothing (instances are keyed by SOP Instance UID,
or by content when a file has none).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import sqlite_utils

from workstation.dicom.series import ScanResult, SeriesGroup, scan_job
from workstation.dicom.sources import DicomSource, safe_join
from workstation.errors import LibraryError, NoSeriesError
from workstation.files import make_durable, write_atomically
from workstation.jobs import CancelToken, Job, Progress

SCHEMA_VERSION = 2  # 2: studies.issuer_of_patient_id


def _hash(text: str, length: int = 20) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass
class ImportReport:
    studies: list[str] = field(default_factory=list)
    series: list[str] = field(default_factory=list)
    files_copied: int = 0
    files_already_present: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # files kept although another, different file carries the same SOPInstanceUID
    shared_uids: list[tuple[str, str]] = field(default_factory=list)  # (file, SOPInstanceUID)


class StudyLibrary:
    """Studies under `home/studies`, indexed in `home/library.db`."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home).resolve()
        try:
            (self.home / "studies").mkdir(parents=True, exist_ok=True)
            self.db = sqlite_utils.Database(self.home / "library.db")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise LibraryError(f"The data folder cannot be used: {exc}", path=str(self.home)) from exc

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LibraryError(f"The library was written by a newer version (schema {version}); update the app")
        if version < 1:
            with self.db.conn:
                self.db["studies"].create({
                    "key": str, "study_uid": str, "uids_derived": int, "patient_name": str, "patient_id": str,
                    "patient_birth_date": str, "patient_sex": str, "patient_age": str, "study_date": str,
                    "study_time": str, "study_description": str, "accession_number": str, "folder": str,
                    "imported_at": float}, pk="key", if_not_exists=True)
                self.db["series"].create({
                    "key": str, "study_key": str, "series_uid": str, "series_number": str,
                    "series_description": str, "modality": str, "rows": int, "columns": int, "slices": int,
                    "folder": str}, pk="key", foreign_keys=[("study_key", "studies", "key")], if_not_exists=True)
                self.db["instances"].create({
                    "key": str, "series_key": str, "sop_instance_uid": str, "path": str, "sha256": str,
                    "size": int}, pk="key", foreign_keys=[("series_key", "series", "key")], if_not_exists=True)
                self.db["instances"].create_index(["series_key"], if_not_exists=True)
                self.db.execute("PRAGMA user_version=1")
        if version < 2:
            # a Patient ID is unique only within its issuer (the priors' same-patient rule); studies
            # imported before keep NULL (not said) until imported again
            with self.db.conn:
                if "issuer_of_patient_id" not in self.db["studies"].columns_dict:
                    self.db["studies"].add_column("issuer_of_patient_id", str)
                self.db.execute("PRAGMA user_version=2")

    # -- import -------------------------------------------------------------------------------
    def import_job(self, paths: Iterable[Path], cancel: CancelToken | None = None) -> Job[ImportReport]:
        """Copy every CT series found under `paths` into the library."""
        cancel = cancel or CancelToken()
        scan: ScanResult = yield from scan_job([Path(p) for p in paths], cancel)
        if not scan.studies:
            reason = f"; e.g. {scan.skipped[0][1]}" if scan.skipped else ""
            raise NoSeriesError(f"No CT series found to import ({len(scan.skipped)} file(s) skipped{reason})")
        report = ImportReport(skipped=scan.skipped)
        total = sum(len({h.source for h in s.slices}) for s in scan.series)
        done = 0
        for study in scan.studies:
            study_folder = safe_join(self.home / "studies", _hash(study.key))
            meta = study.metadata
            self._upsert("studies", {
                "key": study.key, "study_uid": meta["study_uid"], "uids_derived": int(study.uids_derived),
                **{name: str(meta.get(name) or "") for name in (
                    "patient_name", "patient_id", "issuer_of_patient_id", "patient_birth_date", "patient_sex",
                    "patient_age", "study_date", "study_time", "study_description", "accession_number")},
                "folder": str(study_folder.relative_to(self.home)), "imported_at": time.time()})
            report.studies.append(study.key)
            for series in study.series:
                copied, present = self._import_series(series, study_folder, report, cancel)
                report.series.append(series.key)
                report.files_copied += copied
                report.files_already_present += present
                done += copied + present
                yield Progress(done, total, f"Copied series '{series.description}'")
        return report

    def _import_series(self, series: SeriesGroup, study_folder: Path, report: ImportReport,
                       cancel: CancelToken) -> tuple[int, int]:
        folder = safe_join(study_folder, _hash(series.key))
        folder.mkdir(parents=True, exist_ok=True)
        first = series.slices[0]
        meta = series.metadata
        self._upsert("series", {
            "key": series.key, "study_key": series.study_key, "series_uid": meta["series_uid"],
            "series_number": str(meta.get("series_number") or ""),
            "series_description": str(meta.get("series_description") or ""), "modality": "CT",
            "rows": first.rows, "columns": first.columns, "slices": len(series.slices),
            "folder": str(folder.relative_to(self.home))})
        copied = present = 0
        sources: dict[DicomSource, str] = {}
        for header in series.slices:
            sources.setdefault(header.source, header.sop_instance_uid)
        # The series' files are written first and made durable together (one filesystem sync where
        # the system has it), then indexed in one transaction: the index never names a file that a
        # power cut could lose, and 300 slices no longer cost 300 fsyncs and 300 commits.
        pending: dict[str, dict] = {}
        for source, sop_uid in sources.items():
            cancel.check()
            data = source.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            key = _hash("sop:" + sop_uid, 40) if sop_uid else _hash("sha:" + digest, 40)
            stored = self._digest_of(key, pending)
            if stored is not None and stored != digest:  # another file under the same UID: keep both, say so
                report.shared_uids.append((source.label, sop_uid))
                key = _hash(f"sop:{sop_uid}:sha:{digest}", 40)
                stored = self._digest_of(key, pending)
            target = safe_join(folder, key + ".dcm")
            if stored == digest and (key in pending or target.is_file()):
                present += 1
                continue
            _atomic_write(target, data, durable=False)
            pending[key] = {"key": key, "series_key": series.key, "sop_instance_uid": sop_uid,
                            "path": str(target.relative_to(self.home)), "sha256": digest, "size": len(data)}
            copied += 1
        if pending:
            _made_durable([self.home / row["path"] for row in pending.values()])
            self._upsert_all("instances", list(pending.values()))
        return copied, present

    def _digest_of(self, key: str, pending: dict[str, dict]) -> str | None:
        return pending[key]["sha256"] if key in pending else self._stored_digest(key)

    def _stored_digest(self, key: str) -> str | None:
        row = self.db.execute("SELECT sha256 FROM instances WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def _upsert(self, table: str, row: dict) -> None:
        self._upsert_all(table, [row])

    def _upsert_all(self, table: str, rows: list[dict]) -> None:
        try:
            with self.db.conn:
                self.db[table].upsert_all(rows, pk="key")
        except sqlite3.Error as exc:
            raise LibraryError(f"The library index cannot be written: {exc}") from exc

    # -- queries ------------------------------------------------------------------------------
    def studies(self) -> list[dict]:
        rows = list(self.db.query(
            "select s.*, (select count(*) from series where study_key = s.key) as series_count "
            "from studies s order by study_date, key"))
        return rows

    def series(self, study_key: str) -> list[dict]:
        return list(self.db.query("select * from series where study_key = ? order by cast(series_number as integer), key",
                                  [study_key]))

    def find_study(self, reference: str) -> dict:
        """A study by list number (1-based), key, Study UID, or a unique key prefix."""
        studies = self.studies()
        if reference.isdigit() and 1 <= int(reference) <= len(studies) and len(reference) < 4:
            return studies[int(reference) - 1]
        matches = [s for s in studies if reference in (s["key"], s["study_uid"]) or s["key"].startswith(reference)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise LibraryError(f"No study '{reference}' in the library; 'workstation list' shows what is there")
        raise LibraryError(f"'{reference}' matches {len(matches)} studies; give more of the key")

    def series_folder(self, series_row: dict) -> Path:
        return safe_join(self.home, *Path(series_row["folder"]).parts)


def _atomic_write(target: Path, data: bytes, *, durable: bool = True) -> None:
    try:
        write_atomically(target, data, durable=durable)
    except OSError as exc:
        raise LibraryError(f"Cannot write into the data folder: {exc}", path=str(target)) from exc


def _made_durable(paths: list[Path]) -> None:
    try:
        make_durable(paths)
    except OSError as exc:
        raise LibraryError(f"Cannot write into the data folder: {exc}", path=str(paths[0].parent)) from exc


def thumbnail_path(home: Path, study_key: str) -> Path:
    """Where the browser thumbnail of a study lives (made when the study is first viewed)."""
    return Path(home) / "thumbnails" / f"{_hash(study_key)}.png"
