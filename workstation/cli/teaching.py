"""The `workstation` commands for trainers: deidentify, pack export|import, quiz scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workstation.cli.common import acting_user, exporter, log, password, review_store, run_with_progress
from workstation.config import data_home
from workstation.privacy import opaque_key


def register(commands: argparse._SubParsersAction) -> None:
    deid = commands.add_parser("deidentify", help="write a de-identified copy of DICOM files (PS3.15 Basic Profile)")
    deid.add_argument("source", type=Path)
    deid.add_argument("out", type=Path)
    deid.add_argument("--allow-burned-in", action="store_true",
                      help="also images that may show identifying text in their pixels (recorded in the audit)")
    deid.add_argument("--remove-dates", action="store_true", help="remove dates instead of shifting them")
    deid.add_argument("--remove-characteristics", action="store_true", help="remove age, sex, size and weight too")
    deid.add_argument("--clean-descriptors", action=argparse.BooleanOptionalAction, default=False,
                      help="keep descriptions, comments and protocol names, cleaned to words known to carry no "
                           "identity (default: removed, as the Basic Profile says)")
    deid.add_argument("--as", dest="actor", help="who de-identifies (default: the OS account)")
    deid.set_defaults(run=cmd_deidentify)

    pack = commands.add_parser("pack", help="teaching packs: de-identified studies with answer keys")
    pack_commands = pack.add_subparsers(metavar="ACTION", required=True)
    export = pack_commands.add_parser("export", help="write a pack of library studies")
    export.add_argument("studies", nargs="+", help="studies from 'workstation list'")
    export.add_argument("--out", type=Path, required=True, metavar="PACK.zip")
    export.add_argument("--notes", default="", help="the trainer's notes for the cases")
    export.add_argument("--as", dest="actor", help="the trainer exporting (needed once accounts exist)")
    export.add_argument("--clean-descriptors", action=argparse.BooleanOptionalAction, default=True,
                        help="keep descriptions such as 'CT CHEST W CONTRAST', cleaned to words known to carry no "
                             "identity (default); --no-clean-descriptors removes them")
    export.set_defaults(run=cmd_pack_export)
    imp = pack_commands.add_parser("import", help="verify a pack and add its cases to the library")
    imp.add_argument("pack", type=Path)
    imp.add_argument("--as", dest="actor", help="who imports (default: the OS account)")
    imp.set_defaults(run=cmd_pack_import)

    quiz = commands.add_parser("quiz-scores", help="every trainee's quiz attempts as CSV (trainers)")
    quiz.add_argument("--as", dest="actor", required=True, help="the trainer (admin or radiologist)")
    quiz.add_argument("--out", type=Path)
    quiz.set_defaults(run=cmd_quiz_scores)


def _options(args: argparse.Namespace):
    from workstation.dicom.deidentify import DeidOptions

    return DeidOptions(retain_patient_characteristics=not getattr(args, "remove_characteristics", False),
                       modified_dates=not getattr(args, "remove_dates", False),
                       clean_descriptors=getattr(args, "clean_descriptors", False),
                       allow_burned_in=getattr(args, "allow_burned_in", False))


def cmd_deidentify(args: argparse.Namespace) -> int:
    from workstation.dicom.deidentify import deidentify_job, installation_secret
    from workstation.review import audit

    store = review_store()
    who = exporter(store, args.actor)
    summary = run_with_progress(deidentify_job([args.source], args.out, installation_secret(data_home()),
                                                _options(args)))
    with store.transaction() as connection:
        audit.append(connection, who, "deidentified", new_value={
            "out": str(args.out.resolve()), "files": summary.files, "override_burned_in": args.allow_burned_in,
            "overridden_files": len(summary.overridden)})
    log.info("deidentify: %d file(s) into series %s", summary.files,
             ", ".join(opaque_key(uid) for uid in sorted(summary.series)) or "none")
    print(f"Wrote {summary.files} de-identified file(s) in {len(summary.series)} series to {args.out}")
    if summary.overridden:
        print(f"WARNING: {len(summary.overridden)} image(s) may show identifying text in their pixels "
              "(override recorded in the audit trail); check them before sharing")
    if summary.removed_undecided:
        print(f"Removed attributes no rule decided: {', '.join(sorted(summary.removed_undecided))}")
    if summary.removed_overlong:
        print(f"Removed values longer than DICOM allows: {', '.join(sorted(summary.removed_overlong))}")
    return 0


def cmd_pack_export(args: argparse.Namespace) -> int:
    from workstation.dicom.deidentify import TEACHING_OPTIONS, DeidOptions
    from workstation.teaching.pack import export_pack_job

    store = review_store()
    who = exporter(store, args.actor)
    options = TEACHING_OPTIONS if args.clean_descriptors else DeidOptions()
    path = run_with_progress(export_pack_job(data_home(), store, args.studies, args.out, notes=args.notes,
                                              created_by=who, options=options))
    print(f"Wrote the teaching pack {path} ({len(args.studies)} case(s)); recorded in the audit trail")
    return 0


def cmd_pack_import(args: argparse.Namespace) -> int:
    from workstation.teaching.pack import import_pack_job

    store = review_store()
    who = acting_user(store, args.actor, "view").username
    cases = run_with_progress(import_pack_job(args.pack, data_home(), store, imported_by=who))
    for case in cases:
        print(f"{case.name}: {len(case.answers)} answer(s) in the key; open it in the viewer for the quiz")
    return 0


def cmd_quiz_scores(args: argparse.Namespace) -> int:
    from workstation.review.users import login
    from workstation.teaching.quiz import quiz_scores_csv

    store = review_store()
    trainer = login(store, args.actor, password(f"Password for {args.actor}: "))
    text = quiz_scores_csv(store, trainer)
    if args.out:
        args.out.write_text(text)
        print(f"Wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
