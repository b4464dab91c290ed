"""The `workstation` commands that let a read leave the workstation: report, export, settings,
and the report step of `analyze --report` and the headless demo.

Who exports is recorded in the audit trail. Exporting a stored read (report, export) needs a
login when accounts exist (`--as USER`, password asked or from WORKSTATION_PASSWORD); a draft
made straight from input files (analyze --report, the headless demo) discloses nothing from
the store, so without --as it is recorded under the operating-system account.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from workstation.config import KNOWN_SETTINGS, data_home, read_settings, write_setting
from workstation.errors import WorkstationError


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="write the PDF report of a library study (draft until signed)")
    report.add_argument("study", help="a study from 'workstation list' (number, key or Study UID)")
    report.add_argument("--out", type=Path, required=True, metavar="FILE.pdf")
    report.add_argument("--as", dest="actor", help="the reader exporting (needed once accounts exist)")
    report.set_defaults(run=cmd_report)

    export = commands.add_parser("export", help="write a study's findings, decisions, readers and model identity")
    export.add_argument("study", help="a study from 'workstation list' (number, key or Study UID)")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--json", dest="format", action="store_const", const="json")
    fmt.add_argument("--csv", dest="format", action="store_const", const="csv")
    export.add_argument("--out", type=Path, help="file to write (default: print)")
    export.add_argument("--as", dest="actor", help="the reader exporting (needed once accounts exist)")
    export.set_defaults(run=cmd_export)

    settings = commands.add_parser("settings", help="show or change the clinic's settings (e.g. institution)")
    settings.add_argument("name", nargs="?", choices=sorted(KNOWN_SETTINGS))
    settings.add_argument("value", nargs="?")
    settings.set_defaults(run=cmd_settings)


def exporter(store, actor: str | None, *, stored_read: bool) -> str:
    """The name an export is recorded under (see the module docstring)."""
    from workstation.cli import _password
    from workstation.review.users import has_users, login

    if actor:
        user = login(store, actor, _password(f"Password for {actor}: "))
        user.require("export")
        return user.username
    if stored_read and has_users(store):
        raise WorkstationError("Say who is exporting: --as USER (the export is recorded under that name)")
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"os:uid{os.getuid()}"


def cmd_report(args: argparse.Namespace) -> int:
    from workstation.cli import _review_store, _run_with_progress
    from workstation.reporting.study import study_report_job

    store = _review_store()
    who = exporter(store, args.actor, stored_read=True)
    volume = _analysed_volume(store, args.study)
    result = _run_with_progress(study_report_job(store, volume, args.out, generated_by=who,
                                                 institution=read_settings(data_home()).get("institution", "")))
    print_report_outcome(result)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    import sys
    import tempfile

    from workstation.cli import _review_store
    from workstation.library import StudyLibrary
    from workstation.reporting.study import export_decisions

    store = _review_store()
    who = exporter(store, args.actor, stored_read=True)
    study = StudyLibrary(data_home()).find_study(args.study)
    if args.out:
        export_decisions(store, study["study_uid"], args.out, args.format, exported_by=who)
        print(f"Wrote {args.out}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as folder:  # printed, but audited like a file
        path = export_decisions(store, study["study_uid"], Path(folder) / f"export.{args.format}", args.format,
                                exported_by=who)
        sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    home = data_home()
    if args.name and args.value is not None:
        write_setting(home, args.name, args.value)
    values = read_settings(home)
    for name, meaning in KNOWN_SETTINGS.items():
        print(f"{name} = {values.get(name, '(not set)')}    # {meaning}")
    return 0


def write_draft_report(store, analysis, volume, out: Path, actor: str | None = None):
    """The draft PDF of a fresh analysis (analyze --report, the headless demo)."""
    from workstation.cli import _run_with_progress
    from workstation.reporting.study import draft_report_job

    who = exporter(store, actor, stored_read=False)
    result = _run_with_progress(draft_report_job(store, analysis, volume, out, generated_by=who,
                                                 institution=read_settings(data_home()).get("institution", "")))
    print_report_outcome(result)
    return result


def print_report_outcome(result) -> None:
    content = result.content
    kind = "DRAFT (not reviewed)" if content.draft else f"signed by {content.signer}"
    extra = f", {len(content.proposals)} AI proposal(s) awaiting review" if content.draft else ""
    print(f"Report {kind}: {len(content.findings)} accepted finding(s){extra}, Lung-RADS {content.lung_rads}. "
          f"Wrote {result.path} (sha256 {result.sha256[:12]}, recorded in the audit trail)")


def _analysed_volume(store, reference: str):
    """The library series the AI ran on (the newest run), else the study's largest series."""
    from workstation.cli import _load_library_series
    from workstation.library import StudyLibrary

    library = StudyLibrary(data_home())
    study = library.find_study(reference)
    series = library.series(study["key"])
    analysed = store.connection.execute("SELECT series_uid FROM analyses WHERE study_uid = ? ORDER BY id DESC",
                                        (study["study_uid"],)).fetchone()
    chosen = next((s for s in series if analysed and s["series_uid"] == analysed[0]), None)
    return _load_library_series(library, chosen or max(series, key=lambda row: row["slices"]))
