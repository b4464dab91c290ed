"""`workstation priors STUDY` and `workstation compare CURRENT PRIOR`: the patient's earlier
studies, and each nodule matched across time with its growth and doubling time (issue #24)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from workstation.cli.common import (acting_user, analysed_series, load_library_series, record_read, review_store,
                                    run_with_progress)
from workstation.config import data_home
from workstation.errors import WorkstationError

AS_HELP = "who is doing this (needed once accounts exist; asked for a password)"


def register(commands: argparse._SubParsersAction) -> None:
    priors = commands.add_parser("priors", help="the same patient's earlier studies in the library")
    priors.add_argument("study")
    priors.add_argument("--as", dest="actor", help=AS_HELP)
    priors.set_defaults(run=cmd_priors)
    compare = commands.add_parser("compare", help="match nodules with a prior study: growth, doubling time")
    compare.add_argument("current", help="the current study (from 'workstation list')")
    compare.add_argument("prior", nargs="?", help="the prior study (default: the most recent earlier one)")
    compare.add_argument("--json", type=Path, dest="json_out", metavar="OUT")
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
    for warning in warnings:
        print(f"warning: {warning}")
    return 0


def _date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text or "", "%Y%m%d").date()
    except ValueError:
        return None


def _readable(store, study_uid: str, *, prior: bool) -> list:
    """The findings that count: a prior's accepted ones (its AI findings when it was never read),
    the current study's accepted and undecided ones."""
    from workstation.review.session import ReviewSession

    states = [s for s in ReviewSession.findings_of(store, study_uid) if s.decision != "rejected"]
    accepted = [s for s in states if s.decision == "accepted"]
    return accepted if prior and accepted else states


def cmd_compare(args: argparse.Namespace) -> int:
    from workstation.imaging.registration import register_job
    from workstation.library import StudyLibrary
    from workstation.review.comparison import match_nodules, priors_of

    store = review_store()
    who = acting_user(store, args.actor, "view").username
    library = StudyLibrary(data_home())
    current = library.find_study(args.current)
    earlier, warnings = priors_of(library, current)
    if args.prior:
        prior = library.find_study(args.prior)
        if prior["patient_id"] != current["patient_id"]:
            raise WorkstationError("The two studies have different Patient IDs: not comparing different patients")
    elif earlier:
        prior = earlier[0]
    else:
        raise WorkstationError("No earlier study of this patient in the library; import it or name it")
    first, second = _date(prior["study_date"]), _date(current["study_date"])
    if first is None or second is None or second <= first:
        raise WorkstationError("The prior must have an earlier study date than the current study")
    days = (second - first).days
    current_volume = load_library_series(*analysed_series(store, current["key"]))
    prior_volume = load_library_series(*analysed_series(store, prior["key"]))
    registration = run_with_progress(register_job(current_volume, prior_volume))
    pairs = match_nodules(_readable(store, current["study_uid"], prior=False),
                          _readable(store, prior["study_uid"], prior=True), registration.prior_to_current, days,
                          current_voxel_mm=max(current_volume.spacing_mm), prior_voxel_mm=max(prior_volume.spacing_mm))
    from workstation.reporting.lungrads_comparison import EDITION, suggest_with_comparison

    suggestion = suggest_with_comparison(pairs, days)
    record_read(store, who, "study_viewed", study_uid=current["study_uid"], compared_with=prior["study_uid"])
    print(f"Compared with the prior of {prior['study_date']} ({days} days earlier); {registration.statement}.")
    print(f"Lung-RADS suggestion with comparison: {suggestion.category} ({suggestion.rule}; {EDITION}).")
    for warning in warnings:
        print(f"warning: {warning}")
    for pair in pairs:
        now, then = pair.current, pair.prior
        name = f"#{now.number}" if now else f"prior #{then.number}"
        sizes = " -> ".join(f"{f.diameter_mm:.1f} mm" for f in (then, now) if f is not None)
        growth = ""
        if pair.volume_change is not None:
            growth = f", volume x{pair.volume_change:.2f}"
        if pair.doubling_days is not None:
            fast, slow = pair.doubling_range_days
            slow_text = "not told from stable" if slow == float("inf") else f"{slow:.0f}"
            growth += f", doubling time {pair.doubling_days:.0f} days ({fast:.0f} to {slow_text})"
        print(f"  {name:<10} {pair.status:<9} {sizes}{growth}")
    if args.json_out:
        args.json_out.write_text(json.dumps({
            "current": current["study_uid"], "prior": prior["study_uid"], "days": days,
            "registration": {"prior_to_current": registration.prior_to_current.round(6).tolist(),
                             "lung_overlap": registration.lung_overlap, "quality": registration.quality,
                             "statement": registration.statement},
            "warnings": warnings, "nodules": [pair.as_dict() for pair in pairs],
            "lung_rads": {**suggestion.to_dict(), "edition": EDITION}}, indent=1), encoding="utf-8")
    return 0
