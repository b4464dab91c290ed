"""Compare with prior (issue #24 item 3): the reader picks one of the patient's earlier studies
(the most recent comparable one offered), it is loaded and aligned off the GUI thread with progress
and cancel, and shown beside the current axial view, linked through the registration: the
crosshair in one lands on the same anatomy in the other (both ways), scrolling, window/level, zoom
and pan follow. Shift+P toggles the prior. The mapping itself is the core's
(workstation.review.priors.PriorComparison.to_prior / to_current).

The comparison shown is the core's one Comparison: the one recorded for the read when there is one
(its alignment reused, no second registration), and it is what the report prints. A radiologist or
admin who aligns a prior for a read not yet signed, with no comparison recorded, has it recorded
for the read at once (they chose the prior to compare with: the report should say so and its
Lung-RADS suggestion use it, without a second step that is easy to forget). Replacing a recorded
comparison with another prior, and adding one to a signed read (an addendum, its reason asked), is
"Use this prior in the report", never automatic (see workstation.review.priors.recording_offer).
The reader corrects the matching in Nodule matches... (ui/controllers/nodule_matches.py), recorded
through the same record_comparison.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QPoint, QTimer, Signal
from PySide6.QtWidgets import QGridLayout, QInputDialog, QWidget

from ui.controllers.jobs import JobDispatch
from ui.controllers.nodule_matches import NoduleMatchesController
from ui.dialogs.prior_choice import PriorChoiceDialog, display_date
from ui.render.slice_view import SliceView
from ui.render.vtk_shim import image_data
from ui.state import ViewerState
from ui.widgets.findings_panel import FindingsPanel
from ui.widgets.prior_view import PriorView
from workstation.errors import WorkstationError
from workstation.review.comparison import ReaderEdit
from workstation.review.comparison_record import record_comparison, recorded_comparison
from workstation.review.priors import (
    PriorComparison, compare_with_prior_job, describe_pair, offer_priors, pair_of, record_prior_viewed,
    recording_offer, report_findings_with,
)

log = logging.getLogger("workstation.ui")
PRIOR_CELL = (0, 2)  # beside the current axial (0, 0); the other views step aside while it shows


class PriorCompareController(QObject):
    """Owns the comparison shown (`comparison`), the prior's own ViewerState and its view."""

    shown_changed = Signal(bool)

    def __init__(self, home: Path, state: ViewerState, jobs: JobDispatch, review, viewing,
                 findings_panel: FindingsPanel, views: dict[str, QWidget], grid: QGridLayout,
                 status: Callable[[str], None], fail: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.home, self.state, self.jobs, self.review, self.viewing = Path(home), state, jobs, review, viewing
        self.findings_panel, self.views = findings_panel, views
        self._status, self._fail = status, fail
        self.prior_state = ViewerState()
        self.view = PriorView(self.prior_state)
        self.grid = grid
        grid.addWidget(self.view, *PRIOR_CELL)
        self.view.hide()
        self.comparison: PriorComparison | None = None
        self.shown = False
        self.dialog: PriorChoiceDialog | None = None
        self._syncing = False  # see _one_side_set
        self._watching_layout = False
        state.volume_changed.connect(self._forget)
        state.crosshair_changed.connect(self._current_moved)
        state.window_changed.connect(self._current_window)
        state.annotations_changed.connect(self._sync_annotations)
        self.prior_state.crosshair_changed.connect(self._prior_moved)
        self.prior_state.window_changed.connect(self._prior_window)
        views["axial"].view_moved.connect(self._current_camera)
        self.view.slice_view.view_moved.connect(self._prior_camera)
        self.view.findings_toggled.connect(lambda _on: self._show_prior_findings())
        self.view.use_in_report.connect(lambda: self.use_in_report())
        review.user_changed.connect(self._describe)
        self.view.resized.connect(self._current_camera)
        findings_panel.finding_selected.connect(lambda _centre: self.show_selected_match())
        self.matches = NoduleMatchesController(self, review, findings_panel, status, parent)
        self.view.matches_requested.connect(self.show_matches)
        state.annotations_changed.connect(self.matches.refresh)  # a decision changed the read's findings
        review.user_changed.connect(self.matches.refresh)

    @property
    def prior_slice_view(self) -> SliceView:
        return self.view.slice_view

    # -- choosing and aligning ----------------------------------------------------------------
    def choose_prior(self) -> None:
        """Compare with prior...: the earlier studies of this patient, the most recent comparable preselected."""
        volume = self.state.volume
        if volume is None:
            self._status("Open a study first")
            return
        from workstation.library import StudyLibrary

        try:
            library = StudyLibrary(self.home)
            study = next((s for s in library.studies() if s["study_uid"] == volume.metadata.study_uid), None)
            if study is None:
                self._fail("This study is not in the library, so its priors cannot be looked up; import it first")
                return
            offer = offer_priors(library, study)
        except WorkstationError as exc:
            self._fail(str(exc))
            return
        if not offer.priors:
            self._status(" ".join(["No earlier study of this patient in the library (import the prior first).",
                                   *offer.warnings]))
            return
        self.dialog = PriorChoiceDialog(offer, volume.metadata.study_date, not self.state.identifiers_visible,
                                        self.parent())
        self.dialog.accepted.connect(self._on_chosen)
        self.dialog.open()

    def _on_chosen(self) -> None:
        chosen = self.dialog.chosen if self.dialog is not None else None
        if chosen is None:
            self._forget()
            self._status("No prior compared")
            return
        self.compare_with(chosen)

    def compare_with(self, prior_study: dict) -> bool:
        """Load and align `prior_study` (a library row) off the GUI thread; shown when aligned."""
        volume, home = self.state.volume, self.home
        if volume is None:
            return False
        when = (f"the prior of {display_date(prior_study['study_date'])}" if self.state.identifiers_visible
                else "the prior")
        return self.jobs.start(lambda cancel: compare_with_prior_job(home, volume, prior_study, cancel),
                               f"Aligning {when} to this scan", self._on_compared)

    def _on_compared(self, comparison: PriorComparison) -> None:
        volume = self.state.volume
        if volume is None or comparison.comparison.study_uid != volume.metadata.study_uid:
            return  # another study was opened meanwhile
        self.comparison = comparison
        recorded_now = self._record_if_expected()
        if not self.comparison.recorded and self.review.user is not None:  # patient data looked at: audited
            try:
                record_prior_viewed(self.review.store, self.review.user.username, volume.metadata.study_uid,
                                    self.comparison)
            except WorkstationError as exc:
                self._fail(str(exc))
        with self._one_side_set():  # the prior's own centring must not move the current crosshair
            self.prior_state.set_volume(comparison.prior_volume, None, [],
                                        {"histogram": comparison.histogram, "heat_maxima": ()})
            self.prior_state.set_window(*self.state.window)
        self._show_prior_findings()
        self._describe()
        self.show_selected_match()
        self.matches.refresh()
        self.set_shown(True)
        QTimer.singleShot(0, self._fit_current)  # once the grid has given the two views their new size
        registration = comparison.registration
        log.info("prior aligned: %s%s", registration.statement, " (recorded alignment reused)" if comparison.reused
                 else "")
        if registration.quality == "poor":  # said, not hidden: a box as well as the red header
            self._fail(f"The prior is poorly aligned ({registration.statement}).")
        else:
            used = ("; recorded for the report" if recorded_now else
                    "; the report's comparison" if self.comparison.recorded else "")
            self._status(f"Prior shown beside the current scan (Shift+P toggles it); {registration.statement}{used}")

    def _record_if_expected(self) -> bool:
        """Record the comparison shown for the read when the reader expects it without asking (see
        recording_offer); whether it was recorded now."""
        if recording_offer(self.review.session, self.comparison) != "record":
            return False
        return self._record("")

    def _record(self, reason: str, edits: tuple[ReaderEdit, ...] = ()) -> bool:
        comparison = self.comparison.comparison
        try:
            recorded = record_comparison(self.review.session, comparison.with_edits(edits) if edits else comparison,
                                         reason=reason)
        except WorkstationError as exc:
            self._fail(str(exc))
            return False
        self.comparison = self.comparison.recorded_as(recorded)
        if recorded.after_signing:
            self.review.refresh_findings()  # the read's status: an addendum in progress
        return True

    def use_in_report(self, reason: str | None = None) -> None:
        """Use this prior in the report: the comparison shown recorded for the read (replacing the one
        in force; after signing an addendum, its reason asked)."""
        if self.comparison is None:
            self._status("Compare with a prior first (Ctrl+Shift+P)")
            return
        session = self.review.session
        offer = recording_offer(session, self.comparison)
        if offer == "none":
            self._fail("Log in as the reader of this study to use the prior in its report" if session is None
                       else f"A {session.user.role} may not change this read's comparison")
            return
        if offer == "recorded":
            self._status("The report already compares with this prior")
            return
        if offer == "addendum" and reason is None:
            reason, ok = QInputDialog.getText(
                self.parent(), "Addendum", "The read is signed and stays as signed; this comparison is added as an "
                                           "addendum.\nWhy is the signed read amended?")
            if not ok:
                return
        if offer == "addendum" and not (reason or "").strip():
            self._status("Not recorded: an addendum needs a reason")
            return
        if self._record(reason or ""):
            self._describe()
            self.show_selected_match()
            self.matches.refresh()
            kind = " as an addendum to the signed read" if self.comparison.comparison.after_signing else ""
            self._status(f"The report will compare with this prior (recorded{kind})")

    def show_matches(self) -> None:
        """Nodule matches... (Ctrl+Shift+M): the pairs with the prior, and the reader's corrections."""
        self.matches.show_matches()

    def record_corrections(self, edits: tuple[ReaderEdit, ...], reason: str = "") -> bool:
        """The comparison shown with the reader's `edits` recorded for the read (record_comparison:
        audited; after signing an addendum, `reason` saying why); whether it was. The caller decided,
        with recording_offer, that this reader may record it."""
        if self.comparison is None or not self._record(reason, tuple(edits)):
            return False
        self._describe()
        self.show_selected_match()
        return True

    def centre_prior_on(self, point_mm) -> None:
        """The prior view on a point of the prior (a resolved finding); the current follows, linked."""
        if self.comparison is not None and self.shown:
            self.prior_state.set_crosshair(np.asarray(point_mm, dtype=float))
            self.prior_slice_view.centre_on(self.prior_state.crosshair)

    def _describe(self) -> None:
        comparison = self.comparison
        if comparison is None:
            return
        study = comparison.prior_study
        days = f"{comparison.days} days earlier"
        description = study["study_description"] or "no description"
        title = (f"PRIOR {display_date(study['study_date'])} ({days}): {description}"
                 if self.state.identifiers_visible else f"PRIOR ({days})")
        shown = f"{len(comparison.findings)} of {comparison.findings_source}" if comparison.findings else \
            comparison.findings_source
        self.view.show_prior(title, comparison.registration.statement, comparison.registration.quality, shown)
        self.view.show_report_state(*self._report_state())

    def _report_state(self) -> tuple[str, str]:
        """(whether the report prints this comparison, the button's text or "")."""
        session = self.review.session
        offer = recording_offer(session, self.comparison)
        recorded = self.comparison.comparison
        in_force = recorded_comparison(self.review.store, recorded.study_uid)
        if offer == "recorded" or (recorded.id is not None and in_force is not None and in_force.id == recorded.id):
            kind = " (addendum)" if recorded.after_signing else ""
            return f"In the report: this comparison, recorded by {recorded.recorded_by}{kind}.", ""
        if offer == "none":
            return "Not in the report (log in as the reader to use it).", ""
        if in_force is None:
            other = ""
        elif in_force.prior.study_uid == self.comparison.prior_study["study_uid"]:
            other = " The report keeps the comparison with this prior recorded earlier."
        elif self.state.identifiers_visible:
            other = f" The report compares with the prior of {display_date(in_force.prior.date)}."
        else:
            other = " The report compares with another prior."
        if offer == "addendum":
            return f"Not in the signed report.{other}", "Use this prior in the report (addendum)..."
        return f"Not in the report.{other}", "Use this prior in the report"

    def _show_prior_findings(self) -> None:
        comparison = self.comparison
        if comparison is None or not self.view.findings_check.isChecked():
            self.prior_state.set_markers([])
            return
        self.prior_state.set_markers([(np.array(f.center_mm), f.diameter_mm / 2, f.number)
                                      for f in comparison.findings])

    def show_selected_match(self) -> None:
        """The selected current finding's match in the prior (status, sizes, doubling time): its row in
        the report's table (for an undecided finding, the row it gets once accepted)."""
        comparison = self.comparison
        finding_id = self.findings_panel.current_id()
        if comparison is None or finding_id is None:
            self.view.show_match("")
            return
        session = self.review.session
        states = session.findings() if session is not None else list(getattr(self.review, "_plain", []))
        selected = next((s for s in states if getattr(s, "id", None) == finding_id), None)
        if selected is None or getattr(selected, "decision", "undecided") == "rejected":
            self.view.show_match("")
            return
        matched = report_findings_with(states, selected) if session is not None else states
        pair = pair_of(comparison.match(matched), selected.number)
        pending = "; in the report once accepted" if getattr(selected, "decision", "") == "undecided" else ""
        self.view.show_match(f"Selected finding {describe_pair(pair)}{pending}" if pair is not None else "")

    # -- showing ------------------------------------------------------------------------------
    def toggle_prior(self) -> None:
        """Shift+P: the prior beside the current axial on/off; without one yet, choose it."""
        if self.comparison is None:
            self.choose_prior()
            return
        self.set_shown(not self.shown)
        self._status("Prior shown beside the current scan" if self.shown else "Prior hidden (Shift+P shows it)")

    def set_shown(self, on: bool) -> None:
        on = bool(on) and self.comparison is not None
        window = self.parent()
        if window is not None:
            window.setUpdatesEnabled(False)  # no half-laid-out grid painted in between
        try:
            # current and prior share the width equally while the prior shows
            self.grid.setColumnStretch(0, 1 if on else 0)
            self.grid.setColumnStretch(PRIOR_CELL[1], 1 if on else 0)
            if on:
                for name, view in self.views.items():
                    view.setVisible(name == "axial")
                self.viewing.set_active_view("axial")
                self.view.show()
            else:
                self.view.hide()
                single, active = self.viewing.single_layout, self.viewing.active_view
                for name, view in self.views.items():
                    view.setVisible(not single or name == active)
        finally:
            if window is not None:
                window.setUpdatesEnabled(True)
        changed = on != self.shown
        self.shown = on
        if on:
            self._watch_layout_key()
            self._current_moved()
            self._current_camera()
        if changed:
            self.shown_changed.emit(on)

    def _watch_layout_key(self) -> None:
        """F (one view / 2x2) while the prior shows leaves the comparison for that layout (the
        action registry is built after the controllers, so it is looked up here)."""
        action = getattr(self.parent(), "actions_by_key", {}).get("toggle_layout")
        if action is not None and not self._watching_layout:
            self._watching_layout = True
            action.triggered.connect(self._after_layout_key)

    def _after_layout_key(self) -> None:
        if self.shown:
            self.set_shown(False)
            self._status("Prior hidden (Shift+P shows it)")

    def _forget(self) -> None:
        """Another study opened (or None chosen): its comparison goes, and the prior's voxels with it
        (the view's VTK input shared their memory)."""
        if self.shown:
            self.set_shown(False)
        self.comparison = None
        self.matches.forget()
        self.view.show_match("")
        if self.prior_state.volume is not None:
            self.prior_state.volume, self.prior_state.markers, self.prior_state.histogram = None, [], None
            tiny = np.zeros((2, 2, 2), dtype=np.int16)
            self.prior_slice_view.base_mapper.SetInputData(image_data(tiny, np.eye(4)))

    def _fit_current(self) -> None:
        """The current axial zoomed to show the whole volume in its new, taller and narrower, shape
        (the prior follows at the same millimetres per pixel)."""
        axial, volume = self.views["axial"], self.state.volume
        if not self.shown or volume is None or axial.frame is None:
            return
        extent = np.abs(volume.affine[:3, :3] @ (np.array(volume.shape[::-1]) - 1))
        up, right = extent @ np.abs(axial.frame.up), extent @ np.abs(axial.frame.right)
        aspect = axial.height() / max(1, axial.width())
        axial.half_height_mm = float(max(up / 2, right / 2 * aspect) * 1.05)
        axial.refresh()
        self._current_camera()

    # -- linking ------------------------------------------------------------------------------
    @contextmanager
    def _one_side_set(self) -> Iterator[None]:
        """While one side is set from the other, the other's echo is not sent back."""
        self._syncing = True
        try:
            yield
        finally:
            self._syncing = False

    def _linked(self) -> bool:
        return self.shown and self.comparison is not None and not self._syncing

    def _current_moved(self) -> None:
        if self._linked() and self.state.volume is not None:
            with self._one_side_set():
                self.prior_state.set_crosshair(self.comparison.to_prior(self.state.crosshair))

    def _prior_moved(self) -> None:
        if self._linked():
            with self._one_side_set():
                self.state.set_crosshair(self.comparison.to_current(self.prior_state.crosshair))

    def _current_window(self) -> None:
        if self.comparison is not None and not self._syncing:
            with self._one_side_set():
                self.prior_state.set_window(*self.state.window)

    def _prior_window(self) -> None:
        if self.comparison is not None and not self._syncing:
            with self._one_side_set():
                self.state.set_window(*self.prior_state.window)

    def _current_camera(self) -> None:
        """Zoom and pan of the current axial -> the prior's (see _follow)."""
        if self._linked() and self.prior_state.volume is not None:
            self._follow(self.views["axial"], self.prior_slice_view)

    def _prior_camera(self) -> None:
        if self._linked() and self.state.volume is not None:
            self._follow(self.prior_slice_view, self.views["axial"])

    def _follow(self, leader: SliceView, follower: SliceView) -> None:
        """The follower at the leader's millimetres per pixel, its crosshair (the same anatomy, mapped)
        drawn at the same place in the view and at the same height on the screen as the leader's,
        though the prior view starts lower, under its header. Away from the crosshair the two differ
        by the rotation between the scans (the prior is shown as it was acquired)."""
        if follower.frame is None or leader.frame is None:
            return
        with self._one_side_set():
            mm_per_pixel = 2 * leader.half_height_mm / max(1, leader.height())
            follower.half_height_mm = mm_per_pixel * follower.height() / 2
            lower_by = (follower.mapToGlobal(QPoint(0, follower.height() // 2)).y()
                        - leader.mapToGlobal(QPoint(0, leader.height() // 2)).y())
            offset = leader.state.crosshair - leader.centre
            right, up = offset @ leader.frame.right, offset @ leader.frame.up + lower_by * mm_per_pixel
            follower.centre = follower.state.crosshair - follower.frame.right * right - follower.frame.up * up
            follower.refresh()

    def _sync_annotations(self) -> None:
        """Patient text, presentation mode and crosshair lines: the prior view obeys the same switches."""
        prior, state = self.prior_state, self.state
        if (prior.show_patient_text, prior.presentation, prior.crosshair_visible) != \
                (state.show_patient_text, state.presentation, state.crosshair_visible):
            prior.show_patient_text, prior.crosshair_visible = state.show_patient_text, state.crosshair_visible
            prior.set_presentation(state.presentation)
            self._describe()
