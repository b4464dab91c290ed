"""`workstation priors STUDY` and `workstation compare CURRENT PRIOR`: the patient's earlier
studies, and each nodule matched across time with its growth and doubling time (issue #24).
`--record` keeps the comparison with the current read (its report's Comparison section);
`--pair`, `--unpair` and `--status` are the reader's corrections, recorded and audited too."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from workstation.cli.common import (acting_user, analysed_series, load_library_series, password, record_read,
                                    review_store, run_with_progress)
from workstation.config import data_home
from workstation.errors import WorkstationError

AS_HELP = "who is doing this (needed once accounts exist; asked for a password)"


def register(commands: argparse._SubParsersAction) -> None:
    priors = commands.add_parser("priors", help="the same patient's earlier studies in the library")
    priors.add_argument("study")
    priors.add_argument("--pacs", metavar="NODE", help="also the patient's earlier CT studies on this DICOM node "
                        "(C-FIND, or QIDO-RS with --via web), marked when the library lacks them")
    priors.add_argument("--via", choices=("dimse", "web"), default="dimse")
    priors.add_argument("--as", dest="actor", help=AS_HELP)
    priors.set_defaults(run=cmd_priors)
    compare = commands.add_parser("compare", help="match nodules with a prior study: growth, doubling time")
    compare.add_argument("current", help="the current study (from 'workstation list')")
    compare.add_argument("prior", nargs="?", help="the prior study (default: the most recent earlier one)")
    compare.add_argument("--json", type=Path, dest="json_out", metavar="OUT")
    compare.add_argument("--record", action="store_true",
                         help="record the comparison for the current read (its report gets a Comparison section)")
    compare.add_argument("--pair", action="append", metavar="CURRENT=PRIOR",
                         help="the reader pairs current finding CURRENT with the prior's finding PRIOR (with --record)")
    compare.add_argument("--unpair", action="append", metavar="CURRENT",
                         help="current finding CURRENT is not the same nodule as any prior one (with --record)")
    compare.add_argument("--status", action="append", metavar="CURRENT=STATUS",
                         help="the reader calls a pair stable, growing or shrinking (with --record)")
    compare.add_argument("--reason", help="why, when the read is already signed (the record is then an addendum)")
    compare.add_argument("--as", dest="actor", help=AS_HELP)
    compare.set_defaults(run=cmd_compare)


def cmd_priors(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary
    from workstation.review.comparison import priors_of

    store = review_store()
    who = acting_user(store, args.actor, "view").username
    library = StudyLibrary(data_home())
    study = library.find_study(args.study)
    earlier, warnings = priors_of(library, study)
    record_read(store, who, "library_listed", study_uid=study["study_uid"], priors=len(earlier))
    if not earlier:
        print("No earlier study of this patient in the library.")
    for number, prior in enumerate(earlier, 1):
        mark = "  (offered)" if number == 1 else ""
        print(f"{number:3d}  {prior['study_date'] or '-':<9} {prior['study_description'] or '-'}  "
              f"{prior['study_uid']}{mark}")
    if args.pacs:
        warnings += _print_pacs_priors(args, library, study, store, who)
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


def _print_pacs_priors(args: argparse.Namespace, library, study: dict, store, who: str) -> list[str]:
    """The node's earlier CT studies of the patient (the search audited as `pacs find` is); those
    the library lacks come with the command that retrieves them. Returns the node's warnings."""
    from workstation.network.nodes import load_nodes
    from workstation.network.priors import pacs_priors

    book = load_nodes(data_home())
    node = book.node(args.pacs)
    held = {s["study_uid"] for s in library.studies()}
    found, warnings = pacs_priors(node, book.local_ae, study, held, args.via)
    record_read(store, who, "library_listed", source=f"pacs:{node.name}", study_uid=study["study_uid"],
                priors=len(found))
    if not found:
        print(f"No earlier CT study of this patient on {node.name}.")
    for match in found:
        where = ("in the library" if match["in_library"] else
                 f"retrieve: workstation pacs retrieve {node.name} --study {match['StudyInstanceUID']}")
        print(f"{node.name}: {match['StudyDate'] or '-':<9} {match['StudyDescription'] or '-'}  "
              f"{match['StudyInstanceUID']}  ({where})")
    return warnings


def _edits(args: argparse.Namespace) -> list:
    """--pair C=P, --unpair C and --status C=S as the reader's edits (finding numbers)."""
    from workstation.review.comparison import ReaderEdit

    def numbers(text: str, what: str) -> tuple[int, str]:
        left, _, right = text.partition("=")
        if not left.strip().isdigit() or (what != "unpair" and not right.strip()):
            raise WorkstationError(f"--{what} {text!r}: write " + {"pair": "CURRENT=PRIOR, e.g. 3=2",
                                                                    "unpair": "the current finding's number, e.g. 3",
                                                                    "status": "CURRENT=STATUS, e.g. 3=stable"}[what])
        return int(left), right.strip()

    edits = []
    for text in args.pair or ():
        current, prior = numbers(text, "pair")
        if not prior.isdigit():
            raise WorkstationError(f"--pair {text!r}: the prior's finding number must be a number, e.g. 3=2")
        edits.append(ReaderEdit("pair", current, int(prior)))
    edits += [ReaderEdit("unpair", numbers(text, "unpair")[0]) for text in args.unpair or ()]
    for text in args.status or ():
        current, status = numbers(text, "status")
        edits.append(ReaderEdit("status", current, status=status))
    return edits


