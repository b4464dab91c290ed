"""Teaching packs: selected studies, de-identified, with the accepted findings as the answer key
and the trainer's notes, in one zip with a manifest of SHA-256 checksums and a checksum of the
manifest itself (so the answer key and notes are covered too).

Import checks the sizes the zip declares against LIMITS before extracting anything, then every
checksum (and that nothing is missing or extra), so a tampered, truncated or oversized pack is
refused with one clear sentence. Imported cases get new UIDs of their own: a pack can never land
on, merge into or rename a clinical study. Answer keys keep positions in patient millimetres:
neither de-identification nor the new UIDs change geometry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workstation.config import LIMITS
from workstation.dicom import configured_pydicom
from workstation.dicom.deidentify import (TEACHING_OPTIONS, DeidOptions, Deidentifier, deidentify_job,
                                           installation_secret)
from workstation.dicom.sources import check_zip_member
from workstation.errors import SizeLimitError, WorkstationError
from workstation.files import sha256_file
from workstation.jobs import CancelToken, Job, Progress
from workstation.library import StudyLibrary
from workstation.review import audit
from workstation.review.exports import record_export, staging_path
from workstation.review.session import ReviewSession
from workstation.review.store import ReviewStore

FORMAT = "workstation-teaching-pack-2"
UNCHECKED_FORMATS = ("workstation-teaching-pack-1",)  # their checksums left the answer key out
MANIFEST = "manifest.json"
MANIFEST_CHECKSUM = "manifest.sha256"


class PackError(WorkstationError):
    """A teaching pack cannot be made or read (tampered, truncated, not a pack)."""


@dataclass(frozen=True)
class PackCase:
    name: str
    study_uid: str  # in the manifest the de-identified Study UID; once imported, the teaching copy's own
    answers: list[dict]  # {"center_mm", "diameter_mm", "type"}
    notes: str


def export_pack_job(home: Path, store: ReviewStore, studies: Iterable[str], out: Path, *, notes: str = "",
                    created_by: str, options: DeidOptions | None = None,
                    cancel: CancelToken | None = None) -> Job[Path]:
    """De-identify each library study (by reference) into the pack with its answer key; by
    default with the Clean Descriptors Option (a trainee learns from "CT CHEST W CONTRAST")."""
    cancel = cancel or CancelToken()
    options = options or TEACHING_OPTIONS
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
                    "cases": cases, "files": {name: sha256_file(path) for name, path in files.items()}}
        # Written under a hidden name, recorded, then renamed: a crash leaves no pack the trail lacks.
        staging = staging_path(Path(out))
        try:
            staging.parent.mkdir(parents=True, exist_ok=True)
            _zip(manifest, files, staging)
        except OSError as exc:
            staging.unlink(missing_ok=True)
            raise PackError(f"Cannot write the pack to {out}: {exc.strerror or exc}; choose another folder") from exc
    record_export(store, created_by, None, staging, Path(out), kind="teaching-pack", cases=len(cases),
                  answers=sum(len(c["answers"]) for c in cases))
    return Path(out)


def read_pack(path: Path) -> tuple[dict, dict[str, bytes]]:
    """(manifest, files) in memory after every check, for looking into a pack; PackError names
    what is wrong. Import extracts to disk instead."""
    with _opened(path) as (archive, manifest, _cases):
        return manifest, {name: b"".join(_verified_blocks(archive, name, digest))
                          for name, digest in manifest["files"].items()}


def extract_pack(path: Path, folder: Path) -> list[PackCase]:
    """The pack's cases, after writing every member (checked) under `folder`."""
    with _opened(path) as (archive, manifest, cases):
        for name, digest in manifest["files"].items():
            target = Path(folder).joinpath(*PurePosixPath(name).parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as stream:
                    for block in _verified_blocks(archive, name, digest):
                        stream.write(block)
            except OSError as exc:
                raise PackError(f"Cannot unpack the pack: {exc.strerror or exc}; free some disk space") from exc
    return cases


def import_pack_job(path: Path, home: Path, store: ReviewStore, *, imported_by: str,
                    cancel: CancelToken | None = None) -> Job[list[PackCase]]:
    """Verify, give the cases new UIDs, then import them into the library and their answer keys
    into the store."""
    cancel = cancel or CancelToken()
    yield Progress(0, 3, "Checking the pack")
    with tempfile.TemporaryDirectory(prefix="pack-import-") as scratch:
        cases = extract_pack(path, Path(scratch))
        pack_id, secret = sha256_file(path)[:16], installation_secret(home)
        cases = [_teaching_copy(case, Path(scratch), secret, pack_id, cancel) for case in cases]
        yield Progress(1, 3, "Importing the cases")
        yield from StudyLibrary(home).import_job([Path(scratch)], cancel)
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


def _zip(manifest: dict, files: dict[str, Path], target: Path) -> None:
    text = json.dumps(manifest, indent=1, ensure_ascii=False).encode()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, text)
        archive.writestr(MANIFEST_CHECKSUM, f"{_sha256(text)}  {MANIFEST}\n")
        for name, path in files.items():
            archive.write(path, name)


@contextmanager
def _opened(path: Path) -> Iterator[tuple[zipfile.ZipFile, dict, list[PackCase]]]:
    """The archive, its checked manifest and cases; zip errors while reading members inside the block
    become PackError too."""
    label = Path(path).name
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = _checked_manifest(archive, label)
            yield archive, manifest, _cases(manifest, label)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise PackError(f"{label} is truncated or not a zip file: {exc}") from exc
    except (KeyError, ValueError, zipfile.LargeZipFile) as exc:
        raise PackError(f"{label} has a damaged manifest: {exc}") from exc


