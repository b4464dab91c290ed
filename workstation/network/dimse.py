"""DICOM networking with a remote node (pynetdicom): echo, find, retrieve by C-GET or C-MOVE,
and send. Retrieved instances land in a staging folder of the data folder and reach the library
only through its normal import (same validation, limits and de-duplication), after the retrieve
completed: an interrupted retrieve shows nothing, keeps what arrived, and a rerun completes it.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from workstation.config import LIMITS
from workstation.files import write_atomically
from workstation.jobs import CancelToken, Job, Progress
from workstation.network.nodes import NetworkError, RemoteNode
from workstation.privacy import loggable_error

log = logging.getLogger(__name__)

TIMEOUTS = {"connection_timeout": 5, "acse_timeout": 15, "dimse_timeout": 60, "network_timeout": 60}
# What a retrieve asks the peer to send: the images we read plus the objects workstations send back.
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.2",      # CT Image
    "1.2.840.10008.5.1.4.1.1.2.1",    # Enhanced CT Image
    "1.2.840.10008.5.1.4.1.1.7",      # Secondary Capture
    "1.2.840.10008.5.1.4.1.1.4",      # MR Image
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.66.4",   # Segmentation
    "1.2.840.10008.5.1.4.1.1.104.1",  # Encapsulated PDF
)
FIND_LEVELS = ("PATIENT", "STUDY", "SERIES")
MAX_INSTANCES_PER_BATCH = 100_000  # one retrieve or one association: more than any CT study holds
RETURN_KEYS = {
    "PATIENT": ("PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
                "NumberOfPatientRelatedStudies"),
    "STUDY": ("PatientName", "PatientID", "IssuerOfPatientID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber",
              "ModalitiesInStudy", "StudyInstanceUID", "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
               "NumberOfSeriesRelatedInstances"),
}


@dataclass
class RetrieveResult:
    """What a retrieve brought: instances received, failed or refused, and the import that followed."""

    received: int = 0
    failed: int = 0
    warnings: list[str] = field(default_factory=list)
    imported: object | None = None  # the library's ImportReport


def _ae(local_ae: str):
    from pynetdicom import AE

    ae = AE(ae_title=local_ae)
    for name, seconds in TIMEOUTS.items():
        setattr(ae, name, seconds)
    return ae


@contextmanager
def association(node: RemoteNode, local_ae: str, contexts: Iterable[str | tuple[str, list[str]]],
                roles: Iterable = (), handlers: list | None = None) -> Iterator[object]:
    """An established association with `node`, released at the end; a named NetworkError if the
    peer is down, refuses us or does not answer. A context is an abstract syntax, or one with its
    transfer syntaxes."""
    _reachable(node)
    ae = _ae(local_ae)
    for context in contexts:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=list(roles) or None,
                         evt_handlers=handlers or [])
    if not assoc.is_established:
        if assoc.is_rejected:
            why = f"rejected the association (does it know our AE title {local_ae!r}, and is its own {node.ae_title!r}?)"
        else:
            why = "aborted the association (or timed out)"
        raise NetworkError(f"DICOM node {node.name} {why}")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _reachable(node: RemoteNode) -> None:
    """A TCP connection first, so 'nobody listens there' is told apart from a refusal."""
    try:
        socket.create_connection((node.host, node.port), timeout=TIMEOUTS["connection_timeout"]).close()
    except OSError as exc:
        raise NetworkError(f"DICOM node {node.name} did not answer at {node.host}:{node.port} "
                           f"({exc.strerror or exc}; is it running, are host and port right?)") from exc


def _check_status(status, node: RemoteNode, what: str) -> int:
    if status is None or "Status" not in status:
        raise NetworkError(f"DICOM node {node.name} stopped answering during {what} (timeout or lost connection)")
    return int(status.Status)


def echo(node: RemoteNode, local_ae: str) -> None:
    """C-ECHO: the peer is there and accepts us."""
    with association(node, local_ae, ["1.2.840.10008.1.1"]) as assoc:
        code = _check_status(assoc.send_c_echo(), node, "the echo")
    if code != 0:
        raise NetworkError(f"DICOM node {node.name} answered the echo with status 0x{code:04X}")


def find(node: RemoteNode, local_ae: str, level: str, query: dict[str, str]) -> list[dict[str, str]]:
    """C-FIND (Study Root) at patient, study or series level; matches as {keyword: text}."""
    from pydicom.dataset import Dataset

    level = level.upper()
    if level not in FIND_LEVELS:
        raise NetworkError(f"Find level {level!r} must be one of {', '.join(FIND_LEVELS).lower()}")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword in RETURN_KEYS[level]:
        setattr(identifier, keyword, "")
    for keyword, value in query.items():
        if value:
            setattr(identifier, keyword, value)
    model = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Q/R - FIND (patient level is allowed within it)
    if level == "PATIENT":
        model = "1.2.840.10008.5.1.4.1.2.1.1"  # Patient Root Q/R - FIND
    matches = []
    with association(node, local_ae, [model]) as assoc:
        for status, found in assoc.send_c_find(identifier, model):
            code = _check_status(status, node, "the search")
            if code in (0xFF00, 0xFF01) and found is not None:
                matches.append({keyword: str(found.get(keyword, "") or "") for keyword in RETURN_KEYS[level]})
            elif code not in (0x0000, 0xFF00, 0xFF01):
                raise NetworkError(f"DICOM node {node.name} refused the search (status 0x{code:04X})")
    return matches


def staging_folder(home: Path, node: RemoteNode, study_uid: str) -> Path:
    """Where one study's retrieve collects its instances (kept across an interruption)."""
    return Path(home) / "incoming" / hashlib.sha256(f"{node.name}\x1f{study_uid}".encode()).hexdigest()[:24]


