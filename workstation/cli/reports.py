"""The `workstation` commands that let a read leave the workstation: report, export, results
(DICOM SR/SEG/PDF), settings.

Who exports is recorded in the audit trail (`common.exporter` says under which name).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from workstation.cli.common import (acting_user, analysed_series, exporter, load_library_series, log,
                                    print_report_outcome, review_store, run_with_progress, write_dicom_results)
from workstation.config import KNOWN_SETTINGS, data_home, read_settings
from workstation.privacy import opaque_key


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

    results = commands.add_parser("results", help="write a signed read as DICOM: SR (TID 1500), SEG and PDF")
    results.add_argument("study", help="a study from 'workstation list' (number, key or Study UID)")
    results.add_argument("--out", type=Path, required=True, metavar="FOLDER")
    results.add_argument("--as", dest="actor", help="the reader exporting (needed once accounts exist)")
    results.set_defaults(run=cmd_results)

    settings = commands.add_parser("settings", help="show or change the clinic's settings (e.g. institution)")
    settings.add_argument("name", nargs="?", choices=sorted(KNOWN_SETTINGS))
    settings.add_argument("value", nargs="?")
    settings.add_argument("--as", dest="actor", help="who (an admin to change a setting; needed once accounts exist)")
    settings.set_defaults(run=cmd_settings)


def cmd_report(args: argparse.Namespace) -> int:
    from workstation.reporting.study import report_prior_volume_job, study_report_job

    store = review_store()
    who = exporter(store, args.actor)
    library, series = analysed_series(store, args.study)
    volume = load_library_series(library, series)
    # the prior compared with, for key images of both time points
    prior_volume = run_with_progress(report_prior_volume_job(store, library, volume.metadata.study_uid))
    result = run_with_progress(study_report_job(store, volume, args.out, generated_by=who,
                                                 institution=read_settings(data_home()).get("institution", ""),
                                                 prior_volume=prior_volume))
    log.info("report: study %s, series %s, %s", opaque_key(volume.metadata.study_uid),
             opaque_key(volume.metadata.series_uid), "draft" if result.content.draft else "signed")
    print_report_outcome(result)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary
    from workstation.reporting.study import export_decisions

    store = review_store()
    who = exporter(store, args.actor)
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


def cmd_results(args: argparse.Namespace) -> int:
    store = review_store()
    written = write_dicom_results(store, exporter(store, args.actor), args.study, args.out)
    for kind, path in written.files.items():
        print(f"{kind.upper():<4} {path}")
    print(f"{written.findings} accepted finding(s) in the SR" + (" and the SEG." if written.findings else "."))
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from workstation.review.settings_change import change_setting

    home = data_home()
    store = review_store()
    changing = bool(args.name and args.value is not None)
    user = acting_user(store, args.actor, "administer" if changing else "view")
    if changing:
        change_setting(store, home, user, args.name, args.value)
    values = read_settings(home)
    for name, meaning in KNOWN_SETTINGS.items():
        print(f"{name} = {values.get(name, '(not set)')}    # {meaning}")
    return 0

