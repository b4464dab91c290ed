"""Looking after an installed workstation: an end-to-end self-check without a display, and
backup / restore of the data folder (SQLite online backup, so a backup taken while the app
runs is consistent).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from workstation import __version__
from workstation.errors import WorkstationError
from workstation.files import sha256_file
from workstation.jobs import CancelToken, Job, Progress

DATABASES = ("review.db", "library.db")
MANIFEST = "backup-manifest.json"


class MaintenanceError(WorkstationError):
    """A backup or restore cannot be done (destination not empty, checksum mismatch, ...)."""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def check_job(home: Path, out: Path, cancel: CancelToken | None = None) -> Job[list[Check]]:
    """Version, device (and an estimate), model bundles, fonts, the clinic's databases, then the
    demo case through the whole pipeline into a draft PDF. The demo runs in `out`, never in the
    clinic's data folder, which is only read."""
    from workstation.inference.device import choose_device, describe_device
    from workstation.inference.estimate import estimate_inference_seconds
    from workstation.inference.registry import list_models
    from workstation.reporting.fonts import FILES, FONT_FOLDER

    cancel = cancel or CancelToken()
    checks = [Check("version", True, f"workstation {__version__}, Python {platform.python_version()}, "
                                     f"{platform.system()} {platform.machine()}")]
    yield Progress(1, 6, "Models and device")
    entries = list_models()
    usable = [e.bundle for e in entries if e.bundle]
    for entry in entries:
        checks.append(Check(f"model {entry.folder.name}", entry.bundle is not None,
                            f"{entry.bundle.name} {entry.bundle.version}, weights sha256 "
                            f"{entry.bundle.weights_sha256[:12]} verified" if entry.bundle else entry.reason))
    if not entries:
        checks.append(Check("models", False, "no model bundle found"))
    device = choose_device("auto")
    estimate = f", about {estimate_inference_seconds(usable[0], device):.0f} s per chest CT" if usable else ""
    checks.append(Check("device", True, f"AI runs on {describe_device(device)}{estimate}"))
    missing = [file for file in FILES.values() if not (FONT_FOLDER / file).is_file()]
    checks.append(Check("report fonts", not missing, f"missing {', '.join(missing)}" if missing
                        else f"{len(FILES)} fonts in {FONT_FOLDER}"))
    cancel.check()
    yield Progress(2, 6, "Data folder")
    checks += verify_data_folder(home)
    cancel.check()
    if usable:
        pdf = yield from _demo_pipeline(out, usable[0], cancel)
        checks.append(Check("demo case to PDF", True, f"draft report written to {pdf}"))
    return checks


def verify_data_folder(home: Path) -> list[Check]:
    """Writable, databases intact, audit chain unbroken; read-only, nothing is migrated or changed."""
    from workstation.review.audit import verify

    home = Path(home)
    checks = []
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-probe"
        probe.write_bytes(b"ok")
        probe.unlink()
        checks.append(Check("data folder", True, f"{home} is writable"))
    except OSError as exc:
        checks.append(Check("data folder", False, f"{home} is not writable: {exc.strerror or exc}"))
    for name in DATABASES:
        if not (home / name).is_file():
            continue
        try:
            with sqlite3.connect(f"file:{home / name}?mode=ro", uri=True) as connection:
                ok = connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                checks.append(Check(name, ok, "integrity ok" if ok else "integrity check FAILED"))
                if name == "review.db":
                    result = verify(connection)
                    checks.append(Check("audit trail", result.ok, f"{result.rows} rows, chain verified" if result.ok
                                        else f"BROKEN at row {result.first_bad_seq}: {result.reason}"))
            connection.close()
        except sqlite3.Error as exc:
            checks.append(Check(name, False, f"cannot be read: {exc}"))
    return checks


def _demo_pipeline(out: Path, bundle, cancel: CancelToken) -> Job[Path]:
    from workstation.demo import ensure_demo_case
    from workstation.dicom.load import load_largest_series_job
    from workstation.inference.runner import run_inference_job
    from workstation.reporting.study import draft_report_job
    from workstation.review.store import ReviewStore

    scratch = Path(out) / "check-data"
    yield Progress(3, 6, "Demo case")
    folder = ensure_demo_case(scratch)
    volume = yield from load_largest_series_job([folder], cancel)
    yield Progress(4, 6, "AI on the demo case")
    analysis = yield from run_inference_job(volume, bundle, cancel=cancel)
    yield Progress(5, 6, "Draft report")
    store = ReviewStore.in_home(scratch)
    try:
        result = yield from draft_report_job(store, analysis, volume, Path(out) / "check-report.pdf",
                                             generated_by="check", cancel=cancel)
    finally:
        store.close()
    if not result.path.read_bytes().startswith(b"%PDF") or not analysis.findings:
        raise WorkstationError("The demo case did not produce findings and a PDF; see the log")
    return result.path


