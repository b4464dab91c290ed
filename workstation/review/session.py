"""A reader's session on one study: accept, reject (with a reason), edit, add, undo, sign.

The AI proposes; a named person decides. Decisions are rows that are never changed: the state
of a finding is the replay of its decisions (an undo is a decision too). Every change and its
audit row share one transaction.

Signed means sealed: once anyone signed the study's read, its content (decisions, findings,
measurements, impression) is what the replay of the decisions made before the signature gives,
for ever. Later changes are addenda, only by a role that may sign, each saying why
(`begin_addendum`); reports print them after the signed content. A trainee may practise on a
study nobody else reads, never decide on someone else's read. All of this is checked here, so
the viewer, the command line and any script get the same answer.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any

from workstation.errors import WorkstationError
from workstation.reporting.lungrads import CATEGORIES as LUNG_RADS_CATEGORIES
from workstation.review import audit
from workstation.review.analyses import record_analysis
from workstation.review.anchors import record_anchor
from workstation.review.store import ReviewStore
from workstation.review.users import PermissionDenied, User, confirm_password

REJECT_REASONS = ("vessel", "scar/fibrosis", "artefact", "outside lung", "duplicate", "other")
EDITABLE = ("type", "diameter_mm", "center_mm")
FINDING_TYPES = ("solid", "part-solid", "ground-glass")


class ReviewError(WorkstationError):
    """A review action that cannot be done (unknown finding, nothing to undo, bad reason)."""


@dataclass(frozen=True)
class FindingState:
    id: int
    source: str  # ai or clinician
    center_mm: tuple[float, float, float]
    diameter_mm: float
    volume_mm3: float | None
    mean_hu: float | None
    probability: float | None
    type: str
    model_name: str | None
    model_version: str | None
    decision: str  # undecided, accepted, rejected
    reason: str | None
    decided_by: str | None
    decided_at: str | None
    number: int = 0  # the finding's number in its study: list, views, dialogs, report, exports, audit
    volume_estimated: bool = False  # volume_mm3 recomputed from an edited diameter (a sphere's volume)

    @property
    def reportable(self) -> bool:
        """Only what a person accepted or added reaches a report."""
        return self.decision == "accepted"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


class ReviewSession:
    def __init__(self, store: ReviewStore, user: User, study_uid: str) -> None:
        user.require("view")
        self.store, self.user, self.study_uid = store, user, study_uid
        self.addendum_reason: str | None = None
        with store.transaction() as connection:
            row = connection.execute("SELECT status FROM reading_sessions WHERE study_uid = ? AND user = ?",
                                     (study_uid, user.username)).fetchone()
            if row is None:
                connection.execute("INSERT INTO reading_sessions (study_uid, user, status, started_at) "
                                   "VALUES (?, ?, 'in_review', ?)", (study_uid, user.username, _now()))
            audit.append(connection, user.username, "study_opened", study_uid=study_uid)

    # -- state ----------------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """'signed' once anyone signed the study's read, else this reader's own status."""
        if self.signed:
            return "signed"
        row = self.store.connection.execute("SELECT status FROM reading_sessions WHERE study_uid = ? AND user = ?",
                                            (self.study_uid, self.user.username)).fetchone()
        return row[0] if row else "unread"

    @property
    def signed(self) -> bool:
        return study_signed(self.store.connection, self.study_uid)

    def findings(self) -> list[FindingState]:
        """Every finding of the study with its current decision (addenda included), AI ones by
        probability first."""
        return self.findings_of(self.store, self.study_uid)

    @staticmethod
    def findings_of(store: ReviewStore, study_uid: str, *, as_signed: bool = False) -> list[FindingState]:
        """The replay of a study's decisions (readable without a session, e.g. by reports);
        `as_signed`: without the addenda, i.e. the content as it was signed."""
        connection = store.connection
        sealed = " AND addendum = 0" if as_signed else ""
        undone = {row[0] for row in connection.execute(
            f"SELECT undoes FROM decisions WHERE study_uid = ? AND action = 'undo'{sealed}", (study_uid,))}
        decisions: dict[int, list[tuple]] = {}
        for row in connection.execute(
                "SELECT id, finding_id, action, reason, new_values, user, created_at FROM decisions "
                f"WHERE study_uid = ? AND action != 'undo'{sealed} ORDER BY id", (study_uid,)):
            if row[0] not in undone:
                decisions.setdefault(row[1], []).append(row)
        states = []
        numbers = finding_numbers(connection, study_uid)
        for row in connection.execute(
                "SELECT id, source, center_mm, diameter_mm, volume_mm3, mean_hu, probability, type, model_name, "
                "model_version FROM findings WHERE study_uid = ? ORDER BY probability IS NULL, probability DESC, id",
                (study_uid,)):
            values = {"center_mm": tuple(json.loads(row[2])), "diameter_mm": row[3], "type": row[7]}
            decision, reason, by, at = "undecided", None, None, None
            for _id, _finding, action, why, new_values, user, created in decisions.get(row[0], []):
                if action == "edit":
                    values.update(json.loads(new_values))
                    values["center_mm"] = tuple(values["center_mm"])
                    continue
                decision = {"accept": "accepted", "add": "accepted", "reject": "rejected"}[action]
                reason, by, at = why, user, created
            if row[1] == "clinician" and decision == "undecided":
                continue  # an added finding whose addition was undone
            volume, mean_hu, estimated = row[4], row[5], False
            if values["diameter_mm"] != row[3] and values["diameter_mm"]:
                # the reader measured again: the model's segmented volume no longer belongs to this size
                volume, estimated = math.pi / 6 * float(values["diameter_mm"]) ** 3, True
            if tuple(values["center_mm"]) != tuple(json.loads(row[2])):
                mean_hu = None  # measured at the old centre
            states.append(FindingState(row[0], row[1], values["center_mm"], values["diameter_mm"], volume, mean_hu,
                                       row[6], values["type"], row[8], row[9], decision, reason, by, at,
                                       numbers.get(row[0], 0), estimated))
        return states

    def progress(self) -> tuple[int, int]:
        """(decided, total) for the progress display, e.g. 3 of 7 decided."""
        states = self.findings()
        return sum(s.decision != "undecided" for s in states), len(states)

    # -- actions --------------------------------------------------------------------------------
    def record_analysis(self, analysis: Any, series_uid: str = "") -> list[int]:
        """Store a model run and its findings (see review/analyses.py); the new findings' ids."""
        return record_analysis(self.store, self.user, self.study_uid, series_uid, analysis).finding_ids

    def begin_addendum(self, reason: str) -> None:
        """Amend a signed read: the decisions that follow in this session are addenda, each
        recorded with who, when and this reason."""
        if not self.user.can("sign"):
            raise PermissionDenied(f"A {self.user.role} may not amend a signed read; a radiologist or admin can "
                                   "add an addendum")
        if not self.signed:
            raise ReviewError("This read is not signed yet: decide as usual")
        if not reason.strip():
            raise ReviewError("Say why the signed read is amended")
        self.addendum_reason = reason.strip()

    def accept(self, finding_id: int) -> None:
        self._decide(finding_id, "accept", "finding_accepted")

    def reject(self, finding_id: int, reason: str, text: str = "") -> None:
        if reason not in REJECT_REASONS:
            raise ReviewError(f"Choose a reason: {', '.join(REJECT_REASONS)}")
        if reason == "other" and not text.strip():
            raise ReviewError("Say why in a few words when the reason is 'other'")
        self._decide(finding_id, "reject", "finding_rejected", reason=f"{reason}: {text}".rstrip(": ") if text
                     else reason)

    def edit(self, finding_id: int, **changes: Any) -> None:
        """Change type, size or location; the old values stay in the decision row."""
        unknown = set(changes) - set(EDITABLE)
        if unknown or not changes:
            raise ReviewError(f"Only {', '.join(EDITABLE)} can be edited")
        if "type" in changes and changes["type"] not in FINDING_TYPES:
            raise ReviewError(f"Type must be one of {', '.join(FINDING_TYPES)}")
        current = self._state(finding_id)
        old = {name: getattr(current, name) for name in changes}
        new = {name: (list(value) if name == "center_mm" else value) for name, value in changes.items()}
        self._decide(finding_id, "edit", "finding_edited", old=old, new=new)

    def add(self, center_mm: tuple[float, float, float], diameter_mm: float, finding_type: str = "solid") -> int:
        """A finding the AI missed; added by a person, so it counts as accepted."""
        self.user.require("review")
        if finding_type not in FINDING_TYPES or not 1 <= diameter_mm <= 100:
            raise ReviewError("Give a type (solid, part-solid, ground-glass) and a diameter of 1-100 mm")
        with self.store.transaction() as connection:
            finding_id = connection.execute(
                "INSERT INTO findings (study_uid, source, center_mm, diameter_mm, type, created_by, created_at) "
                "VALUES (?, 'clinician', ?, ?, ?, ?, ?)",
                (self.study_uid, json.dumps([float(v) for v in center_mm]), float(diameter_mm), finding_type,
                 self.user.username, _now())).lastrowid
            addendum = self._insert_decision(connection, finding_id, "add", None, None, {
                "center_mm": list(center_mm), "diameter_mm": diameter_mm, "type": finding_type})
            number = finding_numbers(connection, self.study_uid)[finding_id]
            audit.append(connection, self.user.username, "finding_added", study_uid=self.study_uid,
                         object_id=str(finding_id), new_value={"center_mm": list(center_mm),
                                                                "diameter_mm": diameter_mm, "type": finding_type},
                         details={**(self._addendum_details(addendum) or {}), "finding": number})
        return finding_id

    def undo(self) -> None:
        """Take back this reader's last decision on this study (also after signing, as an addendum)."""
        self.user.require("review")
        with self.store.transaction() as connection:
            addendum = self._check_may_change(connection)
            undone = {row[0] for row in connection.execute(
                "SELECT undoes FROM decisions WHERE study_uid = ? AND action = 'undo'", (self.study_uid,))}
            rows = connection.execute(
                "SELECT id, finding_id, action FROM decisions WHERE study_uid = ? AND user = ? AND action != 'undo' "
                "ORDER BY id DESC", (self.study_uid, self.user.username)).fetchall()
            last = next((row for row in rows if row[0] not in undone), None)
            if last is None:
                raise ReviewError("Nothing to undo")
            connection.execute(
                "INSERT INTO decisions (finding_id, study_uid, user, action, undoes, addendum, addendum_reason, "
                "created_at) VALUES (?, ?, ?, 'undo', ?, ?, ?, ?)",
                (last[1], self.study_uid, self.user.username, last[0], int(addendum),
                 self.addendum_reason if addendum else None, _now()))
            audit.append(connection, self.user.username, "decision_undone", study_uid=self.study_uid,
                         object_id=str(last[1]), old_value={"decision": last[0], "action": last[2]},
                         details=self._addendum_details(addendum))

    def sign(self, impression: str, *, password: str, allow_undecided: bool = False, lung_rads: str | None = None,
             lung_rads_reason: str = "", undecided_reason: str = "") -> None:
        """Seal the read: an electronic signature, so the signer's password is asked again.
        Undecided findings must be confirmed (allow_undecided) with the reason they were left
        (recorded in the audit row and printed in the report). `lung_rads` overrides the
        suggested category; the report prints both."""
        self.user.require("sign")
        decided, total = self.progress()
        if decided < total and not allow_undecided:
            raise ReviewError(f"{total - decided} finding(s) are undecided; decide them or confirm signing anyway")
        if decided < total and not undecided_reason.strip():
            raise ReviewError(f"{total - decided} AI candidate(s) are undecided; say why they are left unreviewed "
                              "to sign anyway")
        if lung_rads is not None and lung_rads not in LUNG_RADS_CATEGORIES:
            raise ReviewError(f"Lung-RADS category must be one of {', '.join(LUNG_RADS_CATEGORIES)}")
        override = json.dumps({"category": lung_rads, "reason": lung_rads_reason}) if lung_rads else None
        confirm_password(self.store, self.user, password)
        with self.store.transaction() as connection:
            if study_signed(connection, self.study_uid):
                raise ReviewError("This read is already signed; later changes are addenda")
            connection.execute("UPDATE reading_sessions SET status = 'signed', impression = ?, signed_at = ?, "
                               "lung_rads = ? WHERE study_uid = ? AND user = ?",
                               (impression, _now(), override, self.study_uid, self.user.username))
            audit.append(connection, self.user.username, "signed", study_uid=self.study_uid,
                         new_value={"impression": impression, "decided": decided, "findings": total,
                                    "undecided": total - decided,
                                    "undecided_reason": undecided_reason.strip() if decided < total else "",
                                    "lung_rads_override": lung_rads})
        record_anchor(self.store.connection, self.store.path, f"the signature of {self.study_uid} by "
                                                               f"{self.user.username}")

    def add_active_time(self, seconds: float) -> None:
        """Reading time: active seconds only (the caller excludes idle and locked time)."""
        if seconds <= 0:
            return
        with self.store.transaction() as connection:
            connection.execute("UPDATE reading_sessions SET active_seconds = active_seconds + ? "
                               "WHERE study_uid = ? AND user = ?", (seconds, self.study_uid, self.user.username))

    @property
    def active_seconds(self) -> float:
        row = self.store.connection.execute(
            "SELECT active_seconds FROM reading_sessions WHERE study_uid = ? AND user = ?",
            (self.study_uid, self.user.username)).fetchone()
        return float(row[0]) if row else 0.0

    # -- internals ------------------------------------------------------------------------------
    def _state(self, finding_id: int) -> FindingState:
        for state in self.findings():
            if state.id == finding_id:
                return state
        raise ReviewError(f"No finding {finding_id} in this study")

    def may_change(self, connection) -> bool:
        """Inside a transaction: whether a change to this read is an addendum; refused when this
        reader may not make it (other records of the read, e.g. a comparison, ask the same)."""
        return self._check_may_change(connection)

    def _check_may_change(self, connection) -> bool:
        """Whether the change about to be made is an addendum; refused when it may not be made."""
        if study_signed(connection, self.study_uid):
            if not self.user.can("sign"):
                raise PermissionDenied(f"This read is signed; a {self.user.role} may not change it")
            if self.addendum_reason is None:
                raise ReviewError("This read is signed and stays as signed; make an addendum (with a reason) "
                                  "to add to it")
            return True
        if self.user.role == "trainee" and _others_reading(connection, self.study_uid, self.user.username):
            raise PermissionDenied("This is someone else's read; a trainee may not decide on it")
        return False

    def _addendum_details(self, addendum: bool) -> dict | None:
        return {"addendum": True, "reason": self.addendum_reason} if addendum else None

    def _decide(self, finding_id: int, action: str, audit_action: str, *, reason: str | None = None,
                old: dict | None = None, new: dict | None = None) -> None:
        self.user.require("review")
        state = self._state(finding_id)
        with self.store.transaction() as connection:
            addendum = self._insert_decision(connection, finding_id, action, reason, old, new)
            audit.append(connection, self.user.username, audit_action, study_uid=self.study_uid,
                         object_id=str(finding_id), old_value=old or {"decision": state.decision},
                         new_value=new or {"decision": action, "reason": reason},
                         details={**(self._addendum_details(addendum) or {}), "finding": state.number,
                                  "model": state.model_name, "version": state.model_version})

    def _insert_decision(self, connection, finding_id: int, action: str, reason: str | None, old: dict | None,
                         new: dict | None) -> bool:
        """Insert a decision after the checks; whether it is an addendum."""
        addendum = self._check_may_change(connection)
        connection.execute(
            "INSERT INTO decisions (finding_id, study_uid, user, action, reason, old_values, new_values, addendum, "
            "addendum_reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (finding_id, self.study_uid, self.user.username, action, reason, json.dumps(old) if old else None,
             json.dumps(new) if new else None, int(addendum), self.addendum_reason if addendum else None, _now()))
        return addendum


def finding_numbers(connection, study_uid: str) -> dict[int, int]:
    """Finding id -> its number in the study: 1, 2, 3... in the order the findings were stored.

    Derived rather than stored: findings are never deleted (an undone addition stays as a row),
    so a finding's rank among its study's rows is fixed for the study's life, and rows stored
    before numbering existed need no rewrite (which the audit chain would rightly flag)."""
    return dict(connection.execute("SELECT id, ROW_NUMBER() OVER (ORDER BY id) FROM findings WHERE study_uid = ?",
                                   (study_uid,)))


def study_signed(connection, study_uid: str) -> bool:
    """Whether anyone signed the study's read."""
    return connection.execute("SELECT 1 FROM reading_sessions WHERE study_uid = ? AND status = 'signed'",
                              (study_uid,)).fetchone() is not None


def _others_reading(connection, study_uid: str, username: str) -> bool:
    """Whether someone other than `username`, not a trainee, has a read of the study."""
    return connection.execute(
        "SELECT 1 FROM reading_sessions r LEFT JOIN users u ON u.username = r.user "
        "WHERE r.study_uid = ? AND r.user != ? AND COALESCE(u.role, '') != 'trainee'",
        (study_uid, username)).fetchone() is not None
