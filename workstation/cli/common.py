"""What every command group shares: logging, the progress line, passwords, who is acting, the
review store and loading library series. It imports no command module (the groups import it).

Heavy modules (torch, scipy, the DICOM loader) are imported inside the functions that need
them, so that `workstation --help` and light commands start fast.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

from workstation.config import data_home
from workstation.errors import WorkstationError
from workstation.jobs import Job, Progress, run_job

log = logging.getLogger("workstation")


def setup_logging() -> Path:
    folder = data_home() / "logs"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # file names from patient media may hold any bytes (surrogates here): escaped, never an error
        handler: logging.Handler = logging.FileHandler(folder / "workstation.log", encoding="utf-8",
                                                       errors="backslashreplace")
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    return folder / "workstation.log"


def run_with_progress(job: Job) -> object:
    """Run a core job to its result, with a progress line when stderr is a terminal."""
    interactive = sys.stderr.isatty()

    def show(progress: Progress) -> None:
        if interactive:
            print(f"\r{progress.fraction:5.0%} {progress.message[:70]:<70}", end="", file=sys.stderr, flush=True)

    try:
        return run_job(job, show)
    finally:
        if interactive:
            print(file=sys.stderr)


def password(prompt: str) -> str:
    """From WORKSTATION_PASSWORD (scripts, tests) or asked without echo."""
    return os.environ.get("WORKSTATION_PASSWORD") or getpass.getpass(prompt)


def review_store():
    from workstation.review.store import ReviewStore

    return ReviewStore.in_home(data_home())


def acting_admin(store, args: argparse.Namespace):
    """The logged-in admin named by --as, or None while no account exists (the first one is made)."""
    from workstation.review.users import has_users, login

    if not has_users(store):
        return None
    if not args.actor:
        raise WorkstationError("Say which admin is acting: workstation users --as ADMIN ...")
    secret = os.environ.get("WORKSTATION_ADMIN_PASSWORD") or password(f"Password for {args.actor}: ")
    return login(store, args.actor, secret)


def exporter(store, actor: str | None) -> str:
    """The name an export is recorded under: the logged-in --as USER with the export permission
    (every export once accounts exist), else the operating-system account."""
    return acting_user(store, actor, "export").username


def os_account() -> str:
    """The operating-system account, as the record names it."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"os:uid{os.getuid()}"


def acting_user(store, actor: str | None, action: str):
    """Who does `action`: the account named by --as (password asked or from WORKSTATION_PASSWORD),
    its role checked in the core. Once any account exists, every command that reads or writes
    patient data, the record or the settings needs one. Before the first account, the
    installation is one person's: the operating-system account stands in, by that name in the
    audit trail (there is nobody to authenticate yet; the first account made is the admin)."""
    from workstation.review.users import has_users, installation_owner, login

    if actor:
        user = login(store, actor, password(f"Password for {actor}: "))
    elif has_users(store):
        raise WorkstationError(f"Say who does this: --as USER (recorded under that name; it needs the "
                               f"'{action.replace('_', ' ')}' permission)")
    else:
        user = installation_owner(store, os_account())
    user.require(action)
    return user


def load_library_series(library: object, row: dict):
    """The Volume of one library series (its largest readable series folder)."""
    from workstation.dicom.load import load_series_job, scan

    result = scan([library.series_folder(row)])  # type: ignore[attr-defined]
    if not result.series:
        raise WorkstationError(f"Series '{row['series_description']}' has no readable files left in the library")
    largest = max(result.series, key=lambda s: len(s.slices))
    return run_with_progress(load_series_job(largest))


def analysed_series(store, reference: str) -> tuple[object, dict]:
    """(library, series row): the series the AI ran on (the newest run), else the study's largest."""
    from workstation.library import StudyLibrary

    library = StudyLibrary(data_home())
    study = library.find_study(reference)
    series = library.series(study["key"])
    analysed = store.connection.execute("SELECT series_uid FROM analyses WHERE study_uid = ? ORDER BY id DESC",
                                        (study["study_uid"],)).fetchone()
    chosen = next((s for s in series if analysed and s["series_uid"] == analysed[0]), None)
    return library, chosen or max(series, key=lambda row: row["slices"])


def write_dicom_results(store, who: str, reference: str, out: Path):
    """The study's signed read as SR, SEG and encapsulated PDF files under `out` (audited exports)."""
    from workstation.config import read_settings
    from workstation.reporting.dicom_export import dicom_results_job

    library, series = analysed_series(store, reference)
    volume = load_library_series(library, series)
    sources = sorted(library.series_folder(series).glob("*.dcm"))  # type: ignore[attr-defined]
    return run_with_progress(dicom_results_job(store, volume, sources, out, exported_by=who,
                                               institution=read_settings(data_home()).get("institution", "")))


def load_library_study(reference: str):
    """The Volume of a library study's largest series (number from 'list', key or Study UID)."""
    from workstation.library import StudyLibrary

    library = StudyLibrary(data_home())
    study = library.find_study(reference)
    series = max(library.series(study["key"]), key=lambda row: row["slices"])
    return load_library_series(library, series)


def write_draft_report(store, analysis, volume, out: Path, who: str):
    """The draft PDF of a fresh analysis (analyze --report, the headless demo), exported by `who`."""
    from workstation.config import read_settings
    from workstation.reporting.study import draft_report_job

    result = run_with_progress(draft_report_job(store, analysis, volume, out, generated_by=who,
                                                institution=read_settings(data_home()).get("institution", "")))
    print_report_outcome(result)
    return result


def print_report_outcome(result) -> None:
    content = result.content
    kind = "DRAFT (not reviewed)" if content.draft else f"signed by {content.signer}"
    extra = f", {len(content.proposals)} AI proposal(s) awaiting review" if content.draft else ""
    print(f"Report {kind}: {len(content.findings)} accepted finding(s){extra}, Lung-RADS {content.lung_rads}. "
          f"Wrote {result.path} (sha256 {result.sha256[:12]}, recorded in the audit trail)")


def record_read(store, who: str, action: str, study_uid: str | None = None, **details) -> None:
    """Audit that `who` looked at patient data (a list, a study's description)."""
    from workstation.review import audit

    with store.transaction() as connection:
        audit.append(connection, who, action, study_uid=study_uid, details=details or None)