def backup(home: Path, destination: Path) -> Path:
    """A consistent copy of the data folder under `destination/workstation-backup-TIME/`, with a
    manifest of checksums and the audit chain head (seq, hash) it holds."""
    home = Path(home)
    if not (home / "review.db").is_file() and not (home / "library.db").is_file():
        raise MaintenanceError(f"There is no workstation data in {home} to back up")
    if Path(destination).resolve().is_relative_to(home.resolve()):  # it would copy itself into itself
        raise MaintenanceError(f"{destination} is inside the data folder {home}; back up to another disk or "
                               "folder (nothing was written)")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = Path(destination) / f"workstation-backup-{stamp}"
    try:
        target.mkdir(parents=True)
    except OSError as exc:
        raise MaintenanceError(f"Cannot create {target}: {exc.strerror or exc}; choose another destination") from exc
    try:
        for name in DATABASES:
            if (home / name).is_file():
                _sqlite_backup(home / name, target / name)
        for entry in sorted(home.iterdir()):  # studies, heatmaps, models, settings; not logs or scratch
            if entry.name in DATABASES or entry.name.startswith(("review.db-", "library.db-")) or \
                    entry.name in ("logs", "previews", "demo-output") or entry.is_symlink():
                continue
            if entry.is_dir():  # links are left out: nothing in a backup may point outside it
                shutil.copytree(entry, target / entry.name, ignore=_links)
            elif entry.is_file():
                shutil.copy2(entry, target / entry.name)
        files = {p.relative_to(target).as_posix(): sha256_file(p) for p in sorted(target.rglob("*")) if p.is_file()}
        (target / MANIFEST).write_text(json.dumps({"version": __version__, "created_utc": stamp,
                                                   "audit_head": _audit_head(target / "review.db"), "files": files},
                                                  indent=1))
    except (OSError, sqlite3.Error) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise MaintenanceError(f"The backup to {target} failed: {exc}; nothing in {home} was changed and the "
                               "partial copy was removed") from exc
    return target


def restore(backup_folder: Path, home: Path) -> int:
    """Copy a verified backup into an empty (or new) data folder; returns the number of files.

    Every manifest path is checked before anything is written; the files are copied into a
    staging folder inside the target, their checksums and the review store's audit chain are
    verified there, and only then are they moved into place. A refusal leaves the target as it was."""
    backup_folder, home = Path(backup_folder), Path(home)
    manifest = _read_manifest(backup_folder)
    names = list(manifest["files"])
    sources = [_inside(backup_folder, name) for name in names]
    if home.exists() and any(p.name != "logs" for p in home.iterdir()):
        raise MaintenanceError(f"{home} already holds data; restore into an empty folder (set WORKSTATION_HOME) "
                               "or move the current data away first")
    created = not home.exists()
    try:
        home.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
    except OSError as exc:
        raise MaintenanceError(f"The restore into {home} failed: {exc.strerror or exc}") from exc
    try:
        for name, source in zip(names, sources):
            copy = staging.joinpath(*PurePosixPath(name).parts)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy)
            if sha256_file(copy) != manifest["files"][name]:  # the copy is checked, not the medium
                raise MaintenanceError(f"The backup is damaged: {name} is missing or changed; nothing was restored")
        _verify_staged_store(staging, manifest.get("audit_head"))
        for entry in sorted(staging.iterdir()):
            entry.rename(home / entry.name)
    except OSError as exc:
        raise MaintenanceError(f"The restore into {home} failed: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not any(home.iterdir()):
            home.rmdir()
    return len(names)


def _read_manifest(backup_folder: Path) -> dict:
    try:
        manifest = json.loads((backup_folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MaintenanceError(f"{backup_folder} is not a workstation backup (no readable {MANIFEST})") from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise MaintenanceError(f"The manifest of {backup_folder} is damaged (no list of files); nothing was restored")
    return manifest


def _inside(root: Path, name: str) -> Path:
    """`root/name`, refusing a name or link that leads outside `root` (or onto the target's logs)."""
    parts = PurePosixPath(name).parts
    path = root.joinpath(*parts)
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts or "\x00" in name or parts[0] == "logs" \
            or path.resolve() != root.resolve().joinpath(*parts):
        raise MaintenanceError(f"The backup names a path that leads outside it ({name!r}); refused, nothing was "
                               "restored")
    if not path.is_file():
        raise MaintenanceError(f"The backup is damaged: {name} is missing or changed; nothing was restored")
    return path


def _verify_staged_store(staging: Path, recorded_head: object) -> None:
    """Integrity of every copied database and the review store's audit chain, before anything is
    switched in; the chain must also end where the manifest says the backup's chain ended."""
    from workstation.review.anchors import anchors_in_log
    from workstation.review.audit import verify

    for name in DATABASES:
        if not (staging / name).is_file():
            continue
        try:  # immutable: the staged copy is read as it is, no journal or lock files are made beside it
            connection = sqlite3.connect(f"file:{staging / name}?immutable=1", uri=True)
            try:
                intact = connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                result = verify(connection, anchors_in_log(staging / name)) if name == "review.db" and intact \
                    else None
            finally:
                connection.close()
        except sqlite3.Error as exc:
            raise MaintenanceError(f"The backup's {name} cannot be read ({exc}); nothing was restored") from exc
        if not intact:
            raise MaintenanceError(f"The backup's {name} is damaged (integrity check failed); nothing was restored")
        if result is not None and not result.ok:
            raise MaintenanceError(f"The backup's audit trail does not verify (row {result.first_bad_seq}: "
                                   f"{result.reason}); the records were changed, nothing was restored")
        if result is not None and recorded_head is not None and \
                recorded_head != {"seq": result.rows, "hash": result.head}:
            raise MaintenanceError(f"The backup's audit trail ends at row {result.rows}, not where its manifest says "
                                   f"({recorded_head}); nothing was restored")


def _audit_head(review_db: Path) -> dict | None:
    """(seq, hash) of the backed-up chain, the anchor `audit verify --backup` can check against."""
    from workstation.review.audit import head

    if not review_db.is_file():
        return None
    connection = sqlite3.connect(f"file:{review_db}?mode=ro", uri=True)
    try:
        seq, digest = head(connection)
    finally:
        connection.close()
    return {"seq": seq, "hash": digest}


def _links(folder: str, names: list[str]) -> set[str]:
    return {name for name in names if os.path.islink(os.path.join(folder, name))}


def _sqlite_backup(source: Path, target: Path) -> None:
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader, sqlite3.connect(target) as writer:
        reader.backup(writer)
    writer.close()
    reader.close()
