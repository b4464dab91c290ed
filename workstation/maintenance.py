"""Looking after an installed workstation: an end-to-end self-check without a display, and
backup / restore of the data folder (SQLite online backup, so a backup taken while the app
runs is consistent).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

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
    """A consistent copy of the data folder under `destination/workstation-backup-TIME/`."""
    home = Path(home)
    if not (home / "review.db").is_file() and not (home / "library.db").is_file():
        raise MaintenanceError(f"There is no workstation data in {home} to back up")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = Path(destination) / f"workstation-backup-{stamp}"
    try:
        target.mkdir(parents=True)
        for name in DATABASES:
            if (home / name).is_file():
                _sqlite_backup(home / name, target / name)
        for entry in sorted(home.iterdir()):  # studies, heatmaps, models, settings; not logs or scratch
            if entry.name in DATABASES or entry.name.startswith(("review.db-", "library.db-")) or \
                    entry.name in ("logs", "previews", "demo-output"):
                continue
            if entry.is_dir():
                shutil.copytree(entry, target / entry.name)
            elif entry.is_file():
                shutil.copy2(entry, target / entry.name)
        files = {str(p.relative_to(target)): sha256_file(p) for p in sorted(target.rglob("*")) if p.is_file()}
        (target / MANIFEST).write_text(json.dumps({"version": __version__, "created_utc": stamp, "files": files},
                                                  indent=1))
    except (OSError, sqlite3.Error) as exc:
        raise MaintenanceError(f"The backup to {target} failed: {exc}; nothing in {home} was changed") from exc
    return target


def restore(backup_folder: Path, home: Path) -> int:
    """Copy a verified backup into an empty (or new) data folder; returns the number of files."""
    backup_folder, home = Path(backup_folder), Path(home)
    try:
        manifest = json.loads((backup_folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MaintenanceError(f"{backup_folder} is not a workstation backup (no readable {MANIFEST})") from exc
    for name, digest in manifest["files"].items():
        path = backup_folder / name
        if not path.is_file() or sha256_file(path) != digest:
            raise MaintenanceError(f"The backup is damaged: {name} is missing or changed; nothing was restored")
    if home.exists() and any(p.name != "logs" for p in home.iterdir()):
        raise MaintenanceError(f"{home} already holds data; restore into an empty folder (set WORKSTATION_HOME) "
                               "or move the current data away first")
    try:
        home.mkdir(parents=True, exist_ok=True)
        for name in manifest["files"]:
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(backup_folder / name, home / name)
    except OSError as exc:
        raise MaintenanceError(f"The restore into {home} failed: {exc}") from exc
    return len(manifest["files"])


def _sqlite_backup(source: Path, target: Path) -> None:
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reader, sqlite3.connect(target) as writer:
        reader.backup(writer)
    writer.close()
    reader.close()
