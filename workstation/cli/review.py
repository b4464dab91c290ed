"""`workstation review STUDY ...`: the read without the viewer, for scripts and integration tests.
The same core session, roles, audit rows and sealing as the viewer; findings are named by their
study number (the one the viewer, the report and the exports show)."""

from __future__ import annotations

import argparse
import json

from workstation.cli.common import password, review_store
from workstation.config import data_home
from workstation.errors import WorkstationError


def register(commands: argparse._SubParsersAction) -> None:
    review = commands.add_parser("review", help="read a study headless: list, accept, reject, edit, add, sign")
    review.add_argument("study", help="a study from 'workstation list' (number, key or Study UID)")
    review.add_argument("--as", dest="actor", required=True, help="the reader (asked for a password)")
    _add_actions(review.add_subparsers(metavar="ACTION", required=True))


def _add_actions(verbs: argparse._SubParsersAction) -> None:
    listing = verbs.add_parser("list", help="the findings with their numbers and decisions")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=run_action, act=_list)
    accept = verbs.add_parser("accept", help="accept finding N")
    accept.add_argument("number", type=int)
    accept.set_defaults(run=run_action, act=_accept)
    reject = verbs.add_parser("reject", help="reject finding N with a reason")
    reject.add_argument("number", type=int)
    reject.add_argument("--reason", required=True)
    reject.add_argument("--text", default="", help="free text (needed with --reason other)")
    reject.set_defaults(run=run_action, act=_reject)
    edit = verbs.add_parser("edit", help="change finding N's type, diameter or centre")
    edit.add_argument("number", type=int)
    edit.add_argument("--type")
    edit.add_argument("--diameter", type=float, help="mm")
    edit.add_argument("--center", help="x,y,z in patient mm (LPS); write --center=-40,12,-110 when x is negative")
    edit.set_defaults(run=run_action, act=_edit)
    add = verbs.add_parser("add", help="add a finding the AI missed")
    add.add_argument("--center", required=True, help="x,y,z in patient mm (LPS); write --center=-40,12,-110 when x is negative")
    add.add_argument("--diameter", required=True, type=float, help="mm")
    add.add_argument("--type", default="solid")
    add.set_defaults(run=run_action, act=_add)
    undo = verbs.add_parser("undo", help="take back your last decision")
    undo.set_defaults(run=run_action, act=_undo)
    sign = verbs.add_parser("sign", help="sign the read (asks your password again: an electronic signature)")
    sign.add_argument("--impression", required=True)
    sign.add_argument("--undecided-reason", default="",
                      help="sign although AI candidates are undecided, saying why (printed in the report)")
    sign.add_argument("--lung-rads", help="override the suggested Lung-RADS category")
    sign.add_argument("--lung-rads-reason", default="")
    sign.set_defaults(run=run_action, act=_sign)
    addendum = verbs.add_parser("addendum", help="amend a signed read; the following actions are addenda")
    addendum.add_argument("--reason", required=True)
    addendum.add_argument("action", nargs=argparse.REMAINDER,
                          help="the amending action, e.g.: accept 3  |  reject 2 --reason vessel")
    addendum.set_defaults(run=run_action, act=_addendum)


def run_action(args: argparse.Namespace) -> int:
    return args.act(_session(args), args)


def _session(args: argparse.Namespace):
    """The reader's session on the study, logged in with --as."""
    from workstation.library import StudyLibrary
    from workstation.review.session import ReviewSession
    from workstation.review.users import has_users, login

    store = review_store()
    if not has_users(store):
        raise WorkstationError("Reading needs an account: create one with 'workstation users add NAME --role "
                               "radiologist'")
    user = login(store, args.actor, password(f"Password for {args.actor}: "))
    study = StudyLibrary(data_home()).find_study(args.study)
    return ReviewSession(store, user, study["study_uid"])