def store_instance(event, folder: Path, counts: dict[str, int]) -> int:
    """An EVT_C_STORE handler body: file the instance under a hashed name, within the size limit
    and the number of instances one batch may bring (a sender cannot fill the disk in one go)."""
    if counts.get("received", 0) >= MAX_INSTANCES_PER_BATCH:
        counts["refused"] = counts.get("refused", 0) + 1
        return 0xA700  # out of resources
    try:
        data = event.encoded_dataset(include_meta=True)
    except (AttributeError, ValueError, TypeError) as exc:
        log.warning("a received instance could not be encoded: %s", loggable_error(exc))  # no values in the log
        counts["refused"] = counts.get("refused", 0) + 1
        return 0xC210  # cannot understand
    if len(data) > LIMITS.max_file_bytes:
        counts["refused"] = counts.get("refused", 0) + 1
        return 0xA700  # out of resources
    sop_uid = str(event.request.AffectedSOPInstanceUID or "")
    name = hashlib.sha256((sop_uid or hashlib.sha256(data).hexdigest()).encode()).hexdigest()[:40] + ".dcm"
    try:
        write_atomically(folder / name, data)
    except OSError as exc:
        log.error("a received instance could not be written: %s", exc.strerror or exc)
        return 0xA700
    counts["received"] = counts.get("received", 0) + 1
    return 0x0000


def retrieve_job(home: Path, node: RemoteNode, local_ae: str, study_uid: str, *, method: str = "get",
                 receive_port: int | None = None, cancel: CancelToken | None = None) -> Job[RetrieveResult]:
    """Bring one study from `node` by C-GET or C-MOVE, then import it into the library."""
    from workstation.library import StudyLibrary

    cancel = cancel or CancelToken()
    if method not in ("get", "move"):
        raise NetworkError(f"Retrieve method {method!r} must be 'get' or 'move'")
    folder = staging_folder(home, node, study_uid)
    folder.mkdir(parents=True, exist_ok=True)
    result = RetrieveResult()
    counts: dict[str, int] = {}
    try:
        if method == "get":
            yield from _c_get(node, local_ae, study_uid, folder, counts, cancel)
        else:
            yield from _c_move(node, local_ae, study_uid, folder, counts, receive_port, cancel)
    except NetworkError:
        if not any(folder.iterdir()):  # nothing arrived: leave no trace; else keep it for a rerun
            shutil.rmtree(folder, ignore_errors=True)
        raise
    result.received, result.failed = counts.get("received", 0), counts.get("failed", 0) + counts.get("refused", 0)
    if not any(folder.iterdir()):
        shutil.rmtree(folder, ignore_errors=True)
        raise NetworkError(f"DICOM node {node.name} sent no instance of that study (check the Study UID)")
    report = yield from StudyLibrary(home).import_job([folder], cancel)
    result.imported = report
    shutil.rmtree(folder, ignore_errors=True)  # in the library now; a failed import keeps it for a rerun
    return result


def _study_identifier(study_uid: str):
    from pydicom.dataset import Dataset

    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    return identifier


