"""The reader corrects the nodule matching in the viewer (#24 item 4, "editable by the reader"):
Ctrl+Shift+M opens the matches of the prior shown, a finding is unpaired, another paired with a
prior finding and its status set; recorded, the store's comparison has the edits, the audit says
them, and the viewer's report prints the corrected pairing. After signing the corrections are an
addendum: an empty reason is refused with a sentence, a reason records it. Logged out: read-only.
Shares the linked-prior tests' phantom pair and window (tests/ui/test_prior_compare.py)."""

from __future__ import annotations

import json
import subprocess

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QInputDialog

from tests.ui.test_prior_compare import PASSWORD, _compare, _read_with_truth_findings  # noqa: I001
from tests.ui.test_prior_compare import opened, pair  # noqa: F401 (fixtures)
from ui.controllers.nodule_matches import NO_REASON
from ui.main_window import MainWindow
from workstation.reporting.content import content_from_store
from workstation.review.comparison import ReaderEdit
from workstation.review.comparison_record import recorded_comparison
from workstation.review.priors import describe_pair


def _choose(combo: QComboBox, data=None, text: str | None = None) -> None:
    """The reader picks an entry (by its text, else its data: None is "none: a new nodule"), as a
    click or the keyboard would."""
    entries = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    index = next(i for i, (label, value) in enumerate(entries) if (label == text if text is not None
                                                                   else value == data))
    combo.setCurrentIndex(index)
    combo.activated.emit(index)


def _row(dialog, number: int):
    dialog.select_finding(number)
    pair = dialog.current_pair()
    assert pair is not None and pair.current.number == number
    return pair


