"""The read of the open study: who reads it, their decisions on each finding (keys and clicks),
undo, and signing with the Lung-RADS category."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QWidget

from ui.controllers.quiz import Quiz
from ui.state import ViewerState
from ui.widgets.findings_panel import DECISION_COLUMN, FindingsPanel
from workstation.errors import WorkstationError
from workstation.reporting.lungrads import CATEGORIES as LUNG_RADS_CATEGORIES
from workstation.reporting.lungrads import suggest_for_read
from workstation.review.session import FINDING_TYPES, REJECT_REASONS, ReviewSession
from workstation.review.store import ReviewStore
from workstation.review.users import User, logout

log = logging.getLogger("workstation.ui")


class ReviewController(QObject):
    """Owns the logged-in user, their ReviewSession on the open study and the click being awaited."""

    signed = Signal(object)  # export_after: None offers the report, True exports it now, False neither

    def __init__(self, state: ViewerState, store: ReviewStore, findings_panel: FindingsPanel, quiz: Quiz,
                 status: Callable[[str], None], fail: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.store, self.findings_panel, self.quiz = state, store, findings_panel, quiz
        self._status, self._fail = status, fail
        self.user: User | None = None
        self.session: ReviewSession | None = None
        self.pending_click: tuple[str, int | None] | None = None  # ('add'|'mark', None) or ('move', finding id)

    def set_user(self, user: User | None) -> None:
        self.user = user
        self.session = None
        if user is not None and self.state.volume is not None:
            self.open_session()
        self._status(f"Logged in as {user.username} ({user.role})" if user else "Not logged in")

    def open_session(self) -> None:
        if self.user is None or self.state.volume is None:
            return
        try:
            self.session = ReviewSession(self.store, self.user, self.state.volume.metadata.study_uid)
        except WorkstationError as exc:
            self.session = None
            self._fail(str(exc))
        self.refresh_findings()

    def log_out(self) -> None:
        if self.user is not None:
            try:
                logout(self.store, self.user)
            except WorkstationError as exc:
                log.warning("logout not recorded: %s", exc)

    def refresh_findings(self, plain_findings: list | None = None) -> None:
        """The read's findings with their decisions (without a session: those given, read-only)."""
        states = self.session.findings() if self.session is not None else list(plain_findings or [])
        status = self._status_text()
        self.findings_panel.show_findings(states, status, self.state.volume)
        self.state.set_markers([(np.array(s.center_mm), s.diameter_mm / 2) for s in states
                                if getattr(s, "decision", "undecided") != "rejected"])

    def _status_text(self) -> str:
        if self.session is None:
            return ""
        if self.session.signed:
            return ("signed - addendum in progress" if self.session.addendum_reason
                    else "signed, read-only (Review > Addendum to amend)")
        return {"in_review": "in review"}.get(self.session.status, "")

    def _review(self, action: Callable[[ReviewSession], object]) -> bool:
        """Run a review action; errors (permissions, a full disk) become one clear message."""
        if self.quiz.active:
            self._fail("A quiz is in progress: mark nodules with M, submit with Ctrl+Return")
            return False
        if self.session is None:
            self._fail("Log in and open a study to review findings")
            return False
        try:
            action(self.session)
        except WorkstationError as exc:
            self._fail(str(exc))
            return False
        self.refresh_findings()
        return True

    def _selected(self) -> int | None:
        finding = self.findings_panel.current_id()
        if finding is None:
            self._status("Select a finding first (N/P)")
        return finding

    def _select_next_undecided(self) -> None:
        tree = self.findings_panel.tree
        for row in range(tree.topLevelItemCount()):
            if tree.topLevelItem(row).text(DECISION_COLUMN) == "undecided":
                tree.setCurrentItem(tree.topLevelItem(row))
                return

    def next_finding(self) -> None:
        self.findings_panel.select_next(1)

    def previous_finding(self) -> None:
        self.findings_panel.select_next(-1)

    def accept_finding(self) -> None:
        finding = self._selected()
        if finding is not None and self._review(lambda s: s.accept(finding)):
            self._select_next_undecided()

    def reject_finding(self, reason: str | None = None, text: str = "") -> None:
        finding = self._selected()
        if finding is None:
            return
        if reason is None:
            reason, ok = QInputDialog.getItem(self.parent(), "Reject finding", "Reason", list(REJECT_REASONS), 0,
                                              False)
            if not ok:
                return
            if reason == "other":
                text, ok = QInputDialog.getText(self.parent(), "Reject finding", "Why, in a few words")
                if not ok:
                    return
        if self._review(lambda s: s.reject(finding, reason, text)):
            self._select_next_undecided()

    def edit_finding(self, finding_type: str | None = None, diameter_mm: float | None = None) -> None:
        finding = self._selected()
        if finding is None or self.session is None:
            return
        current = next(s for s in self.session.findings() if s.id == finding)
        if finding_type is None:
            finding_type, ok = QInputDialog.getItem(self.parent(), "Edit finding", "Type", list(FINDING_TYPES),
                                                    FINDING_TYPES.index(current.type), False)
            if not ok:
                return
            diameter_mm, ok = QInputDialog.getDouble(self.parent(), "Edit finding",
                                                     "Long axis: longest diameter across one slice (mm)",
                                                     current.diameter_mm, 1.0, 100.0, 1)
            if not ok:
                return
        changes = {name: value for name, value in (("type", finding_type), ("diameter_mm", diameter_mm))
                   if value is not None and value != getattr(current, name)}
        if changes:
            self._review(lambda s: s.edit(finding, **changes))

    def add_missed(self) -> None:
        """The next left click in a slice view places a missed finding (size it with E); in a quiz, a mark."""
        if self.quiz.active:
            self.pending_click = ("mark", None)
            self._status("Click the suspected nodule in a slice view (Esc to cancel)")
            return
        self.pending_click = ("add", None)
        self._status("Click the missed finding in a slice view (Esc to cancel)")

    def move_finding(self) -> None:
        """The next left click in a slice view becomes the selected finding's new centre."""
        finding = self._selected()
        if finding is not None:
            self.pending_click = ("move", finding)
            self._status(f"Click the new centre of finding {finding} in a slice view (Esc to cancel)")

    def cancel_click(self) -> None:
        self.pending_click = None

    def on_point_clicked(self, point: np.ndarray) -> None:
        if self.pending_click is None:
            return
        (mode, finding), self.pending_click = self.pending_click, None
        centre = tuple(round(float(v), 2) for v in point)
        if mode == "mark":
            self.quiz.marks.append(centre)
            self.state.set_markers([(np.array(m), 4.0) for m in self.quiz.marks])
            self._status(f"{len(self.quiz.marks)} mark(s); M for another, Ctrl+Return submits")
            return
        if mode == "move":
            if self._review(lambda s: s.edit(finding, center_mm=centre)):
                self._status(f"Moved finding {finding} to {centre} mm (the old centre is kept in the record)")
            return
        if self._review(lambda s: s.add(centre, 6.0, "solid")):
            tree = self.findings_panel.tree
            tree.setCurrentItem(tree.topLevelItem(tree.topLevelItemCount() - 1))
            self._status("Added a finding (6 mm, solid); E edits its type and size")

    def undo_decision(self) -> None:
        self._review(lambda s: s.undo())

    def begin_addendum(self, reason: str | None = None) -> None:
        """A signed read is read-only; a radiologist or admin amends it with an addendum saying why."""
        if self.session is None:
            self._fail("Log in and open a study first")
            return
        if reason is None and self.session.signed and self.session.user.can("sign"):
            reason, ok = QInputDialog.getText(self.parent(), "Addendum", "Why is the signed read amended?")
            if not ok:
                return
        try:
            self.session.begin_addendum(reason or "")
        except WorkstationError as exc:
            self._fail(str(exc))
            return
        self.refresh_findings()
        self._status("Addendum: the decisions you make now are recorded as an addendum to the signed read")

    def sign_study(self, impression: str | None = None, confirm_undecided: bool | None = None,
                   export_after: bool | None = None, lung_rads: str | None = None, lung_rads_reason: str = "",
                   password: str | None = None, undecided_reason: str | None = None) -> None:
        """Sign the read; with candidates undecided, only with a reason (asked here when not given),
        which the audit row and the report keep beside the count of candidates not reviewed."""
        if self.session is None:
            self._fail("Log in and open a study to sign it")
            return
        decided, total = self.session.progress()
        if decided < total and confirm_undecided is False:
            return
        if decided < total and undecided_reason is None and self.session.user.can("sign"):
            undecided_reason, ok = QInputDialog.getText(
                self.parent(), "Sign with undecided candidates",
                f"{total - decided} of {total} AI candidate(s) are undecided; the report will say they were not "
                "reviewed.\nWhy sign without deciding them?")
            if not ok or not undecided_reason.strip():
                self._status("Not signed: decide the candidates, or give a reason to sign anyway")
                return
        if impression is None:
            impression, ok = QInputDialog.getMultiLineText(self.parent(), "Sign", "Impression")
            if not ok:
                return
            chosen = self._ask_lung_rads()
            if chosen is None:
                return
            lung_rads, lung_rads_reason = chosen
        if password is None and self.session.user.can("sign"):  # (a role that may not sign is told so below)
            password, ok = QInputDialog.getText(self.parent(), "Electronic signature",
                                                f"Password of {self.session.user.username}, to sign the read:",
                                                QLineEdit.EchoMode.Password)
            if not ok:
                return
        if self._review(lambda s: s.sign(impression, password=password or "", allow_undecided=decided < total,
                                         lung_rads=lung_rads, lung_rads_reason=lung_rads_reason,
                                         undecided_reason=undecided_reason or "")):
            self._status("Signed; later changes are addenda")
            self.signed.emit(export_after)

    def _ask_lung_rads(self) -> tuple[str | None, str] | None:
        """The suggested category, confirmed or overridden (with a reason); None if cancelled."""
        suggestion = suggest_for_read(self.session.findings())
        category, ok = QInputDialog.getItem(
            self.parent(), "Lung-RADS",
            f"Suggested: {suggestion.category} ({suggestion.rule}).\nCategory for the report:",
            list(LUNG_RADS_CATEGORIES), LUNG_RADS_CATEGORIES.index(suggestion.category), False)
        if not ok:
            return None
        if category == suggestion.category:
            return None, ""
        reason, ok = QInputDialog.getText(self.parent(), "Lung-RADS",
                                          f"Why {category} instead of {suggestion.category}?")
        return (category, reason) if ok else None
