"""File > DICOM nodes...: the node book (the PACS and scanners this workstation talks to) as a
table, a form to add, change or remove a node (an admin's), and Echo to check a node answers.
It holds no truth: the NodeEditorController validates, saves, audits and tells it what to show."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QTableWidget,
    QTableWidgetItem, QVBoxLayout, QWidget,
)

from ui.widgets.monitoring_view import ALERT_STYLE, CALM_STYLE
from workstation.network.nodes import RemoteNode

COLUMNS = ("Name", "AE title", "Host", "Port", "DICOMweb URL")
# the same muted look the receiving panel gives disabled fields: the dark theme would draw a
# read-only form like an editable one
DISABLED_STYLE = ("QLineEdit:disabled, QPushButton:disabled { color: #74746f; } "
                  "QLineEdit:disabled { border-color: #2c2e34; } "
                  "QLineEdit[readOnly=\"true\"] { color: #9a9a94; border-color: #2c2e34; background: #1b1c20; }")
BUSY_STYLE = "QLabel { background: #20283a; border: 1px solid #4f6fa8; padding: 6px; color: #d8e2ff; }"


@dataclass(frozen=True)
class NodeFields:
    """What the form holds, as typed: the controller turns it into a RemoteNode (and says what is wrong)."""

    name: str
    ae_title: str
    host: str
    port: str
    dicomweb_url: str


class NodeEditorDialog(QDialog):
    """Non-modal; its buttons only emit what the user asked for."""

    add_requested = Signal(object)  # NodeFields
    change_requested = Signal(str, object)  # the selected node's name, NodeFields
    remove_requested = Signal(str)  # a node's name
    echo_requested = Signal(str)  # a node's name

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("DICOM nodes")
        self.setModal(False)
        self.setStyleSheet(DISABLED_STYLE)
        self.about_label = QLabel()
        self.about_label.setWordWrap(True)
        self.access_label = QLabel()
        self.access_label.setObjectName("nodes-access")
        self.access_label.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)  # edits go through the form
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.name_edit = QLineEdit()
        self.name_edit.setMaxLength(32)
        self.ae_edit = QLineEdit()
        self.ae_edit.setMaxLength(16)
        self.host_edit = QLineEdit()
        self.port_edit = QLineEdit()
        self.port_edit.setPlaceholderText("1-65535, often 104 or 11112")
        self.web_edit = QLineEdit()
        self.web_edit.setPlaceholderText("optional, e.g. http://pacs:8042/dicom-web")
        self.new_button = QPushButton("New")
        self.add_button = QPushButton("Add")
        self.change_button = QPushButton("Save changes")
        self.remove_button = QPushButton("Remove")
        self.echo_button = QPushButton("Echo")
        self.echo_button.setToolTip("C-ECHO: does the selected node answer and accept this workstation?")
        self.message_label = QLabel("")
        self.message_label.setObjectName("nodes-message")
        self.message_label.setWordWrap(True)
        self.message_label.hide()
        close_button = QPushButton("Close")

        form = QFormLayout()
        form.addRow("Name", self.name_edit)
        form.addRow("AE title", self.ae_edit)
        form.addRow("Host", self.host_edit)
        form.addRow("Port", self.port_edit)
        form.addRow("DICOMweb URL", self.web_edit)
        buttons = QHBoxLayout()
        for button in (self.new_button, self.add_button, self.change_button, self.remove_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.echo_button)
        buttons.addWidget(close_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.about_label)
        layout.addWidget(self.access_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message_label)
        self.resize(820, 560)

        self._can_change = False
        self._names: list[str] = []
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.new_button.clicked.connect(self.clear_form)
        self.add_button.clicked.connect(lambda: self.add_requested.emit(self.fields()))
        self.change_button.clicked.connect(self._ask_change)
        self.remove_button.clicked.connect(self._ask_remove)
        self.echo_button.clicked.connect(self._ask_echo)
        close_button.clicked.connect(self.close)

    # -- what the controller shows ----------------------------------------------------------------
    def show_nodes(self, nodes: list[RemoteNode], about: str, can_change: bool, access: str,
                   select: str | None = None) -> None:
        """The node book's peers; `select` (a name) is selected and put in the form."""
        self.table.blockSignals(True)
        self.table.setRowCount(len(nodes))
        for row, node in enumerate(nodes):
            values = (node.name, node.ae_title, node.host, str(node.port), node.dicomweb_url or "")
            for column, value in enumerate(values):
                self.table.setItem(row, column, QTableWidgetItem(value))
        self.table.clearSelection()
        self.table.blockSignals(False)
        self._names = [node.name for node in nodes]
        self.message_label.hide()  # a line about the last action is stale once the list is redrawn
        self.about_label.setText(about)
        self._can_change = can_change
        self.access_label.setText(access)
        self.access_label.setVisible(bool(access))
        for edit in (self.name_edit, self.ae_edit, self.host_edit, self.port_edit, self.web_edit):
            edit.setReadOnly(not can_change)
            edit.style().unpolish(edit)  # the style sheet's [readOnly] rule is only re-read on a polish
            edit.style().polish(edit)
        self.new_button.setEnabled(can_change)
        self.add_button.setEnabled(can_change)
        if select in self._names:
            self.table.selectRow(self._names.index(select))
        else:
            self._on_selection()

    def show_result(self, text: str, kind: str = "ok") -> None:
        """One line under the buttons: 'ok' (green), 'busy' (blue) or 'problem' (red)."""
        self.message_label.setText(text)
        self.message_label.setStyleSheet({"ok": CALM_STYLE, "busy": BUSY_STYLE}.get(kind, ALERT_STYLE))
        self.message_label.show()

    def set_echo_running(self, running: bool) -> None:
        self.echo_button.setEnabled(not running and self.selected_name() is not None)
        self.echo_button.setText("Echo running..." if running else "Echo")

    # -- the form ---------------------------------------------------------------------------------
    def fields(self) -> NodeFields:
        return NodeFields(self.name_edit.text().strip(), self.ae_edit.text(), self.host_edit.text().strip(),
                          self.port_edit.text().strip(), self.web_edit.text().strip())

    def fill_form(self, fields: NodeFields) -> None:
        for edit, value in ((self.name_edit, fields.name), (self.ae_edit, fields.ae_title),
                            (self.host_edit, fields.host), (self.port_edit, fields.port),
                            (self.web_edit, fields.dicomweb_url)):
            edit.setText(value)

    def clear_form(self) -> None:
        self.table.clearSelection()
        self.fill_form(NodeFields("", "", "", "", ""))
        self.name_edit.setFocus()

    def selected_name(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self._names[rows[0].row()] if rows else None

    def _on_selection(self) -> None:
        name = self.selected_name()
        if name is not None:
            row = self._names.index(name)
            self.fill_form(NodeFields(*(self.table.item(row, column).text() for column in range(len(COLUMNS)))))
        chosen = name is not None
        self.change_button.setEnabled(self._can_change and chosen)
        self.remove_button.setEnabled(self._can_change and chosen)
        if self.echo_button.text() == "Echo":  # not while an echo runs
            self.echo_button.setEnabled(chosen)

    def _ask_change(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.change_requested.emit(name, self.fields())

    def _ask_remove(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.remove_requested.emit(name)

    def _ask_echo(self) -> None:
        name = self.selected_name()
        if name is not None:
            self.echo_requested.emit(name)
