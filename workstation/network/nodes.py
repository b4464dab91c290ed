"""The remote DICOM nodes a site talks to (PACS, scanners), and this workstation's own AE title,
kept in `pacs-nodes.json` in the data folder. Changing them is an administrator's job and is
audited; reading them is not patient data."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from workstation.errors import WorkstationError
from workstation.files import write_atomically

NODES_FILE = "pacs-nodes.json"
DEFAULT_LOCAL_AE = "WORKSTATION"
DEFAULT_RECEIVE_PORT = 11112
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")


class NetworkError(WorkstationError):
    """A DICOM peer cannot be reached, refuses us, times out or answers with a failure."""


def checked_ae_title(title: str) -> str:
    """An AE title as DICOM allows it: 1-16 characters of printable ASCII, no backslash, not blank."""
    if not isinstance(title, str) or not 1 <= len(title) <= 16 or not title.strip() \
            or any(not (" " <= c <= "~") or c == "\\" for c in title):
        raise NetworkError(f"AE title {title!r} must be 1-16 printable ASCII characters without a backslash")
    return title.strip()


@dataclass(frozen=True)
class RemoteNode:
    """A peer: its name here, AE title, host and port, and optionally its DICOMweb base URL."""

    name: str
    ae_title: str
    host: str
    port: int
    dicomweb_url: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name or ""):
            raise NetworkError(f"Node name {self.name!r} must be 1-32 letters, digits, '.', '_' or '-'")
        object.__setattr__(self, "ae_title", checked_ae_title(self.ae_title))
        if not self.host or any(c.isspace() for c in self.host) or len(self.host) > 253:
            raise NetworkError(f"Host {self.host!r} of node {self.name} is not a host name or address")
        if not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise NetworkError(f"Port {self.port!r} of node {self.name} must be between 1 and 65535")
        if self.dicomweb_url is not None and not re.fullmatch(r"https?://\S+", self.dicomweb_url):
            raise NetworkError(f"DICOMweb URL {self.dicomweb_url!r} of node {self.name} must start with http(s)://")


@dataclass(frozen=True)
class NodeBook:
    """Every configured peer, and how this workstation introduces itself."""

    nodes: dict[str, RemoteNode]
    local_ae: str = DEFAULT_LOCAL_AE
    receive_port: int = DEFAULT_RECEIVE_PORT

    def node(self, name: str) -> RemoteNode:
        if name not in self.nodes:
            known = ", ".join(sorted(self.nodes)) or "none yet; add one with 'workstation pacs nodes add'"
            raise NetworkError(f"No DICOM node called {name!r} (configured: {known})")
        return self.nodes[name]


def load_nodes(home: Path) -> NodeBook:
    path = Path(home) / NODES_FILE
    if not path.is_file():
        return NodeBook({})
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        nodes = {entry["name"]: RemoteNode(**entry) for entry in raw.get("nodes", [])}
        local = raw.get("local", {})
        return NodeBook(nodes, checked_ae_title(local.get("ae_title", DEFAULT_LOCAL_AE)),
                        int(local.get("receive_port", DEFAULT_RECEIVE_PORT)))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise NetworkError(f"The node list {path} is damaged ({exc}); fix or remove it") from exc


def save_nodes(home: Path, book: NodeBook) -> None:
    data = {"local": {"ae_title": book.local_ae, "receive_port": book.receive_port},
            "nodes": [asdict(node) for _name, node in sorted(book.nodes.items())]}
    write_atomically(Path(home) / NODES_FILE, json.dumps(data, indent=1).encode())


def change_nodes(store, home: Path, user, change: str, book: NodeBook) -> None:
    """Save the node list (peers and our own AE title and port) and audit the change: an
    administrator's, as `pacs nodes add|remove|local` and the viewer's receive settings do it."""
    from workstation.review import audit

    user.require("administer")
    save_nodes(home, book)
    with store.transaction() as connection:
        audit.append(connection, user.username, "settings_changed", object_id="pacs-nodes", new_value={
            "change": change, "local_ae": book.local_ae, "receive_port": book.receive_port,
            "nodes": [asdict(node) for node in book.nodes.values()]})