def cmd_compare(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary
    from workstation.reporting.lungrads_comparison import EDITION, suggest_with_comparison
    from workstation.review.comparison_record import (compare_job, current_nodules, record_comparison,
                                                      recorded_comparison)
    from workstation.review.comparison import priors_of
    from workstation.review.same_patient import PatientIdentity, check_same_patient

    edits = _edits(args)
    if (edits or args.reason) and not args.record:
        raise WorkstationError("A reader's correction of the matching is recorded: add --record --as USER")
    store = review_store()
    session = _reading_session(store, args) if args.record else None
    if session is not None and session.signed and not (args.reason or "").strip():
        raise WorkstationError("This read is signed and stays as signed: a comparison recorded now is an addendum; "
                               "say why with --reason WHY")
    who = session.user.username if session else acting_user(store, args.actor, "view").username
    library = StudyLibrary(data_home())
    current = library.find_study(args.current)
    earlier, warnings = priors_of(library, current)
    if args.prior:
        prior = library.find_study(args.prior)
        patient = check_same_patient(PatientIdentity.from_study(current), PatientIdentity.from_study(prior),
                                     f"The prior of {prior['study_date'] or 'unknown date'}")
        if not patient.same:
            raise WorkstationError(patient.refusal)
        warnings += [w for w in patient.warnings if w not in warnings]  # said once, as priors_of says it
    elif earlier:
        prior = earlier[0]
    else:
        raise WorkstationError("No earlier study of this patient in the library; import it or name it")
    recorded = recorded_comparison(store, current["study_uid"])
    if recorded is not None and recorded.prior.study_uid != prior["study_uid"]:
        recorded = None  # another prior: nothing to carry over
    if recorded is not None and edits:
        # a correction of the recorded matching: its registration stands, no second alignment
        comparison = recorded.with_edits(edits)
        print("The recorded alignment is reused for the corrected matching.")
    else:
        current_volume = load_library_series(*analysed_series(store, current["key"]))
        prior_volume = load_library_series(*analysed_series(store, prior["key"]))
        comparison = run_with_progress(compare_job(store, current_volume, prior_volume,
                                                   recorded.edits if recorded else ()))
        comparison = comparison.with_edits(edits)
    pairs, not_applied = comparison.matched(current_nodules(store, current["study_uid"]))
    suggestion = suggest_with_comparison(pairs, comparison.days)
    if session is not None:
        comparison = record_comparison(session, comparison, reason=args.reason or "")
    else:
        record_read(store, who, "study_viewed", study_uid=current["study_uid"], compared_with=prior["study_uid"])
    registration = comparison.registration
    print(f"Compared with the prior of {prior['study_date']} ({comparison.days} days earlier); "
          f"{registration.statement}.")
    print(f"Matched against {comparison.prior_source_text}.")
    print(f"Lung-RADS suggestion with comparison: {suggestion.category} ({suggestion.rule}; {EDITION}).")
    for warning in [*warnings, *not_applied]:
        print(f"warning: {warning}")
    for pair in pairs:
        print("  " + _pair_line(pair))
    if comparison.id is not None:
        kind = " as an addendum to the signed read" if comparison.after_signing else ""
        print(f"Recorded for the read{kind} by {who} (comparison {comparison.id}); the report's Comparison section "
              "shows it.")
    if args.json_out:
        args.json_out.write_text(json.dumps({
            "current": current["study_uid"], "prior": prior["study_uid"], "days": comparison.days,
            "registration": {"prior_to_current": registration.prior_to_current.round(6).tolist(),
                             "lung_overlap": registration.lung_overlap, "quality": registration.quality,
                             "statement": registration.statement},
            "prior_findings": comparison.prior_source, "edits": [e.to_dict() for e in comparison.edits],
            "recorded": comparison.id, "warnings": [*warnings, *not_applied],
            "nodules": [pair.as_dict() for pair in pairs],
            "lung_rads": {**suggestion.to_dict(), "edition": EDITION}}, indent=1), encoding="utf-8")
    return 0


def _pair_line(pair) -> str:
    now, then = pair.current, pair.prior
    name = f"#{now.number}" if now else f"prior #{then.number}"
    partner = f" (prior #{then.number})" if now and then else ""
    sizes = " -> ".join(f"{f.diameter_mm:.1f} mm" for f in (then, now) if f is not None)
    growth = ""
    if pair.volume_change is not None:
        growth = f", volume x{pair.volume_change:.2f}"
    if pair.doubling_days is not None:
        fast, slow = pair.doubling_range_days
        slow_text = "not told from stable" if slow == float("inf") else f"{slow:.0f}"
        growth += f", doubling time {pair.doubling_days:.0f} days ({fast:.0f} to {slow_text})"
    by_reader = "  (set by the reader)" if pair.by_reader else ""
    return f"{name:<10} {pair.status:<9} {sizes}{growth}{partner}{by_reader}"


def _reading_session(store, args: argparse.Namespace):
    """The reader's session on the current study (recording needs an account, as 'review' does)."""
    from workstation.library import StudyLibrary
    from workstation.review.session import ReviewSession
    from workstation.review.users import has_users, login

    if not has_users(store):
        raise WorkstationError("Recording a comparison needs an account: create one with 'workstation users add "
                               "NAME --role radiologist'")
    if not args.actor:
        raise WorkstationError("Say who records the comparison: --as USER")
    user = login(store, args.actor, password(f"Password for {args.actor}: "))
    study = StudyLibrary(data_home()).find_study(args.current)
    return ReviewSession(store, user, study["study_uid"])
