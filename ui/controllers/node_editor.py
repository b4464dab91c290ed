"""The node book in the viewer (#23): File > DICOM nodes... lists the PACS and scanners, an admin
adds, changes and removes them with the CLI's rules (each change saved and audited by the core's
`change_nodes`, as `workstation pacs nodes add|remove` does), and anyone checks a node with Echo,
a C-ECHO run on this controller's own job runner so the window never waits on the network."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from ui.controllers.review import ReviewController
from ui.dialogs.node_editor import NodeEditorDialog, NodeFields
from ui.workers import JobRunner
from workstation.errors import WorkstationError
from workstation.jobs import CancelToken, Progress
from workstation.network.dimse import echo
from workstation.network.nodes import NetworkError, NodeBook, RemoteNode, change_nodes, load_nodes


def node_from_fields(fields: NodeFields) -> RemoteNode:
    """The form as a RemoteNode, validated as the CLI's `pacs nodes add` validates its arguments;
    a NetworkError naming the field that is wrong."""
    port = fields.port.strip()
    if not port.isdigit():  # argparse's type=int, said as a sentence
        raise NetworkError(f"Port {fields.port!r} must be a whole number between 1 and 65535")
    return RemoteNode(fields.name, fields.ae_title, fields.host, int(port), fields.dicomweb_url or None)


def echo_job(node: RemoteNode, local_ae: str, cancel: CancelToken) -> Iterator[Progress]:
    """C-ECHO as a job for the JobRunner; returns how long the node took to answer, in ms."""
    yield Progress(0, 1, f"Echo {node.name}")
    start = time.perf_counter()
    echo(node, local_ae)
    return (time.perf_counter() - start) * 1000


class NodeEditorController(QObject):
    """Owns the DICOM nodes window and its echo runner; `nodes_changed` after each saved change
    (the receiving panel lists the nodes as its senders)."""

    nodes_changed = Signal()

    def __init__(self, home: Path, review: ReviewController, status: Callable[[str], None],
                 parent: QWidget) -> None:
        super().__init__(parent)
        self.home, self.review, self._status = Path(home), review, status
        self.dialog: NodeEditorDialog | None = None
        self.runner = JobRunner()  # its own: an echo never blocks a study load or Run AI
        self._echoing: RemoteNode | None = None
        self.runner.succeeded.connect(self._on_echoed)
        self.runner.failed.connect(self._on_echo_failed)
        self.runner.finished.connect(self._on_echo_finished)

    # -- the window -------------------------------------------------------------------------------
    def show_nodes(self) -> None:
        if self.dialog is None:
            self.dialog = NodeEditorDialog(self.parent())
            self.dialog.add_requested.connect(self.add_node)
            self.dialog.change_requested.connect(self.change_node)
            self.dialog.remove_requested.connect(self.remove_node)
            self.dialog.echo_requested.connect(self.echo_node)
        self.refresh()
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    @property
    def can_change(self) -> bool:
        user = self.review.user
        return user is not None and user.can("administer")

    def refresh(self, select: str | None = None) -> None:
        if self.dialog is None:
            return
        try:
            book = load_nodes(self.home)
        except NetworkError as exc:  # a damaged file: said, and nothing can be changed until it is fixed
            self.dialog.show_nodes([], "", False, str(exc))
            return
        self.dialog.show_nodes(sorted(book.nodes.values(), key=lambda node: node.name.lower()), _about(book),
                               self.can_change, self._access_text(), select)

    def _access_text(self) -> str:
        user = self.review.user
        if self.can_change:
            return ""
        if user is None:
            return "Read-only: log in as an admin to add, change or remove nodes."
        return (f"Read-only: you are logged in as {user.username} ({user.role}); adding, changing and removing "
                "nodes is an admin's job, because the nodes decide where studies are sent and who may send to us.")

    # -- changes (an admin's, audited) ------------------------------------------------------------
    def add_node(self, fields: NodeFields) -> bool:
        def added(book: NodeBook) -> tuple[str, NodeBook]:
            node = node_from_fields(fields)
            if node.name in book.nodes:  # the CLI's add replaces; here a slip of the keyboard must not
                raise NetworkError(f"A node called {node.name!r} already exists: select it and use Save changes "
                                   "to change it, or choose another name")
            return f"added {node.name}", replace(book, nodes={**book.nodes, node.name: node})

        return self._change(added, fields.name.strip(), lambda book: f"Added node {fields.name.strip()}: "
                                                                     f"{_describe(book.nodes[fields.name.strip()])}")

    def change_node(self, old_name: str, fields: NodeFields) -> bool:
        def changed(book: NodeBook) -> tuple[str, NodeBook]:
            book.node(old_name)
            node = node_from_fields(fields)
            if node.name != old_name and node.name in book.nodes:
                raise NetworkError(f"A node called {node.name!r} already exists: choose another name")
            nodes = {name: value for name, value in book.nodes.items() if name != old_name}
            what = f"changed {old_name}" if node.name == old_name else f"renamed {old_name} to {node.name}"
            return what, replace(book, nodes={**nodes, node.name: node})

        new_name = fields.name.strip()
        return self._change(changed, new_name, lambda book: f"Saved node {new_name}: {_describe(book.nodes[new_name])}")

    def remove_node(self, name: str) -> bool:
        def removed(book: NodeBook) -> tuple[str, NodeBook]:
            book.node(name)
            return f"removed {name}", replace(book, nodes={n: v for n, v in book.nodes.items() if n != name})

        return self._change(removed, None, lambda _book: f"Removed node {name}")

    def _change(self, make: Callable[[NodeBook], tuple[str, NodeBook]], select: str | None,
                done: Callable[[NodeBook], str]) -> bool:
        """Apply one change to the node book on disk, as the acting admin; any problem is one
        sentence in the window and the node book stays as it was."""
        user = self.review.user
        try:
            if user is None:
                raise WorkstationError("Log in as an admin to change the DICOM nodes")
            user.require("administer")  # before validating: a reader learns nothing by trying
            change, book = make(load_nodes(self.home))
            change_nodes(self.review.store, self.home, user, change, book)
        except WorkstationError as exc:
            self._show_result(str(exc), "problem")
            return False
        except OSError as exc:
            self._show_result(f"The node list could not be saved ({exc.strerror or exc}); is the data folder "
                              "writable and not full?", "problem")
            return False
        text = done(book)
        self.refresh(select)
        self._show_result(text, "ok")
        self._status(text)
        self.nodes_changed.emit()
        return True

    # -- echo -------------------------------------------------------------------------------------
    def echo_node(self, name: str) -> bool:
        try:
            book = load_nodes(self.home)
            node = book.node(name)
        except NetworkError as exc:
            self._show_result(str(exc), "problem")
            return False
        if not self.runner.start(lambda cancel: echo_job(node, book.local_ae, cancel), f"Echo {node.name}"):
            self._show_result("An echo is still running; wait for its answer", "problem")
            return False
        self._echoing = node
        self._show_result(f"Echo {_describe(node)} as {book.local_ae}...", "busy")
        if self.dialog is not None:
            self.dialog.set_echo_running(True)
        return True

    def _on_echoed(self, milliseconds: float) -> None:
        node = self._echoing
        if node is not None:
            text = f"Echo OK: {node.name} ({_describe(node)}) answered in {milliseconds:.0f} ms"
            self._show_result(text, "ok")
            self._status(text)

    def _on_echo_failed(self, message: str) -> None:
        self._show_result(f"Echo failed: {message}", "problem")

    def _on_echo_finished(self) -> None:
        self._echoing = None
        if self.dialog is not None:
            self.dialog.set_echo_running(False)

    def _show_result(self, text: str, kind: str) -> None:
        if self.dialog is not None:
            self.dialog.show_result(text, kind)
        elif kind == "problem":
            self._status(text)


def _describe(node: RemoteNode) -> str:
    web = f", DICOMweb {node.dicomweb_url}" if node.dicomweb_url else ""
    return f"{node.ae_title} at {node.host}:{node.port}{web}"


def _about(book: NodeBook) -> str:
    return (f"This workstation calls out as {book.local_ae} and receives on port {book.receive_port} (set in "
            "File > Receive from scanners...). Every node's AE title below is also a sender our Storage SCP "
            "accepts, unless 'Accept any sender' is ticked there.")
