"""Teaching packs: selected studies, de-identified, with the accepted findings as the answer key
and the trainer's notes, in one zip with a manifest of SHA-256 checksums.

Import verifies every checksum (and that nothing is missing or extra) before anything is
copied, so a tampered or truncated pack is refused with one clear sentence. Answer keys keep
positions in patient millimetres: de-identification does not change geometry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from workstation.dicom.deidentify import DeidOptions, Deidentifier, deidentify_job, installation_secret
from workstation.errors import WorkstationError
from workstation.files import write_atomically
from workstation.jobs import CancelToken, Job, Progress
from workstation.library import StudyLibrary
from workstation.review import audit
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore

FORMAT = "workstation-teaching-pack-1"
MANIFEST = "manifest.json"


class PackError(WorkstationError):
    """A teaching pack cannot be made or read (tampered, truncated, not a pack)."""


@dataclass(frozen=True)
class PackCase:
    name: str
    study_uid: str  # the de-identified Study Instance UID
    answers: list[dict]  # {"center_mm", "diameter_mm", "type"}
    notes: str


def export_pack_job(home: Path, store: ReviewStore, studies: Iterable[str], out: Path, *, notes: str = "",
                    created_by: str, options: DeidOptions | None = None,
                    cancel: CancelToken | None = None) -> Job[Path]:
    """De-identify each library study (by reference) into the pack with its answer key."""
    cancel = cancel or CancelToken()
    library = StudyLibrary(home)
    secret = installation_secret(home)
    rows = [library.find_study(reference) for reference in studies]
    cases, files = [], {}
    with tempfile.TemporaryDirectory(prefix="pack-") as scratch:
        for number, row in enumerate(rows, start=1):
            name = f"case-{number:02d}"
            yield Progress(number - 1, len(rows) + 1, f"De-identifying {name}")
            folders = [library.series_folder(s) for s in library.series(row["key"])]
            yield from deidentify_job(folders, Path(scratch) / name / "dicom", secret, options, cancel)
            answers = [{"center_mm": list(s.center_mm), "diameter_mm": s.diameter_mm, "type": s.type}
                       for s in ReviewSession.findings_of(store, row["study_uid"]) if s.reportable]
            cases.append({"name": name, "study_uid": Deidentifier(secret, options).uid(row["study_uid"]),
                          "answers": answers, "notes": notes})
        yield Progress(len(rows), len(rows) + 1, "Writing the pack")
        for path in sorted(Path(scratch).rglob("*")):
            if path.is_file():
                files[path.relative_to(scratch).as_posix()] = path
        manifest = {"format": FORMAT, "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "cases": cases, "files": {name: _sha256(path.read_bytes()) for name, path in files.items()}}
        data = _zip(manifest, files)
    try:
        write_atomically(Path(out), data)
    except OSError as exc:
        raise PackError(f"Cannot write the pack to {out}: {exc.strerror or exc}; choose another folder") from exc
    with store.transaction() as connection:
        audit.append(connection, created_by, "exported", new_value={
            "kind": "teaching-pack", "path": str(Path(out).resolve()), "sha256": _sha256(data),
            "cases": len(cases), "answers": sum(len(c["answers"]) for c in cases)})
    return Path(out)


def read_pack(path: Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest, files) after checking every checksum; PackError names what is wrong."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if MANIFEST not in names:
                raise PackError(f"{Path(path).name} is not a teaching pack (no {MANIFEST})")
            manifest = json.loads(archive.read(MANIFEST))
            if manifest.get("format") != FORMAT:
                raise PackError(f"{Path(path).name} is not a teaching pack this version can read")
            expected = manifest["files"]
            if names - {MANIFEST} != set(expected):
                extra, missing = names - {MANIFEST} - set(expected), set(expected) - names
                raise PackError(f"The pack was altered: {len(missing)} file(s) missing, {len(extra)} unexpected")
            files = {}
            for name, digest in expected.items():
                data = archive.read(name)
                if _sha256(data) != digest:
                    raise PackError(f"The pack was altered or damaged: {name} does not match its checksum")
                files[name] = data
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise PackError(f"{Path(path).name} is truncated or not a zip file: {exc}") from exc
    except (KeyError, ValueError, zipfile.LargeZipFile) as exc:
        raise PackError(f"{Path(path).name} has a damaged manifest: {exc}") from exc
    for name in files:
        if name.startswith("/") or ".." in Path(name).parts:
            raise PackError(f"The pack names a path outside itself ({name}); refused")
    return manifest, files


def import_pack_job(path: Path, home: Path, store: ReviewStore, *, imported_by: str,
                    cancel: CancelToken | None = None) -> Job[list[PackCase]]:
    """Verify, then import the cases into the library and their answer keys into the store."""
    cancel = cancel or CancelToken()
    yield Progress(0, 3, "Checking the pack")
    manifest, files = read_pack(path)
    pack_id = _sha256(Path(path).read_bytes())[:16]
    with tempfile.TemporaryDirectory(prefix="pack-import-") as scratch:
        for name, data in files.items():
            target = Path(scratch) / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        yield Progress(1, 3, "Importing the cases")
        yield from StudyLibrary(home).import_job([Path(scratch)], cancel)
    cases = [PackCase(c["name"], c["study_uid"], c["answers"], c.get("notes", "")) for c in manifest["cases"]]
    yield Progress(2, 3, "Storing the answer keys")
    with store.transaction() as connection:
        for case in cases:
            connection.execute(
                "INSERT OR REPLACE INTO teaching_cases (study_uid, pack_id, name, answers, notes, imported_by, "
                "imported_at) VALUES (?,?,?,?,?,?,?)",
                (case.study_uid, pack_id, case.name, json.dumps(case.answers), case.notes, imported_by,
                 dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")))
        audit.append(connection, imported_by, "pack_imported", object_id=pack_id,
                     new_value={"cases": [c.name for c in cases]})
    return cases


def teaching_case(store: ReviewStore, study_uid: str) -> PackCase | None:
    row = store.connection.execute("SELECT name, answers, notes FROM teaching_cases WHERE study_uid = ?",
                                   (study_uid,)).fetchone()
    return PackCase(row[0], study_uid, json.loads(row[1]), row[2]) if row else None


def _zip(manifest: dict, files: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest, indent=1, ensure_ascii=False))
        for name, path in files.items():
            archive.write(path, name)
    return buffer.getvalue()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
