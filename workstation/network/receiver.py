"""The Storage SCP: scanners and PACS push studies to this workstation by C-STORE.

Each association's instances are written under hashed names to its own folder in
`incoming/`, never outside the data folder, within the import size limits. When the sender
releases the association (its batch is complete) the folder goes through the library's normal
import, and `on_imported` is told; an aborted association's partial batch is discarded, so
nothing half-received is ever shown as complete. Associations from calling AE titles not on the
allow list are refused, and the refusal is logged.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Job
from workstation.network.dimse import STORAGE_CLASSES, store_instance
from workstation.network.nodes import NetworkError, checked_ae_title
from workstation.privacy import loggable_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """One completed batch: who sent it, how many instances, and the library's import report (or
    the reason the import failed)."""

    calling_ae: str
    instances: int
    report: object | None
    error: str | None = None


class StorageReceiver:
    """Listens on `port` as `ae_title` and files what arrives into the library of `home`."""

    def __init__(self, home: Path, ae_title: str, port: int, *, allowed_calling: set[str] | None = None,
                 on_imported: Callable[[Received], None] | None = None, host: str = "0.0.0.0",
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.home, self.port, self.host = Path(home), port, host
        self.ae_title = checked_ae_title(ae_title)
        self.allowed_calling = {checked_ae_title(t) for t in allowed_calling} if allowed_calling else None
        self.on_imported = on_imported
        self.on_refused = on_refused  # told the calling AE title of each refused association
        self._batches: dict[int, tuple[Path, dict[str, int], str]] = {}
        self._lock = threading.Lock()
        self._import_lock = threading.Lock()  # one library import at a time
        self._server = None
        self.refused: list[str] = []

    def start(self) -> None:
        from pynetdicom import AE, evt

        for stale in (self.home / "incoming").glob("scp-*"):  # batches a killed receiver never completed
            shutil.rmtree(stale, ignore_errors=True)
        ae = AE(ae_title=self.ae_title)
        for uid in STORAGE_CLASSES:
            ae.add_supported_context(uid)
        ae.add_supported_context("1.2.840.10008.1.1")  # Verification: senders echo first
        if self.allowed_calling:
            ae.require_calling_aet = sorted(self.allowed_calling)
        handlers = [(evt.EVT_C_STORE, self._stored), (evt.EVT_RELEASED, self._released),
                    (evt.EVT_ABORTED, self._aborted), (evt.EVT_REJECTED, self._rejected)]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise NetworkError(f"Cannot listen on port {self.port}: {exc.strerror or exc} (another receiver, or a "
                               "port below 1024 without the right)") from exc
        log.info("receiving as %s on port %d", self.ae_title, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    # -- events, on pynetdicom's threads ----------------------------------------------------------
    def _rejected(self, event) -> None:
        calling = str(event.assoc.requestor.ae_title).strip()
        if self.allowed_calling and calling not in self.allowed_calling:
            # say who, so the site can add them if they are a real sender
            self.refused.append(calling)
            log.warning("refused an association from unknown calling AE title %r (not on the allow list)", calling)
            if self.on_refused is not None:
                self.on_refused(calling)

    def _batch(self, event) -> tuple[Path, dict[str, int], str]:
        key = id(event.assoc)
        with self._lock:
            if key not in self._batches:
                folder = self.home / "incoming" / f"scp-{uuid.uuid4().hex}"
                folder.mkdir(parents=True, exist_ok=True)
                self._batches[key] = (folder, {}, str(event.assoc.requestor.ae_title).strip())
            return self._batches[key]

    def _stored(self, event) -> int:
        folder, counts, _calling = self._batch(event)
        return store_instance(event, folder, counts)

    def _take(self, event) -> tuple[Path, dict[str, int], str] | None:
        with self._lock:
            return self._batches.pop(id(event.assoc), None)

    def _aborted(self, event) -> None:
        batch = self._take(event)
        if batch is not None:
            folder, counts, calling = batch
            log.warning("association from %s aborted after %d instance(s); the partial batch was discarded",
                        calling, counts.get("received", 0))
            shutil.rmtree(folder, ignore_errors=True)

    def _released(self, event) -> None:
        batch = self._take(event)
        if batch is None:
            return
        folder, counts, calling = batch
        received = counts.get("received", 0)
        report, error = None, None
        if received:
            from workstation.jobs import run_job
            from workstation.library import StudyLibrary

            with self._import_lock:
                try:
                    report = run_job(StudyLibrary(self.home).import_job([folder]))
                except WorkstationError as exc:
                    error = str(exc)
                    # the sentence may name the patient's series: the log gets its kind and place only
                    log.warning("a batch of %d instance(s) from %s was not imported: %s", received, calling,
                                loggable_error(exc))
        shutil.rmtree(folder, ignore_errors=True)
        if received and self.on_imported is not None:
            self.on_imported(Received(calling, received, report, error))


def analyse_received_job(home: Path, user, study_key: str, model: str | None = None,
                         cancel: CancelToken | None = None) -> Job:
    """The AI on a received study's largest CT series, recorded as Run AI is (RecordedRun), on its
    own store connection: the viewer runs it on a worker thread, the receive command between batches."""
    from workstation.dicom.load import load_largest_series_job
    from workstation.inference.registry import find_model
    from workstation.library import StudyLibrary
    from workstation.review.analyses import run_and_record_job
    from workstation.review.store import ReviewStore

    user.require("run_ai")
    library = StudyLibrary(home)
    study = library.find_study(study_key)
    series = [row for row in library.series(study["key"]) if (row.get("modality") or "CT") == "CT"]
    if not series:
        raise WorkstationError("The received study has no CT series for the AI")
    largest = max(series, key=lambda row: row["slices"])
    volume = yield from load_largest_series_job([library.series_folder(largest)], cancel)
    bundle = find_model(model) if model else find_model()
    store = ReviewStore.in_home(home)
    try:
        return (yield from run_and_record_job(store, user, volume, bundle, "auto", None, cancel))
    finally:
        store.close()