def _finding_id(session, number: int) -> int:
    for state in session.findings():
        if state.number == number:
            return state.id
    numbers = ", ".join(str(s.number) for s in session.findings()) or "none"
    raise WorkstationError(f"No finding {number} in this study (its findings: {numbers})")


def _centre(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise WorkstationError(f"Centre {text!r} must be three numbers x,y,z in mm, e.g. -40.5,12,-110")
    return values  # type: ignore[return-value]


def _list(session, args: argparse.Namespace) -> int:
    states = sorted(session.findings(), key=lambda s: s.number)
    if args.json:
        print(json.dumps([{"number": s.number, "source": s.source, "center_mm": list(s.center_mm),
                           "diameter_mm": s.diameter_mm, "type": s.type, "probability": s.probability,
                           "model": f"{s.model_name} {s.model_version}" if s.model_name else None,
                           "decision": s.decision, "reason": s.reason, "decided_by": s.decided_by}
                          for s in states], indent=1))
        return 0
    decided, total = session.progress()
    print(f"{'signed' if session.signed else 'in review'}: {decided} of {total} decided")
    for s in states:
        probability = f"p={s.probability:.2f}" if s.probability is not None else "added by a reader"
        centre = ",".join(f"{v:.1f}" for v in s.center_mm)
        print(f"  #{s.number:<3} {s.decision:<9} {s.type:<12} {s.diameter_mm:5.1f} mm  at {centre}  {probability}"
              + (f"  ({s.reason})" if s.reason else ""))
    return 0


def _done(session, what: str) -> int:
    decided, total = session.progress()
    print(f"{what}; {decided} of {total} decided.")
    return 0


def _accept(session, args: argparse.Namespace) -> int:
    session.accept(_finding_id(session, args.number))
    return _done(session, f"Accepted #{args.number}")


def _reject(session, args: argparse.Namespace) -> int:
    session.reject(_finding_id(session, args.number), args.reason, args.text)
    return _done(session, f"Rejected #{args.number} ({args.reason})")


def _edit(session, args: argparse.Namespace) -> int:
    changes = {key: value for key, value in (("type", args.type), ("diameter_mm", args.diameter),
                                              ("center_mm", _centre(args.center) if args.center else None))
               if value is not None}
    if not changes:
        raise WorkstationError("Say what to change: --type, --diameter or --center")
    session.edit(_finding_id(session, args.number), **changes)
    return _done(session, f"Edited #{args.number}")


def _add(session, args: argparse.Namespace) -> int:
    session.add(_centre(args.center), args.diameter, args.type)
    return _done(session, "Added a finding")


def _undo(session, args: argparse.Namespace) -> int:
    session.undo()
    return _done(session, "Took back the last decision")


def _sign(session, args: argparse.Namespace) -> int:
    session.sign(args.impression, password=password(f"Signature: password for {args.actor}: "),
                 allow_undecided=bool(args.undecided_reason.strip()), undecided_reason=args.undecided_reason,
                 lung_rads=args.lung_rads, lung_rads_reason=args.lung_rads_reason)
    print(f"Signed by {args.actor}; the read is sealed (changes from now on are addenda).")
    return 0


def _addendum(session, args: argparse.Namespace) -> int:
    """Parse the amending action as its own command, then run it in the addendum."""
    if not args.action:
        raise WorkstationError("Say the amending action after the reason, e.g.: addendum --reason R accept 3")
    parser = argparse.ArgumentParser(prog="workstation review STUDY addendum --reason R", exit_on_error=False)
    _add_actions(parser.add_subparsers(metavar="ACTION", required=True))
    try:
        inner = parser.parse_args(args.action)
    except argparse.ArgumentError as exc:
        raise WorkstationError(f"The amending action is not understood: {exc}") from exc
    if inner.act in (_sign, _addendum, _list):
        raise WorkstationError("An addendum is a decision: accept, reject, edit, add or undo")
    session.begin_addendum(args.reason)
    return inner.act(session, inner)
