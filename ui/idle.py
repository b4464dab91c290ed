"""Idle watching: lock the screen after a quiet period (hiding all patient data) and count
active reading time (idle and locked time excluded)."""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, QTimer

ACTIVITY_EVENTS = {QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.KeyPress, QEvent.Type.Wheel}
ACTIVE_WINDOW_S = 60.0  # a minute without input no longer counts as reading
FLUSH_EVERY_S = 15


class IdleWatcher(QObject):
    """Calls `on_lock()` after `lock_after_s` without input; `add_active(seconds)` for reading time."""

    def __init__(self, lock_after_s: float, on_lock, add_active, is_locked, parent=None) -> None:
        super().__init__(parent)
        self.lock_after_s = lock_after_s
        self.on_lock, self.add_active, self.is_locked = on_lock, add_active, is_locked
        self.last_input = time.monotonic()
        self.pending_s = 0.0
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.tick)
        self.timer.start()

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() in ACTIVITY_EVENTS:
            self.last_input = time.monotonic()
        return False

    def tick(self, now: float | None = None, step_s: float = 1.0) -> None:
        now = time.monotonic() if now is None else now
        idle = now - self.last_input
        if self.is_locked():
            return
        if idle >= self.lock_after_s:
            self.flush()
            self.on_lock()
            return
        if idle < ACTIVE_WINDOW_S:
            self.pending_s += step_s
            if self.pending_s >= FLUSH_EVERY_S:
                self.flush()

    def flush(self) -> None:
        if self.pending_s > 0:
            self.add_active(self.pending_s)
            self.pending_s = 0.0
