"""The read of the open study: who reads it, their decisions on each finding (keys and clicks),
undo, and signing with the Lung-RADS category."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QInputDialog, QLineEdit, QPlainTextEdit, QWidget

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
    user_changed = Signal()  # logged in, out or another user: a teaching case may turn into a quiz

    def __init__(self, state: ViewerState, store: ReviewStore, findings_panel: FindingsPanel, quiz: Quiz,
                 status: Callable[[str], None], fail: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state, self.store, self.findings_panel, self.quiz = state, store, findings_panel, quiz
        self._status, self._fail = status, fail
        self.user: User | None = None
        self.session: ReviewSession | None = None
        self._plain: list = []  # findings shown without a session (nobody logged in)
        self.moving: int | None = None  # the finding whose new centre the 'move' tool awaits
        state.tool_changed.connect(self._on_tool)
        state.volume_changed.connect(self._forget_plain)

    def _forget_plain(self) -> None:
        self._plain = []  # another study: the last one's findings go

    def set_user(self, user: User | None) -> None:
        self.user = user
        self.session = None
        if user is not None and self.state.volume is not None:
            self.open_session()
        self._status(f"Logged in as {user.username} ({user.role})" if user else "Not logged in")
        self.user_changed.emit()

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
        """The read's findings with their decisions (without a session: those given, read-only),
        those the threshold slider leaves out hidden from the list and the views alike. In a quiz
        nothing of the AI's is shown: the views keep the trainee's marks."""
        if self.quiz.active:
            return
        if plain_findings is not None:
            self._plain = list(plain_findings)
        states = self.session.findings() if self.session is not None else list(self._plain)
        threshold = self.state.overlay_threshold
        shown = [s for s in states if shown_at(s, threshold)]
        decided = sum(getattr(s, "decision", "undecided") != "undecided" for s in states)
        self.findings_panel.show_findings(shown, self._status_text(), self.state.volume,
                                          hidden=len(states) - len(shown), threshold=threshold,
                                          progress=(decided, len(states)))
        self.state.set_markers([(np.array(s.center_mm), s.diameter_mm / 2, _number(s)) for s in shown
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

    def _number_of(self, finding_id: int) -> int:
        states = self.session.findings() if self.session is not None else self._plain
        return next((_number(s) for s in states if s.id == finding_id), finding_id)

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
            reason, ok = QInputDialog.getItem(self.parent(), f"Reject finding {self._number_of(finding)}", "Reason",
                                              list(REJECT_REASONS), 0, False)
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
        title = f"Edit finding {current.number}"
        if finding_type is None:
            finding_type, ok = QInputDialog.getItem(self.parent(), title, "Type", list(FINDING_TYPES),
                                                    FINDING_TYPES.index(current.type), False)
            if not ok:
                return
            diameter_mm, ok = QInputDialog.getDouble(self.parent(), title,
                                                     "Long axis: longest diameter across one slice (mm)",
                                                     current.diameter_mm, 1.0, 100.0, 1)
            if not ok:
                return
        changes = {name: value for name, value in (("type", finding_type), ("diameter_mm", diameter_mm))
                   if value is not None and value != getattr(current, name)}
        if changes and self._review(lambda s: s.edit(finding, **changes)):
            edited = next(s for s in self.session.findings() if s.id == finding)
            volume = f", volume {edited.volume_mm3:.0f} mm³ (from the new diameter)" if edited.volume_estimated else ""
            self._status(f"Finding {edited.number}: {edited.diameter_mm:.1f} mm {edited.type}{volume}")

    def add_missed(self) -> None:
        """The next left click in a slice view places a missed finding (size it with E); in a quiz, a mark."""
        self.state.set_tool("mark" if self.quiz.active else "add")
        self._status("Click the suspected nodule in a slice view (Esc to cancel)" if self.quiz.active
                     else "Click the missed finding in a slice view (Esc to cancel)")

    def move_finding(self) -> None:
        """The next left click in a slice view becomes the selected finding's new centre."""
        finding = self._selected()
        if finding is not None:
            self.moving = finding
            self.state.set_tool("move")
            self._status(f"Click the new centre of finding {self._number_of(finding)} in a slice view "
                         "(Esc to cancel)")

    def cancel_click(self) -> None:
        self.state.set_tool("crosshair")

    @property
    def pending_click(self) -> str | None:
        """The click being awaited ('add', 'move' or 'mark'), if any."""
        return self.state.tool if self.state.tool in ("add", "move", "mark") else None

    def _on_tool(self) -> None:
        if self.state.tool != "move":
            self.moving = None

    def on_point_clicked(self, point: np.ndarray) -> None:
        mode, finding = self.pending_click, self.moving
        if mode is None:
            return
        self.state.set_tool("crosshair")  # one click per M or Shift+M
        centre = tuple(round(float(v), 2) for v in point)
        if mode == "mark":
            self.quiz.marks.append(centre)
            self.state.set_markers([(np.array(m), 4.0, f"mark {n}") for n, m in enumerate(self.quiz.marks, 1)])
            self._status(f"{len(self.quiz.marks)} mark(s); M for another, Ctrl+Return submits")
            return
        if mode == "move":
            if finding is not None and self._review(lambda s: s.edit(finding, center_mm=centre)):
                self._status(f"Moved finding {self._number_of(finding)} to {centre} mm (the old centre is kept "
                             "in the record)")
            return
        added: list[int] = []
        if self._review(lambda s: added.append(s.add(centre, 6.0, "solid"))):
            self.findings_panel.select_id(added[0])
            self._status(f"Added finding {self._number_of(added[0])} (6 mm, solid); E edits its type and size")

    def undo_decision(self) -> None:
        if self._review(lambda s: s.undo()):
            self._status("Undone: the last decision is taken back (it stays in the record as undone)")

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
            impression, ok = ask_long_text(self.parent(), "Sign", "Impression (printed in the report as written)")
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


def shown_at(finding, threshold: float) -> bool:
    """Whether the threshold slider shows a finding: the AI's from the threshold up; what a person
    added or accepted always (it is in the report whatever the slider says)."""
    if getattr(finding, "source", "ai") == "clinician" or getattr(finding, "decision", "") == "accepted":
        return True
    return finding.probability is None or finding.probability >= threshold - 1e-9


def _number(finding) -> int:
    """The study number of a finding (a plain, unrecorded one: its number in the model run)."""
    return getattr(finding, "number", 0) or finding.id


def ask_long_text(parent: QWidget | None, title: str, label: str, text: str = "") -> tuple[str, bool]:
    """A multi-line text dialog with room to write (QInputDialog's own is a few lines wide and
    does not wrap); still a QInputDialog, so keyboard use and tests find it as before."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(label)
    dialog.setOption(QInputDialog.InputDialogOption.UsePlainTextEditForTextInput)
    dialog.setTextValue(text)
    editor = dialog.findChild(QPlainTextEdit)
    if editor is not None:
        editor.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        editor.setTabChangesFocus(True)  # Tab, then Return: OK by keyboard
        editor.setMinimumSize(520, 200)
    ok = dialog.exec() == QInputDialog.DialogCode.Accepted
    return dialog.textValue(), ok
