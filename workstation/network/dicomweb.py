"""DICOMweb (dicomweb-client) for sites whose PACS speaks only HTTP: QIDO-RS search, WADO-RS
retrieve into the library (through the same staging folder and import as C-GET), STOW-RS store."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workstation.config import LIMITS
from workstation.files import write_atomically
from workstation.jobs import CancelToken, Job, Progress
from workstation.network.dimse import RETURN_KEYS, RetrieveResult, SendResult, staging_folder
from workstation.network.nodes import NetworkError, RemoteNode

STORE_BATCH = 16  # instances per STOW-RS request: one request must not hold a whole study in memory


def _client(node: RemoteNode):
    from dicomweb_client.api import DICOMwebClient

    if not node.dicomweb_url:
        raise NetworkError(f"Node {node.name} has no DICOMweb URL (pacs nodes add ... --dicomweb URL)")
    return DICOMwebClient(node.dicomweb_url, timeout=30)


@contextmanager
def _web_errors(node: RemoteNode, what: str) -> Iterator[None]:
    """The requests/HTTP failures of one call, as a NetworkError naming the node."""
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise NetworkError(f"DICOMweb node {node.name} refused the {what} (HTTP {status})") from exc
    except requests.RequestException as exc:
        raise NetworkError(f"DICOMweb node {node.name} did not answer at {node.dicomweb_url} "
                           f"({type(exc).__name__})") from exc


def web_find(node: RemoteNode, level: str, query: dict[str, str]) -> list[dict[str, str]]:
    """QIDO-RS at study or series level; matches as {keyword: text}, like dimse.find."""
    from pydicom.dataset import Dataset

    level = level.upper()
    if level not in ("STUDY", "SERIES"):
        raise NetworkError("DICOMweb search works at study or series level")
    filters = {keyword: value for keyword, value in query.items() if value and keyword != "StudyInstanceUID"}
    client = _client(node)
    with _web_errors(node, "search"):
        if level == "STUDY":
            if query.get("StudyInstanceUID"):
                filters["StudyInstanceUID"] = query["StudyInstanceUID"]
            found = client.search_for_studies(search_filters=filters, fields=list(RETURN_KEYS[level]))
        else:
            found = client.search_for_series(study_instance_uid=query.get("StudyInstanceUID") or None,
                                             search_filters=filters, fields=list(RETURN_KEYS[level]))
    matches = []
    for item in found:
        ds = Dataset.from_json(item)
        matches.append({keyword: str(ds.get(keyword, "") or "") for keyword in RETURN_KEYS[level]})
    return matches


def web_retrieve_job(home: Path, node: RemoteNode, study_uid: str, cancel: CancelToken | None = None
                     ) -> Job[RetrieveResult]:
    """WADO-RS of one study into the staging folder, then the library's import."""
    from workstation.library import StudyLibrary

    cancel = cancel or CancelToken()
    client = _client(node)
    folder = staging_folder(home, node, study_uid)
    folder.mkdir(parents=True, exist_ok=True)
    result = RetrieveResult()
    with _web_errors(node, "search"):
        total = _instance_count(client, study_uid)
    try:
        with _web_errors(node, "retrieve"):
            for part in _study_parts(client, study_uid):
                cancel.check()
                _store_part(part, folder)
                result.received += 1
                yield Progress(result.received, max(total, result.received), f"Retrieving ({result.received})")
    except NetworkError:
        if not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if not result.received:
        shutil.rmtree(folder, ignore_errors=True)
        raise NetworkError(f"DICOMweb node {node.name} sent no instance of that study (check the Study UID)")
    result.imported = yield from StudyLibrary(home).import_job([folder], cancel)
    shutil.rmtree(folder, ignore_errors=True)
    return result


def _instance_count(client, study_uid: str) -> int:
    """The study's instance count for the progress bar, from one study-level QIDO row (listing
    every instance cost a quarter of a second on 300); 1 when the server does not say."""
    found = client.search_for_studies(search_filters={"StudyInstanceUID": study_uid},
                                      fields=["NumberOfStudyRelatedInstances"])
    try:
        return max(1, int(found[0]["00201208"]["Value"][0]))
    except (IndexError, KeyError, TypeError, ValueError):
        return 1


def _study_parts(client, study_uid: str) -> Iterator[bytes]:
    """The study's instances as the server sent them, one Part 10 file per multipart part, in the
    syntax it stores (transfer-syntax=*: no transcoding on the server). dicomweb-client's own
    iter_study decodes each into a Dataset, which we would only write back out: half of the
    retrieve's time went to that round trip. Its request and multipart helpers are private API of
    the pinned version; the WADO-RS tests against Orthanc guard them."""
    from dicomweb_client.web import _Transaction

    url = client._get_studies_url(_Transaction.RETRIEVE, study_uid)
    response = client._http_get(url, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                                          "transfer-syntax=*"}, stream=True)
    if response.headers.get("Content-Type", "").startswith("application/dicom"):  # a single bare part
        yield response.content
        return
    yield from client._decode_multipart_message(response, stream=True)


def _store_part(data: bytes, folder: Path) -> None:
    if len(data) > LIMITS.max_file_bytes:
        raise NetworkError(f"A retrieved instance is {len(data)} bytes, over the import limit")
    # Staging needs no fsync: the import makes its own durable copy, and a part lost to a power cut
    # is fetched again on the next retrieve. Named by content, so a repeated part is one file.
    write_atomically(folder / f"{hashlib.sha256(data).hexdigest()[:40]}.dcm", data, durable=False)


def web_send_job(node: RemoteNode, files: list[Path], cancel: CancelToken | None = None) -> Job[SendResult]:
    """STOW-RS in batches; the server's failed-SOP list names what it refused."""
    from pydicom import dcmread

    cancel = cancel or CancelToken()
    client = _client(node)
    result = SendResult()
    for start in range(0, len(files), STORE_BATCH):
        cancel.check()
        batch = [dcmread(path) for path in files[start:start + STORE_BATCH]]
        with _web_errors(node, "store"):
            response = client.store_instances(batch)
        failed = response.get("FailedSOPSequence", []) if response is not None else []
        result.failed.extend(f"{item.get('ReferencedSOPInstanceUID', '?')}: reason {item.get('FailureReason', '?')}"
                             for item in failed)
        result.sent += len(batch) - len(failed)
        yield Progress(min(start + STORE_BATCH, len(files)), len(files), "Sending by DICOMweb")
    return result