def _follow(responses, node: RemoteNode, what: str, counts: dict[str, int], assoc, cancel: CancelToken
            ) -> Iterator[Progress]:
    """Progress from C-GET/C-MOVE pending responses; the final status decides success."""
    for status, _identifier in responses:
        if cancel.cancelled:
            assoc.abort()
            cancel.check()
        code = _check_status(status, node, what)
        remaining = int(getattr(status, "NumberOfRemainingSuboperations", 0) or 0)
        completed = int(getattr(status, "NumberOfCompletedSuboperations", 0) or 0)
        failed = int(getattr(status, "NumberOfFailedSuboperations", 0) or 0)
        if code in (0xFF00, 0xFF01):
            yield Progress(completed, max(1, completed + remaining + failed), f"Retrieving ({completed} received)")
            continue
        counts["failed"] = failed
        if code not in (0x0000, 0xB000):  # success, or success with some sub-operations failed
            raise NetworkError(f"DICOM node {node.name} could not complete {what}: {_status_text(code)}")


def _status_text(code: int) -> str:
    """What a retrieve's failure status means, as a reader can act on it (PS3.4 C.4.2/C.4.3)."""
    meanings = {0xA701: "it is out of resources", 0xA702: "it is out of resources",
                0xA801: "it does not know our AE title as a move destination (add us to its modalities)",
                0xA900: "it did not understand the request", 0xFE00: "it was cancelled"}
    if code in meanings:
        return f"{meanings[code]} (status 0x{code:04X})"
    if 0xC000 <= code <= 0xCFFF:
        return f"it could not process the request, e.g. it holds no such study (status 0x{code:04X})"
    return f"status 0x{code:04X}"


def _c_get(node: RemoteNode, local_ae: str, study_uid: str, folder: Path, counts: dict[str, int],
           cancel: CancelToken) -> Iterator[Progress]:
    from pynetdicom import build_role, evt

    model = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Q/R - GET
    roles = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
    handlers = [(evt.EVT_C_STORE, lambda event: store_instance(event, folder, counts))]
    with association(node, local_ae, [model, *STORAGE_CLASSES], roles, handlers) as assoc:
        yield from _follow(assoc.send_c_get(_study_identifier(study_uid), model), node, "the retrieve", counts,
                           assoc, cancel)


def _c_move(node: RemoteNode, local_ae: str, study_uid: str, folder: Path, counts: dict[str, int],
            receive_port: int | None, cancel: CancelToken) -> Iterator[Progress]:
    from pynetdicom import evt

    if not receive_port:
        raise NetworkError("A C-MOVE retrieve needs this workstation's receive port (pacs nodes local --port)")
    model = "1.2.840.10008.5.1.4.1.2.2.2"  # Study Root Q/R - MOVE
    server_ae = _ae(local_ae)
    for uid in STORAGE_CLASSES:
        server_ae.add_supported_context(uid)
    lock = threading.Lock()

    def handler(event):
        with lock:
            return store_instance(event, folder, counts)

    try:
        server = server_ae.start_server(("0.0.0.0", receive_port), block=False,
                                        evt_handlers=[(evt.EVT_C_STORE, handler)])
    except OSError as exc:
        raise NetworkError(f"Cannot listen on port {receive_port} for the C-MOVE ({exc.strerror or exc}); is "
                           "'workstation receive' already running? Then use --method get, or stop it") from exc
    try:
        with association(node, local_ae, [model]) as assoc:
            yield from _follow(assoc.send_c_move(_study_identifier(study_uid), local_ae, model), node,
                               "the retrieve", counts, assoc, cancel)
    finally:
        server.shutdown()


@dataclass
class SendResult:
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # one reason per failed instance


def send_job(node: RemoteNode, local_ae: str, files: list[Path], cancel: CancelToken | None = None
             ) -> Job[SendResult]:
    """C-STORE every file to `node`, in as few associations as their SOP classes allow."""
    from pydicom import dcmread
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    cancel = cancel or CancelToken()
    headers = []
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        headers.append((path, str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID)))
    contexts = sorted({(sop, syntax) for _p, sop, syntax in headers})
    if len(contexts) > 120:
        raise NetworkError(f"{len(contexts)} kinds of instance are more than one association can carry")
    result = SendResult()
    requested = [(sop, list(dict.fromkeys([syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian])))
                 for sop, syntax in contexts]
    with association(node, local_ae, requested) as assoc:
        for number, (path, _sop, _syntax) in enumerate(headers, 1):
            cancel.check()
            code = _check_status(assoc.send_c_store(dcmread(path)), node, "the send")
            if code in (0x0000, 0xB000, 0xB006, 0xB007):  # success, or stored with a coercion warning
                result.sent += 1
            else:
                result.failed.append(f"instance {number}: status 0x{code:04X}")
            yield Progress(number, len(headers), f"Sending ({number}/{len(headers)})")
    return result
