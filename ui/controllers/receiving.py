"""Receiving from scanners in the viewer (#23 item 2): the core's Storage SCP listening on this
workstation's AE title and port (the node book's, an admin's setting), from the configured nodes
(or any sender, a setting). Each batch is imported by the receiver when its sender releases; here
the study browser refreshes, a notice says the study is complete, and (a setting) the AI runs on
each received CT study on this controller's own job runner, one study after another, while the
reader goes on reading. Refused associations are listed and logged. A setting starts listening
by itself after each login (a notice says why not if it cannot, e.g. the port is taken).

Everything received, and every AI run on it, is recorded under the user who started listening,
as `workstation receive --as USER` records it; receiving goes on behind the screen lock."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, QTimer, Signal
from PySide6.QtWidgets import QLabel, QWidget

from ui.controllers.jobs import JobDispatch
from ui.controllers.review import ReviewController
from ui.widgets.notice import Notice
from ui.widgets.receiving_panel import ReceivingPanel
from ui.widgets.study_browser import StudyBrowser
from ui.workers import JobRunner
from workstation.errors import WorkstationError
from workstation.library import StudyLibrary
from workstation.network.nodes import NetworkError, change_nodes, checked_ae_title, load_nodes
from workstation.network.receiver import Received, StorageReceiver, analyse_received_job
from workstation.review import audit
from workstation.review.analyses import RecordedRun
from workstation.review.store import ReviewStore
from workstation.review.users import User

log = logging.getLogger("workstation.ui")


def _flag(settings: QSettings, key: str) -> bool:
    return str(settings.value(key, "false")).lower() in ("true", "1")


class ReceivingController(QObject):
    """Owns the receiver while it listens, the queue of received studies awaiting the AI, the
    'Receive from scanners' window, the status-bar indicator and the notice."""

    # emitted on the receiver's threads; delivered on the GUI thread (queued)
    batch_arrived = Signal(object)  # Received
    association_refused = Signal(str)  # the calling AE title
    nodes_requested = Signal()  # the panel's 'DICOM nodes...' (the window wires it to the node editor)

    def __init__(self, home: Path, settings: QSettings, review: ReviewController, browser: StudyBrowser,
                 status: Callable[[str], None], fail: Callable[[str], None], parent: QWidget) -> None:
        super().__init__(parent)
        self.home, self.settings, self.review, self.browser = Path(home), settings, review, browser
        self._status, self._fail = status, fail
        self.receiver: StorageReceiver | None = None
        self.acting: User | None = None  # who started listening: imports and AI runs are theirs
        self.pending: deque[str] = deque()  # received study keys awaiting the AI
        self.analyse_job = analyse_received_job  # the core job (tests may give a quicker model)
        self.refused_count = 0
        self.locked = False  # behind the lock a notice names no study description (free text)
        self.runner = JobRunner()  # its own: the reader's study loads and Run AI never wait for it
        self.jobs = JobDispatch(self.runner, lambda _text: None, self)
        self.runner.progress.connect(self._on_progress)
        self.runner.failed.connect(self._on_analysis_failed)
        self.runner.finished.connect(lambda: QTimer.singleShot(0, self._next_analysis))
        self.indicator = QLabel("")
        self.indicator.setObjectName("receiving-indicator")
        self.indicator.hide()
        self.notice = Notice(parent)
        self.panel: ReceivingPanel | None = None
        self.batch_arrived.connect(self._on_batch)
        self.association_refused.connect(self._on_refused)
        review.user_changed.connect(self._on_user_changed)

    # -- settings ---------------------------------------------------------------------------------
    @property
    def analyse(self) -> bool:
        return _flag(self.settings, "receiving/analyse")

    def set_analyse(self, on: bool) -> None:
        self.settings.setValue("receiving/analyse", "true" if on else "false")
        self._event("info", "The AI will run on each received CT study" if on else
                    "Received studies are filed without running the AI")

    def set_any_sender(self, on: bool) -> None:
        self.settings.setValue("receiving/any_sender", "true" if on else "false")

    @property
    def listen_at_login(self) -> bool:
        return _flag(self.settings, "receiving/listen_at_login")

    def set_listen_at_login(self, on: bool) -> None:
        self.settings.setValue("receiving/listen_at_login", "true" if on else "false")
        self._event("info", "Listening will start at each login" if on else
                    "Listening starts only with Start listening")

    def save_local(self, ae_title: str, port: int) -> None:
        """This workstation's AE title and port: an admin's change, audited as 'pacs nodes local' is."""
        user = self.review.user
        try:
            if user is None:
                raise WorkstationError("Log in as an admin to change this workstation's AE title and port")
            book = load_nodes(self.home)
            book = replace(book, local_ae=checked_ae_title(ae_title), receive_port=int(port))
            change_nodes(self.review.store, self.home, user, "local", book)
        except WorkstationError as exc:
            self._fail(str(exc))
            self._show_settings()
            return
        self._event("info", f"This workstation is now {book.local_ae} on port {book.receive_port}")
        self._status(f"This workstation receives as {book.local_ae} on port {book.receive_port}")

    # -- the window -------------------------------------------------------------------------------
    def show_receiving(self) -> None:
        if self.review.user is None:
            self._fail("Log in to receive studies from scanners")
            return
        if self.panel is None:
            self.panel = ReceivingPanel(self.parent())
            self.panel.listen_toggled.connect(lambda on: self.start_listening() if on else self.stop_listening())
            self.panel.local_saved.connect(self.save_local)
            self.panel.analyse_toggled.connect(self.set_analyse)
            self.panel.any_sender_toggled.connect(self.set_any_sender)
            self.panel.listen_at_login_toggled.connect(self.set_listen_at_login)
            self.panel.nodes_requested.connect(self.nodes_requested)
        self._show_settings()
        self._show_state()
        self.panel.show()
        self.panel.raise_()
        self.panel.activateWindow()

    def refresh_settings(self) -> None:
        """The node book changed (File > DICOM nodes...): the senders listed here follow."""
        self._show_settings()

    def _show_settings(self) -> None:
        if self.panel is None:
            return
        try:
            book = load_nodes(self.home)
        except NetworkError as exc:
            self.panel.show_problem(str(exc))
            return
        senders = [f"{node.ae_title} ({name})" for name, node in sorted(book.nodes.items())]
        user = self.review.user
        self.panel.show_settings(book.local_ae, book.receive_port, senders,
                                 _flag(self.settings, "receiving/any_sender"), self.analyse,
                                 user is not None and user.can("administer"), self.listen_at_login)

    def _show_state(self) -> None:
        receiver = self.receiver
        if receiver is None:
            text = "Not listening"
        else:
            who = ", ".join(sorted(receiver.allowed_calling)) if receiver.allowed_calling else "any sender"
            text = f"Listening as {receiver.ae_title} on port {receiver.port}, from {who}"
        if self.panel is not None:
            self.panel.show_listening(receiver is not None, text)
        self._update_indicator()

    def _update_indicator(self, extra: str = "") -> None:
        receiver = self.receiver
        if receiver is None and not extra:
            self.indicator.hide()
            return
        parts = [f"Receiving on {receiver.port}" if receiver is not None else "Not receiving"]
        if self.refused_count:
            parts.append(f"{self.refused_count} refused")
        if extra:
            parts.append(extra)
        self.indicator.setText(" | ".join(parts))
        self.indicator.show()

    # -- listening --------------------------------------------------------------------------------
    def start_listening(self, at_login: bool = False) -> bool:
        """Listen as the node book says; False, with the reason told, if that cannot be. At login
        the reason goes to a notice (no box to dismiss before the first study)."""
        user = self.review.user
        if self.receiver is not None:
            return True
        try:
            if user is None:
                raise WorkstationError("Log in to receive studies from scanners")
            user.require("run_ai" if self.analyse else "view")
            book = load_nodes(self.home)
            allowed = None if _flag(self.settings, "receiving/any_sender") else {
                node.ae_title for node in book.nodes.values()}
            if allowed is not None and not allowed:
                raise NetworkError("No sender is allowed yet: an admin adds the scanner as a node (File > DICOM "
                                   "nodes..., or 'workstation pacs nodes add NAME --aet AET --host HOST --port "
                                   "PORT'), or accept any sender")
            receiver = StorageReceiver(self.home, book.local_ae, book.receive_port, allowed_calling=allowed,
                                       on_imported=self._imported_on_receiver_thread,
                                       on_refused=self.association_refused.emit)
            receiver.start()
        except WorkstationError as exc:
            self._show_state()
            if at_login:
                text = f"Not listening for scanners (set to start at login): {exc}"
                self.notice.notify(text, seconds=30.0)
                self._event("failed", text)
                self._status(text)
                self._update_indicator("could not start at login")
            else:
                self._fail(str(exc))
            if self.panel is not None:
                self.panel.show_problem(str(exc))
            return False
        self.receiver, self.acting = receiver, user
        self._show_state()
        who = ", ".join(sorted(allowed)) if allowed else "any sender"
        since = " (started at login)" if at_login else ""
        self._event("info", f"Listening as {receiver.ae_title} on port {receiver.port}, from {who}; "
                            f"recorded under {user.username}{since}")
        self._status(f"Receiving as {receiver.ae_title} on port {receiver.port}{since}")
        return True

    def stop_listening(self) -> None:
        """Stop accepting; a batch still arriving is aborted by the receiver and discarded whole."""
        receiver, self.receiver = self.receiver, None
        if receiver is not None:
            receiver.stop()
            self._event("info", "Stopped listening")
            self._status("Stopped receiving from scanners")
        self._show_state()

    def _imported_on_receiver_thread(self, batch: Received) -> None:
        """On the receiver's thread: the import is audited (its own store connection), as the
        receive command does, then the GUI thread is told."""
        if batch.report is not None and self.acting is not None:
            store = ReviewStore.in_home(self.home)
            try:
                with store.transaction() as connection:
                    audit.append(connection, self.acting.username, "imported", details={
                        "source": f"dicom:{batch.calling_ae}", "received": batch.instances,
                        "files": batch.report.files_copied})
            except WorkstationError as exc:
                log.warning("a received batch's import was not audited: %s", type(exc).__name__)
            finally:
                store.close()
        self.batch_arrived.emit(batch)

    # -- on the GUI thread ------------------------------------------------------------------------
    def _on_batch(self, batch: Received) -> None:
        if batch.report is None:
            text = f"{batch.calling_ae}: {batch.instances} instance(s) not imported: {batch.error}"
            self._event("failed", text)
            self._status(text)
            return
        self.browser.reload()
        report = batch.report
        if not report.studies:
            self._event("failed", f"{batch.calling_ae}: {batch.instances} instance(s), no CT series among them "
                                  f"({len(report.skipped)} skipped)")
            return
        for key in report.studies:
            text = f"Study received from {batch.calling_ae}: {self._describe(key)}, now in Studies"
            self._event("received", f"{text} ({batch.instances} instance(s) in the batch, "
                                    f"{report.files_copied} new)")
            self.notice.notify(text + (". The AI will run on it." if self.analyse else "."))
            self._status(text)
            if self.analyse and key not in self.pending:
                self.pending.append(key)
        self._next_analysis()

    def _describe(self, study_key: str) -> str:
        """What the study is, without naming the patient (the notice may be read from across the room);
        behind the screen lock only how many images (a description is free text)."""
        try:
            library = StudyLibrary(self.home)
            study = library.find_study(study_key)
            series = library.series(study["key"])
        except WorkstationError:
            return "a study"
        images = sum(row["slices"] for row in series)
        if self.locked:
            return f"a study ({len(series)} series, {images} images)"
        return f"{study['study_description'] or 'CT study'} ({len(series)} series, {images} images)"

    def _on_refused(self, calling: str) -> None:
        self.refused_count += 1
        text = (f"Refused an association from {calling!r}: not on the allow list (an admin adds it as a node "
                "if it is a real sender)")
        self._event("refused", text)
        self._status(text)
        self._update_indicator()

    # -- the AI on received studies ---------------------------------------------------------------
    def _next_analysis(self) -> None:
        if not self.pending or self.acting is None:
            self._update_indicator()
            return
        if self.runner.busy:  # the last job's thread is still winding down
            QTimer.singleShot(100, self._next_analysis)
            return
        key = self.pending.popleft()
        home, user, model = self.home, self.acting, str(self.settings.value("receiving/model", "")) or None
        job = self.analyse_job
        description = f"AI on a received study: {self._describe(key)}"
        self.jobs.start(lambda cancel: job(home, user, key, model, cancel), description,
                        lambda run: self._on_analysed(key, run))
        self._update_indicator("AI running")

    def _on_progress(self, done: int, total: int, _message: str) -> None:
        self._update_indicator(f"AI {round(100 * done / max(total, 1))}%")

    def _on_analysed(self, study_key: str, run: RecordedRun) -> None:
        analysis = run.analysis
        text = (f"AI ran on a received study, {self._describe(study_key)}: {len(run.finding_ids)} candidate "
                f"finding(s) to review ({analysis.model_name} {analysis.model_version})")
        self._event("ai", text)
        self.notice.notify(text)
        self._status(text)

    def _on_analysis_failed(self, message: str) -> None:
        text = f"The AI could not run on a received study: {message}"
        self._event("failed", text)
        self._status(text)

    # -- life cycle -------------------------------------------------------------------------------
    def _on_user_changed(self) -> None:
        """Logged in: listen if the setting says so, once the window is up (the app shows it
        right after login). Logged out: stop, as closing does; nobody is left to record under."""
        if self.review.user is None:
            self.stop_listening()
        elif self.listen_at_login and self.receiver is None:
            QTimer.singleShot(0, self._listen_at_login)

    def _listen_at_login(self) -> None:
        if self.review.user is not None and self.receiver is None:
            self.start_listening(at_login=True)

    def _event(self, kind: str, text: str) -> None:
        if self.panel is not None:
            self.panel.add_event(kind, text)

    def on_lock(self, locked: bool) -> None:
        """The lock hides the window and the notice; receiving goes on."""
        self.locked = locked
        if locked:
            self.notice.hide()
            if self.panel is not None:
                self.panel.hide()

    def shutdown(self) -> None:
        self.stop_listening()
        self.runner.cancel()
        self.runner.wait(5.0)
