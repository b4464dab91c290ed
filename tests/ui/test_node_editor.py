"""The node book in the viewer (#23): File > DICOM nodes... adds, changes and removes nodes with the
CLI's rules, each change on disk and in the audit as `pacs nodes add|remove` leaves it; bad input is a
sentence in the window and changes nothing; a reader sees the list read-only; Echo asks a real peer
(our own Storage SCP) off the GUI thread. And listening at login: with the setting on, logging in
starts the Storage SCP (a real C-ECHO to its port succeeds); off, it does not; a taken port is a notice."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from PySide6.QtCore import Qt

from tests.network.conftest import free_port
from ui.dialogs.node_editor import NodeFields
from workstation.network.nodes import NodeBook, RemoteNode, load_nodes, save_nodes
from workstation.network.receiver import StorageReceiver
from workstation.review.users import add_user, login

PASSWORD = "battery staple"
VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture
def desk(window, home):
    """The window with an admin logged in, a reader account, and one scanner in the node book."""
    save_nodes(home, NodeBook({"ct1": RemoteNode("ct1", "SCANNER1", "127.0.0.1", 104)}, "WORKSTATION", free_port()))
    admin = add_user(window.store, None, "admin", PASSWORD, "admin")
    add_user(window.store, admin, "dr_lee", PASSWORD, "radiologist")
    window.review.set_user(admin)
    yield window
    window.receiving.stop_listening()


def _node_audits(window) -> list[tuple[str, dict]]:
    rows = window.store.connection.execute("SELECT user, new_value FROM audit WHERE action = 'settings_changed' "
                                           "AND object_id = 'pacs-nodes' ORDER BY rowid").fetchall()
    return [(user, json.loads(value)) for user, value in rows]


def _fill(dialog, name: str, ae: str, host: str, port: str, web: str = "") -> None:
    dialog.fill_form(NodeFields(name, ae, host, port, web))


def _click(qtbot, button) -> None:
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def test_an_admin_adds_changes_and_removes_a_node_audited(desk, qtbot, home) -> None:
    window = desk
    window.actions_by_key["dicom_nodes"].trigger()
    dialog = window.nodes.dialog
    assert dialog.isVisible() and dialog.table.rowCount() == 1 and dialog.table.item(0, 1).text() == "SCANNER1"
    assert not dialog.access_label.isVisible() and dialog.add_button.isEnabled()
    assert "WORKSTATION" in dialog.about_label.text()

    _click(qtbot, dialog.new_button)
    _fill(dialog, "pacs", "MAINPACS", "pacs.example.org", "11112", "http://pacs.example.org:8042/dicom-web")
    _click(qtbot, dialog.add_button)
    saved = load_nodes(home).nodes["pacs"]
    assert (saved.ae_title, saved.host, saved.port, saved.dicomweb_url) == (
        "MAINPACS", "pacs.example.org", 11112, "http://pacs.example.org:8042/dicom-web")
    assert "Added node pacs" in dialog.message_label.text() and dialog.table.rowCount() == 2
    assert dialog.selected_name() == "pacs"
    user, value = _node_audits(window)[-1]
    assert user == "admin" and value["change"] == "added pacs"
    assert {node["name"] for node in value["nodes"]} == {"ct1", "pacs"}

    dialog.port_edit.setText("4242")  # edit the selected node
    _click(qtbot, dialog.change_button)
    assert load_nodes(home).nodes["pacs"].port == 4242 and _node_audits(window)[-1][1]["change"] == "changed pacs"

    _click(qtbot, dialog.remove_button)
    assert set(load_nodes(home).nodes) == {"ct1"} and _node_audits(window)[-1][1]["change"] == "removed pacs"
    assert dialog.table.rowCount() == 1


def test_the_receiving_panel_lists_what_the_node_editor_saved(desk, qtbot) -> None:
    window = desk
    window.receiving.show_receiving()
    _click(qtbot, window.receiving.panel.nodes_button)  # the panel's way into the same window
    dialog = window.nodes.dialog
    assert dialog is not None and dialog.isVisible()
    _fill(dialog, "ct2", "SCANNER2", "10.0.0.7", "104")
    _click(qtbot, dialog.add_button)
    assert "SCANNER2 (ct2)" in window.receiving.panel.senders_label.text()


BAD_INPUT = [
    (("ct3", "BAD\\AET", "10.0.0.8", "104"), "AE title 'BAD\\\\AET' must be 1-16 printable ASCII"),
    (("ct3", "", "10.0.0.8", "104"), "AE title '' must be"),
    (("ct3", "SCANNER3", "10.0.0.8", "70000"), "Port 70000 of node ct3 must be between 1 and 65535"),
    (("ct3", "SCANNER3", "10.0.0.8", "ten"), "Port 'ten' must be a whole number"),
    (("ct3", "SCANNER3", "my host", "104"), "Host 'my host' of node ct3 is not a host name"),
    (("ct 3", "SCANNER3", "10.0.0.8", "104"), "Node name 'ct 3' must be"),
    (("ct3", "SCANNER3", "10.0.0.8", "104", "ftp://pacs"), "DICOMweb URL 'ftp://pacs' of node ct3 must start"),
    (("ct1", "OTHER", "10.0.0.8", "104"), "A node called 'ct1' already exists"),
]


def test_bad_input_is_a_sentence_and_changes_nothing(desk, qtbot, home) -> None:
    window = desk
    window.nodes.show_nodes()
    dialog = window.nodes.dialog
    before, audits = (home / "pacs-nodes.json").read_bytes(), len(_node_audits(window))
    for fields, message in BAD_INPUT:  # one window for all (a window a case would cost seconds each)
        _click(qtbot, dialog.new_button)
        _fill(dialog, *fields)
        _click(qtbot, dialog.add_button)
        assert message in dialog.message_label.text() and dialog.message_label.isVisible(), fields
        assert "Traceback" not in dialog.message_label.text()
    assert (home / "pacs-nodes.json").read_bytes() == before and len(_node_audits(window)) == audits


def test_renaming_onto_another_node_is_refused(desk, qtbot, home) -> None:
    window = desk
    window.nodes.add_node(NodeFields("ct2", "SCANNER2", "10.0.0.7", "104", ""))
    window.nodes.show_nodes()
    dialog = window.nodes.dialog
    dialog.table.selectRow(1)
    assert dialog.selected_name() == "ct2"
    dialog.name_edit.setText("ct1")
    _click(qtbot, dialog.change_button)
    assert "A node called 'ct1' already exists" in dialog.message_label.text()
    assert set(load_nodes(home).nodes) == {"ct1", "ct2"} and load_nodes(home).nodes["ct1"].ae_title == "SCANNER1"


def test_a_reader_sees_the_nodes_read_only_and_cannot_change_them(desk, qtbot, home) -> None:
    window = desk
    window.review.set_user(login(window.store, "dr_lee", PASSWORD))
    window.nodes.show_nodes()
    dialog = window.nodes.dialog
    assert dialog.table.rowCount() == 1 and dialog.access_label.isVisible()
    assert "Read-only: you are logged in as dr_lee (radiologist)" in dialog.access_label.text()
    dialog.table.selectRow(0)
    assert not dialog.add_button.isEnabled() and not dialog.change_button.isEnabled()
    assert not dialog.remove_button.isEnabled() and dialog.name_edit.isReadOnly()
    assert dialog.echo_button.isEnabled()  # checking a node is anyone's
    before, audits = (home / "pacs-nodes.json").read_bytes(), len(_node_audits(window))
    # the controller refuses too, not only the disabled buttons
    assert not window.nodes.add_node(NodeFields("ct2", "SCANNER2", "10.0.0.7", "104", ""))
    assert not window.nodes.remove_node("ct1")
    assert "admin" in dialog.message_label.text()
    assert (home / "pacs-nodes.json").read_bytes() == before and len(_node_audits(window)) == audits


def test_echo_asks_a_real_peer_off_the_gui_thread(desk, qtbot, home) -> None:
    window = desk
    port = free_port()
    peer = StorageReceiver(home / "peer", "PEERSCP", port)  # our own Storage SCP as the peer
    peer.start()
    threads: list[threading.Thread] = []
    try:
        window.nodes.add_node(NodeFields("peer", "PEERSCP", "127.0.0.1", str(port), ""))
        window.nodes.show_nodes()
        dialog = window.nodes.dialog
        dialog.table.selectRow(dialog._names.index("peer"))
        _click(qtbot, dialog.echo_button)
        threads.append(window.nodes.runner._thread)
        qtbot.waitUntil(lambda: dialog.message_label.text().startswith("Echo OK"), timeout=10000)
        assert "peer (PEERSCP at 127.0.0.1:" in dialog.message_label.text()
        assert threads[0] is not threading.main_thread()
        qtbot.waitUntil(lambda: dialog.echo_button.text() == "Echo", timeout=5000)
    finally:
        peer.stop()
    _click(qtbot, dialog.echo_button)  # nobody there now: said, not raised
    qtbot.waitUntil(lambda: dialog.message_label.text().startswith("Echo failed"), timeout=10000)
    assert f"did not answer at 127.0.0.1:{port}" in dialog.message_label.text()


# -- listening at login ---------------------------------------------------------------------------
def _echo(port: int) -> bool:
    """A real association from SCANNER1 (a configured sender) and a C-ECHO."""
    from pynetdicom import AE

    ae = AE(ae_title="SCANNER1")
    ae.add_requested_context(VERIFICATION)
    ae.connection_timeout = ae.acse_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title="WORKSTATION")
    try:
        return assoc.is_established and assoc.send_c_echo().Status == 0
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def test_with_the_setting_on_logging_in_starts_listening(desk, qtbot, home) -> None:
    window = desk
    window.receiving.show_receiving()
    window.receiving.panel.listen_at_login.setChecked(True)  # as the reader ticks it
    assert window.settings.value("receiving/listen_at_login") == "true"
    port = load_nodes(home).receive_port
    window.review.set_user(login(window.store, "dr_lee", PASSWORD))
    qtbot.waitUntil(lambda: window.receiving.receiver is not None, timeout=5000)
    assert _echo(port)
    assert window.receiving.acting.username == "dr_lee"
    assert f"Receiving on {port}" in window.receiving.indicator.text()
    assert "(started at login)" in window.status_label.text()
    window.receiving.on_lock(True)  # as a manual start: receiving goes on behind the lock
    assert window.receiving.receiver is not None
    window.receiving.on_lock(False)
    window.receiving.shutdown()  # closing the window (logging out) stops it
    assert window.receiving.receiver is None and not _echo(port)


def test_with_the_setting_off_logging_in_does_not_listen(desk, qtbot, home) -> None:
    window = desk
    assert window.settings.value("receiving/listen_at_login", "false") == "false"
    window.review.set_user(login(window.store, "dr_lee", PASSWORD))
    qtbot.wait(100)
    assert window.receiving.receiver is None and not _echo(load_nodes(home).receive_port)


def test_a_taken_port_at_login_is_a_notice(desk, qtbot, home) -> None:
    window = desk
    window.settings.setValue("receiving/listen_at_login", "true")
    port = load_nodes(home).receive_port
    blocker = socket.socket()
    blocker.bind(("0.0.0.0", port))
    blocker.listen()
    try:
        window.review.set_user(login(window.store, "dr_lee", PASSWORD))
        qtbot.waitUntil(window.receiving.notice.isVisible, timeout=5000)
    finally:
        blocker.close()
    assert window.receiving.receiver is None
    assert f"Cannot listen on port {port}" in window.receiving.notice.text()
    assert window.error_box is None or not window.error_box.isVisible()  # no box to dismiss at login
    assert "could not start at login" in window.receiving.indicator.text()
