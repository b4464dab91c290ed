"""The `workstation` commands for the local study library: import, list, info."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from workstation.cli.common import (acting_user, load_library_series, log, record_read, review_store,
                                    run_with_progress)
from workstation.config import data_home
from workstation.errors import WorkstationError
from workstation.privacy import opaque_key


AS_HELP = "who is doing this (needed once accounts exist; asked for a password)"


def register(commands: argparse._SubParsersAction) -> None:
    imp = commands.add_parser("import", help="copy studies into the local library")
    imp.add_argument("paths", nargs="+", type=Path)
    imp.add_argument("--as", dest="actor", help=AS_HELP)
    imp.set_defaults(run=cmd_import)

    lst = commands.add_parser("list", help="list the studies in the local library")
    lst.add_argument("--json", action="store_true")
    lst.add_argument("--as", dest="actor", help=AS_HELP)
    lst.set_defaults(run=cmd_list)

    info = commands.add_parser("info", help="describe the CT series in a path or a library study")
    info.add_argument("target", help="a file, folder, .zip or DICOMDIR, or a study from 'workstation list'")
    info.add_argument("--json", action="store_true")
    info.add_argument("--as", dest="actor", help=AS_HELP + " (for a library study)")
    info.set_defaults(run=cmd_info)


def cmd_import(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary

    store = review_store()
    who = acting_user(store, args.actor, "view").username
    library = StudyLibrary(data_home())
    report = run_with_progress(library.import_job(args.paths))
    record_read(store, who, "imported", studies=len(report.studies), files=report.files_copied)
    log.info("import: %d file(s) copied, %d already present, %d skipped; series %s", report.files_copied,
             report.files_already_present, len(report.skipped), ", ".join(map(opaque_key, report.series)) or "none")
    print(f"Imported {len(report.studies)} study(ies), {len(report.series)} series: "
          f"{report.files_copied} file(s) copied, {report.files_already_present} already in the library.")
    for label, uid in report.shared_uids[:10]:
        print(f"  kept {label}, although another file has its SOPInstanceUID {uid} (check the source)")
    if len(report.shared_uids) > 10:
        print(f"  ... and {len(report.shared_uids) - 10} more files that share a SOPInstanceUID")
    for label, reason in report.skipped[:10]:
        print(f"  skipped {reason}")
    if len(report.skipped) > 10:
        print(f"  ... and {len(report.skipped) - 10} more skipped files")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary

    store = review_store()
    who = acting_user(store, args.actor, "view").username
    library = StudyLibrary(data_home())
    studies = library.studies()
    record_read(store, who, "library_listed", studies=len(studies))
    if args.json:
        for study in studies:
            study["series"] = library.series(study["key"])
        print(json.dumps(studies, indent=1))
        return 0
    if not studies:
        print("The library is empty; add studies with 'workstation import PATH'.")
    for number, study in enumerate(studies, 1):
        print(f"{number:3d}  {study['key'][:24]:<24}  {study['patient_name'] or '-':<24} {study['study_date'] or '-':<9}"
              f" {study['study_description'] or '-'}  ({study['series_count']} series)")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from workstation.dicom.load import load_series_job, scan

    target = Path(args.target)
    summaries: list[dict] = []
    skipped: list[tuple[str, str]] = []
    if target.exists():
        result = scan([target])
        skipped = result.skipped
        for series in result.series:
            summaries.append(_summary_or_error(lambda s=series: run_with_progress(load_series_job(s))))
        if not summaries:
            reason = f": {skipped[0][1]}" if skipped else ""
            raise WorkstationError(f"No CT series found in {target} ({len(skipped)} file(s) skipped{reason})")
    else:
        from workstation.library import StudyLibrary

        store = review_store()
        who = acting_user(store, args.actor, "view").username
        library = StudyLibrary(data_home())
        study = library.find_study(args.target)
        record_read(store, who, "study_viewed", study_uid=study["study_uid"])
        for row in library.series(study["key"]):
            summaries.append(_summary_or_error(lambda r=row: load_library_series(library, r)))
    if args.json:
        print(json.dumps({"series": summaries, "skipped": [{"file": f, "reason": r} for f, r in skipped]}, indent=1))
    else:
        for summary in summaries:
            _print_summary(summary)
        if skipped:
            print(f"{len(skipped)} file(s) skipped, e.g. {skipped[0][1]}")
    return 0


def _summary_or_error(load: Callable[[], object]) -> dict:
    try:
        return load().summary()  # type: ignore[attr-defined]
    except WorkstationError as exc:
        return {"error": str(exc)}


def _print_summary(summary: dict) -> None:
    if "error" in summary:
        print(f"series could not be loaded: {summary['error']}\n")
        return
    ids, meta = summary["identifiers"], summary["metadata"]
    print(f"Series {meta['series_number'] or '?'} '{meta['series_description']}'  UID {ids['series_uid']}"
          f"{' (derived: file UIDs empty)' if ids['uids_derived'] else ''}")
    print(f"  patient      {ids['patient_name'] or '-'} ({ids['patient_id'] or '-'}), study {ids['study_uid']}")
    print(f"  shape        {summary['shape']} (slices, rows, columns)")
    print(f"  spacing_mm   {summary['spacing_mm']} (column, row, slice)")
    print(f"  orientation  {summary['orientation']}")
    print(f"  hu_range     {summary['hu_range']}")
    print("  affine       " + "\n               ".join(str([round(v, 3) for v in row]) for row in summary["affine"]))
    print(f"  scanner      {meta['manufacturer'] or '-'} {meta['model']}, kernel {meta['kernel'] or '-'}, "
          f"{meta['slice_thickness'] or '-'} mm, {meta['kvp'] or '-'} kVp")
    for warning in summary["warnings"]:
        print(f"  warning      {warning}")
    print()
