"""The single adapter that runs a core job (a generator yielding Progress) off the GUI thread.

Progress, result and failure arrive as Qt signals in the GUI thread; cancel sets the job's
CancelToken. Errors reach the user as the WorkstationError's sentence; anything else as one
sentence pointing to the log, with the traceback in the log file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from workstation.errors import CancelledError, WorkstationError
from workstation.jobs import CancelToken, Job
from workstation.privacy import loggable_error

log = logging.getLogger("workstation.ui")
PROGRESS_INTERVAL_S = 0.05  # at most 20 progress updates a second reach the GUI


class JobRunner(QObject):
    """Runs one job at a time; `busy` tells whether one is running."""

    progress = Signal(int, int, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self) -> None:
        super().__init__()
        self._cancel: CancelToken | None = None
        self._thread: threading.Thread | None = None
        self._undelivered = False  # a job's signals are still queued for the GUI thread
        self.finished.connect(self._delivered)  # queued: runs in the GUI thread after `succeeded`

    @property
    def busy(self) -> bool:
        """Until the GUI thread has handled the job's last signal, not only until its thread ends:
        a job started in between would otherwise receive the earlier job's result."""
        return self._undelivered or (self._thread is not None and self._thread.is_alive())

    def _delivered(self) -> None:
        self._undelivered = False

    def start(self, make_job: Callable[[CancelToken], Job[Any]], description: str) -> bool:
        if self.busy:
            return False
        self._cancel = CancelToken()
        cancel = self._cancel
        self._undelivered = True
        self._thread = threading.Thread(target=self._run, args=(make_job, cancel, description),
                                        name=f"job: {description}", daemon=True)
        self._thread.start()
        return True

    def cancel(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, make_job: Callable[[CancelToken], Job[Any]], cancel: CancelToken, description: str) -> None:
        last = 0.0
        try:
            job = make_job(cancel)
            while True:
                try:
                    step = next(job)
                except StopIteration as stop:
                    self.succeeded.emit(stop.value)
                    break
                now = time.monotonic()
                if now - last >= PROGRESS_INTERVAL_S or step.done >= step.total:
                    last = now
                    self.progress.emit(step.done, step.total, step.message)
        except CancelledError:
            self.cancelled.emit()
        except WorkstationError as exc:
            # the description and the sentence may name the user's folder: the screen gets them, the log not
            log.warning("a background job failed: %s", loggable_error(exc))
            self.failed.emit(str(exc))
        except Exception as exc:  # the job's bug must not kill the app: one sentence, traceback to the log
            log.error("a background job failed unexpectedly: %s", loggable_error(exc))
            self.failed.emit(f"{description} failed because of an internal error; details are in the log file.")
        finally:
            self.finished.emit()
