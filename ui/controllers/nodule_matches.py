"""The reader's corrections of the nodule matching in the viewer (issue #24 item 4, "editable by
the reader"): Nodule matches... (Ctrl+Shift+M, or the button on the prior view) lists each current
finding with its status and prior partner, growth and doubling time, and lets the reader pair it
with another prior finding, unpair it (new; its prior partner resolved) or set its status.

The corrections wait, shown as they will be, until "Record corrections": then the comparison
shown, with these edits, is recorded by the core's record_comparison, the path `workstation
compare --pair/--unpair/--status --record` takes, so the audit row and the rule after signing are
the same: a signed read gets an addendum, its reason asked, an empty reason refused. Who may
record follows recording_offer, as "Use this prior in the report" does: nobody logged in, or a
role that may not change the read, sees the matches read-only. Recording corrections on a prior
that is not the report's comparison makes it the report's (the reader asked for it by recording).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QInputDialog, QWidget

from ui.dialogs.nodule_matches import NoduleMatchesDialog
from ui.dialogs.prior_choice import display_date
from workstation.review.comparison import NodulePair, ReaderEdit, merged_edits
from workstation.review.comparison_record import recorded_comparison
from workstation.review.match_corrections import partner_edit, status_edit
from workstation.review.priors import recording_offer

NO_REASON = ("Corrections not recorded: the read is signed, so they are an addendum, and an addendum needs a "
             "reason")


class NoduleMatchesController(QObject):
    """Owns the dialog and the reader's edits not yet recorded (`pending`); the comparison is the
    prior controller's (ui/controllers/prior_compare.py)."""

    def __init__(self, prior, review, findings_panel, status: Callable[[str], None],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prior, self.review, self.findings_panel, self._status = prior, review, findings_panel, status
        self.dialog: NoduleMatchesDialog | None = None
        self.pending: tuple[ReaderEdit, ...] = ()

    def show_matches(self) -> None:
        """Nodule matches...: the dialog for the prior shown, on the finding selected in the list."""
        if self.prior.comparison is None:
            self._status("Compare with a prior first (Ctrl+Shift+P)")
            return
        first = self.dialog is None
        if first:
            self.dialog = NoduleMatchesDialog(self.parent())
            self.dialog.row_chosen.connect(self._go_to)
            self.dialog.partner_chosen.connect(self._on_partner)
            self.dialog.status_chosen.connect(self._on_status)
            self.dialog.record_clicked.connect(lambda: self.record())
            self.dialog.discard_clicked.connect(self.discard)
        self.dialog.show()
        self.refresh()
        if first and self.parent() is not None:  # later the reader's own placement stays
            self.dialog.place_beside(self.parent())
        selected = self.findings_panel.current_id()
        number = next((s.number for s in self._current_findings() if s.id == selected), None)
        if number is not None:
            self.dialog.select_finding(number, announce=False)  # the views are on it already
        self.dialog.raise_()
        self.dialog.activateWindow()
        self.dialog.table.setFocus()

    def refresh(self) -> None:
        """The dialog again from the comparison shown, the read's findings and the pending edits."""
        dialog, shown = self.dialog, self.prior.comparison
        if dialog is None or not dialog.isVisible():
            return
        if shown is None:  # another study, or no prior any more: nothing to correct
            self.pending = ()
            dialog.close()
            return
        comparison = shown.comparison.with_edits(self.pending) if self.pending else shown.comparison
        pairs = comparison.pairs(self._current_findings())
        note, editable, warn = self._recording_note()
        dialog.show_matches(self._heading(), comparison, pairs, "; ".join(e.describe() for e in self.pending),
                            note, editable, warn)

    def discard(self) -> None:
        self.pending = ()
        self.refresh()
        self._status("Corrections discarded")

    def forget(self) -> None:
        """The comparison went (another study, or none): pending edits go with it."""
        self.pending = ()
        if self.dialog is not None:
            self.dialog.close()

    # -- choices into edits -------------------------------------------------------------------
    def _on_partner(self, current_number: int, prior_number: int | None) -> None:
        self._add(partner_edit(self.dialog.pairs, current_number, prior_number))

    def _on_status(self, current_number: int, status: str) -> None:
        self._add(status_edit(self.dialog.pairs, current_number, status))

    def _add(self, edit: ReaderEdit | None) -> None:
        if edit is not None:
            self.pending = merged_edits(self.pending, (edit,))
            self._status(f"Not recorded yet: {edit.describe()} (Record corrections keeps it)")
        self.refresh()

    # -- recording ----------------------------------------------------------------------------
    def record(self, reason: str | None = None) -> bool:
        """The pending edits recorded for the read (after signing: an addendum, `reason` asked when
        None, an empty one refused); whether they were recorded."""
        shown, session = self.prior.comparison, self.review.session
        if shown is None or not self.pending:
            self._status("No corrections to record")
            return False
        offer = self._offer()
        if offer == "none":
            self._say(self._read_only_sentence())
            return False
        if offer == "addendum" and reason is None:
            reason, ok = QInputDialog.getText(
                self.dialog or self.parent(), "Addendum",
                "The read is signed and stays as signed; these corrections are added as an addendum.\n"
                "Why is the signed read amended?", text=session.addendum_reason or "")
            if not ok:
                return False
        if offer == "addendum" and not (reason or "").strip():
            self._say(NO_REASON)
            return False
        edits = self.pending
        if not self.prior.record_corrections(edits, reason or ""):
            return False
        self.pending = ()
        self.refresh()
        kind = " as an addendum to the signed read" if self.prior.comparison.comparison.after_signing else ""
        self._status(f"Recorded for the report{kind}: " + "; ".join(e.describe() for e in edits))
        return True

    def _offer(self) -> str:
        """recording_offer for corrections: they change the comparison, so on a signed read they are
        an addendum even to the comparison in force (recording_offer calls that one 'recorded')."""
        session = self.review.session
        offer = recording_offer(session, self.prior.comparison)
        if offer == "recorded" and session.signed:
            return "addendum" if session.user.can("sign") else "none"
        return offer

    def _say(self, sentence: str) -> None:
        self._status(sentence)
        if self.dialog is not None:
            self.dialog.say(sentence)

    def _read_only_sentence(self) -> str:
        session = self.review.session
        if session is None:
            return "Read-only: log in as the reader of this study to correct the matching"
        return f"Read-only: a {session.user.role} may not change this read's comparison"

    def _recording_note(self) -> tuple[str, bool, bool]:
        """(how corrections are recorded, whether they may be, whether the note is a warning)."""
        shown, session = self.prior.comparison, self.review.session
        offer = self._offer()
        if offer == "none":
            return self._read_only_sentence() + ".", False, True
        if offer == "addendum":
            return ("The read is signed: corrections are recorded as an addendum, with a reason; the signed report "
                    "keeps the comparison it was signed with."), True, True
        in_force = recorded_comparison(self.review.store, shown.comparison.study_uid)
        if offer == "offer" and in_force is not None and in_force.prior.study_uid != shown.prior_study["study_uid"]:
            return ("Recording corrections makes this prior the report's comparison, in place of the one recorded "
                    "earlier."), True, True
        return "Recorded corrections go into the report's comparison, audited.", True, False

    # -- the views follow the row -------------------------------------------------------------
    def _go_to(self, pair: NodulePair) -> None:
        """A current finding: selected in the list (the views centre on it, the prior follows); a
        resolved prior one: the prior view centres on it (the current follows)."""
        if pair.current is not None:
            self.findings_panel.select_id(pair.current.id)
        elif pair.prior is not None:
            self.prior.centre_prior_on(pair.prior.center_mm)

    def _current_findings(self) -> list:
        """The read's findings a comparison matches while reading: accepted and undecided."""
        session = self.review.session
        states = session.findings() if session is not None else list(getattr(self.review, "_plain", []))
        return [s for s in states if getattr(s, "decision", "undecided") != "rejected"]

    def _heading(self) -> str:
        shown = self.prior.comparison
        when = (f"the prior of {display_date(shown.prior_study['study_date'])}" if self.prior.state.identifiers_visible
                else "the prior")
        return (f"Each current finding matched with {when} ({shown.days} days earlier; matched against "
                f"{shown.findings_source}). Select a finding, then choose the prior finding it is (or none: a new "
                "nodule) or its status. * set by the reader.")