def test_the_reader_corrects_the_matches_in_the_viewer(opened: MainWindow, pair: dict, qtbot,  # noqa: F811
                                                       monkeypatch) -> None:
    window, truth, prior = opened, pair["truth"], opened.prior
    uid = truth["study_uid"]
    _read_with_truth_findings(window, truth)
    _compare(window, qtbot)
    automatic = recorded_comparison(window.store, uid)
    assert automatic is not None and automatic.edits == ()

    # Ctrl+Shift+M: every current finding and the resolved prior one, as matched
    qtbot.keyClick(window.views["axial"], Qt.Key.Key_M,
                   Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    dialog = prior.matches.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.table.rowCount() == len(truth["current_nodules"]) + len(truth["resolved"])
    grown, new, gone = truth["matches"][2], truth["new"][0]["current_id"], truth["resolved"][0]["prior_id"]
    assert grown["status"] == "growing"
    row = _row(dialog, grown["current_id"])
    assert row.prior.number == grown["prior_id"] and row.status == "growing"
    assert dialog.selected.text() == describe_pair(row)
    qtbot.waitUntil(lambda: prior.view.match.text() == f"Selected finding {describe_pair(row)}")  # the views went
    choices = [dialog.partner.itemText(i) for i in range(dialog.partner.count())]  # none, or each prior finding
    assert len(choices) == 1 + len(truth["prior_nodules"]) and choices[0].startswith("none: a new nodule")
    assert any(c.startswith(f"P{grown['prior_id']} · ") and "this finding's partner now" in c for c in choices)
    assert f"P{gone} · " in " ".join(choices) and dialog.record_button.isEnabled() is False

    # unpair the growing one; pair the new one with the resolved prior finding and call it otherwise
    _choose(dialog.partner, None)
    assert _row(dialog, grown["current_id"]).status == "new" and "Not recorded yet" in dialog.pending.text()
    row = _row(dialog, new)
    assert not dialog.status.isEnabled()  # a new nodule has no change to call
    _choose(dialog.partner, gone)
    row = _row(dialog, new)
    assert row.prior.number == gone and dialog.status.isEnabled() and dialog.status.currentText() == row.status
    called = next(s for s in ("stable", "growing", "shrinking") if s != row.status)  # not as measured
    _choose(dialog.status, text=called)
    assert _row(dialog, new).status == called and _row(dialog, new).by_reader
    assert recorded_comparison(window.store, uid).id == automatic.id  # nothing recorded before asked
    qtbot.mouseClick(dialog.record_button, Qt.MouseButton.LeftButton)

    edits = (ReaderEdit("unpair", grown["current_id"]), ReaderEdit("pair", new, gone),
             ReaderEdit("status", new, status=called))
    corrected = recorded_comparison(window.store, uid)
    assert corrected.id != automatic.id and set(corrected.edits) == set(edits) and not corrected.after_signing
    assert prior.comparison.comparison.id == corrected.id and dialog.pending.text() == ""
    action, user, details = window.store.connection.execute(
        "SELECT action, user, new_value FROM audit WHERE object_id = ? AND action = 'comparison_recorded'",
        (str(corrected.id),)).fetchone()
    assert user == "dr_lee" and set(json.loads(details)["edits"]) == {e.describe() for e in edits}

    # the report's comparison is the corrected one: its rows, and the viewer's PDF
    report = content_from_store(window.store, uid, window.state.volume).comparison
    rows = {p.current.number: p for p in report.pairs if p.current is not None}
    assert rows[grown["current_id"]].status == "new" and rows[grown["current_id"]].by_reader
    assert rows[new].prior.number == gone and rows[new].status == called and rows[new].by_reader
    assert any(p.current is None and p.prior.number == grown["prior_id"] for p in report.pairs)  # resolved now
    with qtbot.waitSignal(window.runner.finished, timeout=60000):
        window.reports.export_report()
    qtbot.waitUntil(lambda: window.reports.report_preview is not None, timeout=10000)
    text = subprocess.run(["pdftotext", "-layout", str(window.reports.report_preview.preview.path), "-"],
                          check=True, capture_output=True, text=True).stdout
    window.reports.report_preview.reject()
    assert "Reader's corrections" in text and f"finding {new} paired with prior finding {gone}" in text
    assert f"Finding {new} now and prior finding P{gone}" in text

    # signed: a correction is an addendum; an empty reason is refused in a sentence, a reason records it
    window.review.sign_study(impression="Compared with the prior.", export_after=False, password=PASSWORD)
    assert window.review.session.signed and "addendum" in dialog.note.text()
    _row(dialog, grown["current_id"])
    _choose(dialog.partner, grown["prior_id"])
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("  ", True))
    qtbot.mouseClick(dialog.record_button, Qt.MouseButton.LeftButton)
    assert dialog.note.text() == NO_REASON == window.status_label.text()
    assert recorded_comparison(window.store, uid).id == corrected.id  # nothing recorded
    monkeypatch.setattr(QInputDialog, "getText", lambda *args, **kwargs: ("growth was real after all", True))
    qtbot.mouseClick(dialog.record_button, Qt.MouseButton.LeftButton)
    addendum = recorded_comparison(window.store, uid)
    assert addendum.after_signing and addendum.addendum_reason == "growth was real after all"
    assert ReaderEdit("pair", grown["current_id"], grown["prior_id"]) in addendum.edits
    assert recorded_comparison(window.store, uid, as_signed=True).id == corrected.id  # the signed report keeps it
    details = window.store.connection.execute("SELECT details FROM audit WHERE object_id = ? AND action = "
                                              "'comparison_recorded'", (str(addendum.id),)).fetchone()[0]
    assert json.loads(details) == {"addendum": True, "reason": "growth was real after all"}
    signed_report = content_from_store(window.store, uid, window.state.volume)
    assert signed_report.comparison.comparison.id == corrected.id  # the signed Comparison section as signed
    said = [a for a in signed_report.addenda if a.why == "growth was real after all"]
    assert len(said) == 1 and f"finding {grown['current_id']} paired with prior finding {grown['prior_id']}" in \
        said[0].what

    # logged out: the matches stay readable, nothing may be corrected
    window.review.set_user(None)
    assert dialog.note.text().startswith("Read-only: log in") and not dialog.partner.isEnabled()
    assert not dialog.record_button.isEnabled()