def _checked_manifest(archive: zipfile.ZipFile, label: str) -> dict:
    """Sizes and counts within LIMITS (as the zip declares them: zipfile never yields more than a
    member declares), the manifest matching its own checksum, and exactly its files present."""
    members = archive.infolist()
    names = [member.filename for member in members]
    if len(members) > LIMITS.max_pack_members or len(set(names)) != len(names):
        raise PackError(f"{label} holds {len(members)} entries (at most {LIMITS.max_pack_members}, each once); refused")
    for member in members:
        limit = LIMITS.max_pack_manifest_bytes if member.filename in (MANIFEST, MANIFEST_CHECKSUM) \
            else LIMITS.max_zip_member_bytes
        if member.file_size > limit:
            raise PackError(f"{member.filename} in {label} declares {member.file_size} bytes, over the limit of "
                            f"{limit}; refused before extracting anything")
        try:
            check_zip_member(member.file_size, member.compress_size, f"{label}!{member.filename}")
        except SizeLimitError as exc:
            raise PackError(f"{exc}; nothing was extracted") from exc
    if sum(member.file_size for member in members) > LIMITS.max_pack_bytes:
        raise PackError(f"{label} declares more than {LIMITS.max_pack_bytes} bytes in all; refused before extracting")
    if MANIFEST not in names:
        raise PackError(f"{label} is not a teaching pack (no {MANIFEST})")
    text = archive.read(MANIFEST)
    manifest = json.loads(text)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        old = isinstance(manifest, dict) and manifest.get("format") in UNCHECKED_FORMATS
        raise PackError(f"{label} was made by an earlier version whose checksums do not cover the answer key; "
                        "export it again" if old else f"{label} is not a teaching pack this version can read")
    recorded = archive.read(MANIFEST_CHECKSUM).decode("ascii").split()[:1] if MANIFEST_CHECKSUM in names else []
    if recorded != [_sha256(text)]:
        raise PackError("The pack was altered: its manifest (answer key, notes or file list) does not match its "
                        "checksum")
    expected = manifest["files"]
    if not isinstance(expected, dict) or set(names) - {MANIFEST, MANIFEST_CHECKSUM} != set(expected):
        extra = set(names) - {MANIFEST, MANIFEST_CHECKSUM} - set(expected)
        raise PackError(f"The pack was altered: {len(set(expected) - set(names))} file(s) missing, {len(extra)} "
                        "unexpected")
    return manifest


def _cases(manifest: dict, label: str) -> list[PackCase]:
    """The manifest's cases, checked, each holding its own files and no others."""
    try:
        cases = [_case(raw) for raw in manifest["cases"]]
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise PackError(f"{label} has a damaged manifest: {exc}") from exc
    names = {case.name for case in cases}
    if len(names) != len(cases):
        raise PackError(f"{label} has a damaged manifest: a case name appears twice")
    for name in manifest["files"]:
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts or "\\" in name or len(parts) < 2 or parts[0] not in names:
            raise PackError(f"The pack names a path outside its cases ({name}); refused")
    return cases


def _case(raw: dict) -> PackCase:
    """A case from the manifest, its answers checked (the quiz computes with them)."""
    answers = []
    for answer in raw["answers"]:
        centre, diameter = [float(v) for v in answer["center_mm"]], float(answer["diameter_mm"])
        if len(centre) != 3 or not all(map(math.isfinite, [*centre, diameter])) or diameter <= 0:
            raise ValueError(f"an answer of {raw['name']} has no valid position and size")
        answers.append({"center_mm": centre, "diameter_mm": diameter, "type": str(answer.get("type", ""))})
    name = str(raw["name"])
    if not name or name in (".", "..") or "/" in name:
        raise ValueError(f"case name {name!r}")
    return PackCase(name, str(raw["study_uid"]), answers, str(raw.get("notes", "")))


def _verified_blocks(archive: zipfile.ZipFile, name: str, digest: str) -> Iterator[bytes]:
    """The member in blocks of 1 MiB; PackError at the end when it does not match its checksum."""
    hasher = hashlib.sha256()
    with archive.open(name) as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(block)
            yield block
    if hasher.hexdigest() != digest:
        raise PackError(f"The pack was altered or damaged: {name} does not match its checksum")


def _teaching_copy(case: PackCase, folder: Path, secret: bytes, pack_id: str, cancel: CancelToken) -> PackCase:
    """Give the case's files (under folder/case.name) new study, series, instance and frame of
    reference UIDs, consistent within the case; the case as it will be stored."""
    pydicom = configured_pydicom()
    study_uid = _teaching_uid(secret, pack_id, case.name, "study", "")
    for path in sorted((folder / case.name).rglob("*")):
        cancel.check()
        if not path.is_file():
            continue
        try:
            dataset = pydicom.dcmread(path, force=True)
            dataset.StudyInstanceUID = study_uid
            for keyword in ("SeriesInstanceUID", "FrameOfReferenceUID", "SOPInstanceUID"):
                original = str(dataset.get(keyword, "") or "") or (path.relative_to(folder).as_posix()
                                                                    if keyword == "SOPInstanceUID" else "")
                setattr(dataset, keyword, _teaching_uid(secret, pack_id, case.name, keyword, original))
            dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
            dataset.save_as(path)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
            raise PackError(f"{path.relative_to(folder).as_posix()} in the pack is not a usable DICOM file: "
                            f"{exc}") from exc
    return PackCase(case.name, study_uid, case.answers, case.notes)


def _teaching_uid(secret: bytes, pack_id: str, case: str, kind: str, original: str) -> str:
    """A UID of the teaching copy: the same for the same pack, case and original, and keyed by
    this installation's secret, so no pack can be made to land on a UID chosen in advance."""
    digest = hmac.new(secret, f"teaching:{pack_id}:{case}:{kind}:{original}".encode(), hashlib.sha256).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
