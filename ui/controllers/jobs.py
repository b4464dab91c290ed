"""Start a core job on the JobRunner and hand its result to the handler of whoever started it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from ui.workers import JobRunner
from workstation.jobs import CancelToken, Job


class JobDispatch(QObject):
    """One job at a time (the runner's rule); `started` lets the window show progress and cancel."""

    started = Signal()

    def __init__(self, runner: JobRunner, status: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.runner = runner
        self._status = status
        self._on_done: Callable[[Any], None] | None = None
        runner.succeeded.connect(self._deliver)
        runner.finished.connect(self._forget)

    def start(self, make_job: Callable[[CancelToken], Job[Any]], description: str,
              on_done: Callable[[Any], None]) -> bool:
        if not self.runner.start(make_job, description):
            self._status("Another job is still running; cancel it first (Esc)")
            return False
        self._on_done = on_done
        self._status(description)
        self.started.emit()
        return True

    def _deliver(self, result: Any) -> None:
        if self._on_done is not None:
            handler, self._on_done = self._on_done, None
            handler(result)

    def _forget(self) -> None:
        self._on_done = None  # a failed or cancelled job leaves no handler behind
