"""The screen lock after idle time (patient data hidden until the same user or an admin logs in)
and the reader's active time, which idle and locked time do not count towards."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

from ui.controllers.review import ReviewController
from ui.dialogs.login import LoginDialog
from ui.idle import IdleWatcher
from workstation.errors import WorkstationError
from workstation.review.store import ReviewStore
from workstation.review.users import User, record_lock, unlock

log = logging.getLogger("workstation.ui")


class ScreenLockController(QObject):
    """Owns whether the screen is locked; `lock_changed` tells the window to hide or show its contents."""

    lock_changed = Signal(bool)

    def __init__(self, store: ReviewStore, review: ReviewController, lock_after_s: float,
                 status: Callable[[str], None], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.store, self.review, self._status = store, review, status
        self.locked = False
        self.idle = IdleWatcher(lock_after_s, self.lock_screen, self._add_reading_time, lambda: self.locked, self)
        QApplication.instance().installEventFilter(self.idle)

    def _add_reading_time(self, seconds: float) -> None:
        if self.review.session is not None:
            try:
                self.review.session.add_active_time(seconds)
            except WorkstationError as exc:
                log.warning("reading time not saved: %s", exc)

    def lock_screen(self) -> None:
        """Hide every patient identifier and image until the same user or an admin logs in."""
        if self.locked:
            return
        self.locked = True
        self.lock_changed.emit(True)
        if self.review.user is not None:
            record_lock(self.store, self.review.user)
        QTimer.singleShot(0, self._ask_unlock)

    def lock_now(self) -> None:
        """Ctrl+L: leaving the desk without waiting for the idle lock."""
        if self.review.user is None:
            self._status("Nobody is logged in: there is no session to lock")
            return
        self.lock_screen()

    def _ask_unlock(self) -> None:
        user = self.review.user
        if not self.locked or user is None:
            return
        dialog = LoginDialog(self.store, self.parent(), "Unlock", only_user=user.username)
        if dialog.exec() and dialog.user is not None:
            try:
                self.unlock(dialog.user)
            except WorkstationError as exc:  # someone else logged in: say so and ask again
                self._status(str(exc))
        if self.locked:
            QTimer.singleShot(0, self._ask_unlock)

    def unlock(self, user: User) -> None:
        unlock(self.store, self.review.user or user, user)
        self.locked = False
        self.lock_changed.emit(False)
        self.idle.last_input = time.monotonic()

    def stop(self) -> None:
        """Closing: the reading time so far is saved and the watch ends."""
        self.idle.flush()
        self.idle.timer.stop()
