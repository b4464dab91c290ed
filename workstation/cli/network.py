"""The `workstation pacs` and `workstation receive` commands: DICOM nodes, echo, find, retrieve,
send, and the Storage SCP. Searching, retrieving and sending touch patient data and need a login
once accounts exist; changing the node list is an administrator's and is audited."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from workstation.cli.common import acting_user, record_read, review_store, run_with_progress, write_dicom_results
from workstation.config import data_home
from workstation.errors import WorkstationError

AS_HELP = "who is doing this (needed once accounts exist; asked for a password)"


def register(commands: argparse._SubParsersAction) -> None:
    pacs = commands.add_parser("pacs", help="talk to a PACS or scanner: nodes, echo, find, retrieve, send")
    verbs = pacs.add_subparsers(metavar="ACTION", required=True)

    nodes = verbs.add_parser("nodes", help="the configured DICOM nodes").add_subparsers(metavar="WHAT",
                                                                                         required=True)
    add = nodes.add_parser("add", help="add or replace a node (admin)")
    add.add_argument("name")
    add.add_argument("--aet", required=True, help="the node's AE title")
    add.add_argument("--host", required=True)
    add.add_argument("--port", required=True, type=int)
    add.add_argument("--dicomweb", help="its DICOMweb base URL, if it has one")
    add.add_argument("--as", dest="actor", help=AS_HELP)
    add.set_defaults(run=cmd_nodes_add)
    listing = nodes.add_parser("list", help="list the nodes and this workstation's own AE title")
    listing.set_defaults(run=cmd_nodes_list)
    remove = nodes.add_parser("remove", help="remove a node (admin)")
    remove.add_argument("name")
    remove.add_argument("--as", dest="actor", help=AS_HELP)
    remove.set_defaults(run=cmd_nodes_remove)
    local = nodes.add_parser("local", help="set this workstation's AE title and receive port (admin)")
    local.add_argument("--aet")
    local.add_argument("--port", type=int)
    local.add_argument("--as", dest="actor", help=AS_HELP)
    local.set_defaults(run=cmd_nodes_local)

    echo = verbs.add_parser("echo", help="check that a node answers and accepts us (C-ECHO)")
    echo.add_argument("node")
    echo.set_defaults(run=cmd_echo)

    find = verbs.add_parser("find", help="search a node (C-FIND)")
    find.add_argument("node")
    find.add_argument("--level", choices=["patient", "study", "series"], default="study")
    find.add_argument("--patient-id")
    find.add_argument("--name", help="patient name; * and ? match any text")
    find.add_argument("--date", help="study date YYYYMMDD or a range FROM-TO (either side may be open)")
    find.add_argument("--modality")
    find.add_argument("--accession")
    find.add_argument("--study", help="Study Instance UID (series level: the study whose series to list)")
    find.add_argument("--json", type=Path, dest="json_out", metavar="OUT", help="also write the matches as JSON")
    find.add_argument("--via", choices=["dimse", "web"], default="dimse",
                        help="DICOM networking (default) or the node's DICOMweb URL")
    find.add_argument("--as", dest="actor", help=AS_HELP)
    find.set_defaults(run=cmd_find)

    retrieve = verbs.add_parser("retrieve", help="bring a study into the library (C-GET or C-MOVE)")
    retrieve.add_argument("node")
    retrieve.add_argument("--study", required=True, help="Study Instance UID (from 'pacs find')")
    retrieve.add_argument("--method", choices=["get", "move"], default="get")
    retrieve.add_argument("--via", choices=["dimse", "web"], default="dimse",
                        help="DICOM networking (default) or the node's DICOMweb URL")
    retrieve.add_argument("--as", dest="actor", help=AS_HELP)
    retrieve.set_defaults(run=cmd_retrieve)

    send = verbs.add_parser("send", help="send a library study to a node (C-STORE)")
    send.add_argument("node")
    send.add_argument("study", help="a study from 'workstation list'")
    send.add_argument("--results", action="store_true",
                      help="send the signed read as DICOM (SR, SEG, PDF) instead of the images")
    send.add_argument("--via", choices=["dimse", "web"], default="dimse",
                        help="DICOM networking (default) or the node's DICOMweb URL")
    send.add_argument("--as", dest="actor", help=AS_HELP)
    send.set_defaults(run=cmd_send)

    receive = commands.add_parser("receive", help="listen for studies pushed by scanners and PACS (Storage SCP)")
    receive.add_argument("--aet", help="our AE title (default: the one in 'pacs nodes list')")
    receive.add_argument("--port", type=int, help="port to listen on (default: the configured receive port)")
    receive.add_argument("--allow", action="append", metavar="AET",
                         help="accept only these calling AE titles (repeatable; default: the configured nodes)")
    receive.add_argument("--allow-any", action="store_true", help="accept any calling AE title")
    receive.add_argument("--analyze", action="store_true",
                         help="run the AI on each received study (recorded as Run AI; needs the run-AI permission)")
    receive.add_argument("--model", help="the model --analyze runs (default: the demo model)")
    receive.add_argument("--as", dest="actor", help=AS_HELP)
    receive.set_defaults(run=cmd_receive)


def _node_and_user(args: argparse.Namespace, permission: str):
    """(node book, the node named by args.node, the review store, who acts) for a command on a node."""
    book = _book()
    node = book.node(args.node)
    store = review_store()
    return book, node, store, acting_user(store, args.actor, permission).username


def _book():
    from workstation.network.nodes import load_nodes

    return load_nodes(data_home())


def _change_nodes(args: argparse.Namespace, change: str, book) -> None:
    """Save the node list and audit the change, as an administrator."""
    from workstation.network.nodes import change_nodes

    store = review_store()
    change_nodes(store, data_home(), acting_user(store, args.actor, "administer"), change, book)


def cmd_nodes_add(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from workstation.network.nodes import RemoteNode

    book = _book()
    node = RemoteNode(args.name, args.aet, args.host, args.port, args.dicomweb)
    _change_nodes(args, f"added {node.name}", replace(book, nodes={**book.nodes, node.name: node}))
    print(f"Node {node.name}: {node.ae_title} at {node.host}:{node.port}" +
          (f", DICOMweb {node.dicomweb_url}" if node.dicomweb_url else ""))
    return 0


def cmd_nodes_remove(args: argparse.Namespace) -> int:
    from dataclasses import replace

    book = _book()
    book.node(args.name)
    _change_nodes(args, f"removed {args.name}",
                  replace(book, nodes={n: v for n, v in book.nodes.items() if n != args.name}))
    print(f"Removed node {args.name}.")
    return 0


def cmd_nodes_local(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from workstation.network.nodes import NetworkError, checked_ae_title

    book = _book()
    port = book.receive_port if args.port is None else args.port
    if not 1 <= port <= 65535:
        raise NetworkError(f"Receive port {port} must be between 1 and 65535")
    book = replace(book, local_ae=checked_ae_title(args.aet) if args.aet else book.local_ae, receive_port=port)
    _change_nodes(args, "local", book)
    print(f"This workstation is {book.local_ae}, receiving on port {book.receive_port}.")
    return 0


def cmd_nodes_list(args: argparse.Namespace) -> int:
    book = _book()
    print(f"This workstation: AE title {book.local_ae}, receive port {book.receive_port}")
    if not book.nodes:
        print("No nodes yet; add one with 'workstation pacs nodes add NAME --aet AET --host HOST --port PORT'.")
    for node in book.nodes.values():
        web = f"  DICOMweb {node.dicomweb_url}" if node.dicomweb_url else ""
        print(f"  {node.name:<16} {node.ae_title:<16} {node.host}:{node.port}{web}")
    return 0


def cmd_echo(args: argparse.Namespace) -> int:
    import time

    from workstation.network.dimse import echo

    book = _book()
    node = book.node(args.node)
    start = time.perf_counter()
    echo(node, book.local_ae)
    print(f"{node.name} ({node.ae_title} at {node.host}:{node.port}) answered in "
          f"{(time.perf_counter() - start) * 1000:.0f} ms.")
    return 0


def _date_range(text: str | None) -> str | None:
    if not text:
        return None
    parts = text.split("-")
    if len(parts) > 2 or not all(p == "" or (len(p) == 8 and p.isdigit()) for p in parts):
        raise WorkstationError(f"Date {text!r} must be YYYYMMDD or FROM-TO, e.g. 20240101-20241231")
    return text


def cmd_find(args: argparse.Namespace) -> int:
    from workstation.network.dimse import find

    book, node, store, who = _node_and_user(args, "view")
    query = {"PatientID": args.patient_id, "PatientName": args.name, "StudyDate": _date_range(args.date),
             "AccessionNumber": args.accession, "StudyInstanceUID": args.study}
    if args.modality:
        query["ModalitiesInStudy" if args.level == "study" else "Modality"] = args.modality
    if args.level == "patient":
        query = {k: v for k, v in query.items() if k in ("PatientID", "PatientName")}
    if args.via == "web":
        from workstation.network.dicomweb import web_find

        matches = web_find(node, args.level, query)
    else:
        matches = find(node, book.local_ae, args.level, query)
    record_read(store, who, "library_listed", source=f"pacs:{node.name}", level=args.level, matches=len(matches))
    if args.json_out:
        args.json_out.write_text(json.dumps(matches, indent=1, ensure_ascii=False), encoding="utf-8")
    if not matches:
        print(f"No {args.level} on {node.name} matches.")
    for match in matches:
        print("  ".join(f"{value}" for value in match.values() if value))
    return 0


def cmd_retrieve(args: argparse.Namespace) -> int:
    from workstation.network.dimse import retrieve_job

    book, node, store, who = _node_and_user(args, "view")
    if args.via == "web":
        from workstation.network.dicomweb import web_retrieve_job

        result = run_with_progress(web_retrieve_job(data_home(), node, args.study))
    else:
        result = run_with_progress(retrieve_job(data_home(), node, book.local_ae, args.study, method=args.method,
                                                receive_port=book.receive_port))
    how = "WADO-RS" if args.via == "web" else f"C-{args.method.upper()}"
    report = result.imported
    record_read(store, who, "imported", study_uid=args.study, source=f"pacs:{node.name}", method=how,
                received=result.received, files=report.files_copied)
    print(f"Retrieved {result.received} instance(s) from {node.name} by {how}"
          + (f", {result.failed} failed" if result.failed else "") +
          f": {len(report.series)} series in the library, {report.files_copied} file(s) new, "
          f"{report.files_already_present} already there.")
    for _label, reason in report.skipped[:10]:
        print(f"  skipped {reason}")
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from workstation.library import StudyLibrary
    from workstation.network.dimse import send_job
    from workstation.review import audit

    book, node, store, who = _node_and_user(args, "export")
    library = StudyLibrary(data_home())
    study = library.find_study(args.study)
    with tempfile.TemporaryDirectory(prefix="results-") as scratch:
        if args.results:
            files = sorted(write_dicom_results(store, who, args.study, Path(scratch)).files.values())
        else:
            files = sorted(path for series in library.series(study["key"])
                           for path in library.series_folder(series).glob("*.dcm"))
        if args.via == "web":
            from workstation.network.dicomweb import web_send_job

            result = run_with_progress(web_send_job(node, files))
        else:
            result = run_with_progress(send_job(node, book.local_ae, files))
    with store.transaction() as connection:
        audit.append(connection, who, "exported", study_uid=study["study_uid"], new_value={
            "kind": "dicom-send-results" if args.results else "dicom-send", "node": node.name,
            "ae_title": node.ae_title, "via": args.via, "sent": result.sent, "failed": len(result.failed)})
    print(f"Sent {result.sent} of {len(files)} instance(s) to {node.name}.")
    for reason in result.failed[:10]:
        print(f"  failed: {reason}")
    return 0 if not result.failed else 1


def _analyse_received(store, user, study_key: str, model: str | None) -> None:
    """The AI on a received study, recorded as Run AI; a failure is said and receiving goes on."""
    from workstation.jobs import run_job
    from workstation.network.receiver import analyse_received_job

    try:
        recorded = run_job(analyse_received_job(data_home(), user, study_key, model))
        print(f"Analysed study {study_key[:12]}: {len(recorded.finding_ids)} candidate finding(s) to review.",
              flush=True)
    except WorkstationError as exc:
        print(f"The AI could not run on study {study_key[:12]}: {exc}", flush=True)


def cmd_receive(args: argparse.Namespace) -> int:
    from workstation.network.nodes import NetworkError
    from workstation.network.receiver import Received, StorageReceiver

    import queue

    book = _book()
    store = review_store()
    user = acting_user(store, args.actor, "run_ai" if args.analyze else "view")
    who = user.username
    allowed = None if args.allow_any else set(args.allow or [n.ae_title for n in book.nodes.values()])
    if allowed is not None and not allowed:
        raise NetworkError("No sender is allowed yet: add nodes ('pacs nodes add'), or pass --allow AET or "
                           "--allow-any")
    to_analyse: queue.Queue[str] = queue.Queue()

    def imported(batch: Received) -> None:
        from workstation.review.store import ReviewStore

        if batch.report is None:
            print(f"{batch.calling_ae}: {batch.instances} instance(s) not imported: {batch.error}", flush=True)
            return
        thread_store = ReviewStore.in_home(data_home())  # this runs on the receiver's thread
        try:
            record_read(thread_store, who, "imported", source=f"dicom:{batch.calling_ae}",
                        received=batch.instances, files=batch.report.files_copied)
        finally:
            thread_store.close()
        print(f"{batch.calling_ae}: {batch.instances} instance(s), {len(batch.report.studies)} study(ies) in the "
              f"library ({batch.report.files_copied} new).", flush=True)
        if args.analyze:
            for key in batch.report.studies:
                to_analyse.put(key)

    receiver = StorageReceiver(data_home(), args.aet or book.local_ae, args.port or book.receive_port,
                               allowed_calling=allowed, on_imported=imported)
    receiver.start()
    print(f"Receiving as {receiver.ae_title} on port {receiver.port}"
          + (f" from {', '.join(sorted(allowed))}" if allowed else " from any sender") + "; Ctrl+C stops.",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            try:
                key = to_analyse.get(timeout=0.5)
            except queue.Empty:
                continue
            _analyse_received(store, user, key, args.model)  # here, not on the receiver's thread: receiving goes on
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    print("Stopped receiving.", file=sys.stderr)
    return 0
