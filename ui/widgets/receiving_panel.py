"""The 'Receive from scanners' window: listen or stop, on which AE title and port, from whom, whether
the AI runs on each received study, and what happened (studies filed, associations refused, AI
runs). It holds no truth: the ReceivingController tells it what to show."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QCheckBox, QDialog, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem, QPushButton,
    QSpinBox, QVBoxLayout, QWidget,
)

from ui.widgets.monitoring_view import ALERT_STYLE, CALM_STYLE

KIND_COLOURS = {"received": "#cfe8d0", "refused": "#ffb4a8", "ai": "#b8d0ff", "failed": "#ffb4a8", "info": "#d8d8d4"}


class ReceivingPanel(QDialog):
    """Non-modal; its buttons and boxes only emit what the user asked for."""

    listen_toggled = Signal(bool)  # start (True) or stop (False)
    local_saved = Signal(str, int)  # our AE title and port (an admin's change, audited)
    analyse_toggled = Signal(bool)
    any_sender_toggled = Signal(bool)
    listen_at_login_toggled = Signal(bool)
    nodes_requested = Signal()  # File > DICOM nodes..., from here where the senders are listed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Receive from scanners")
        self.setModal(False)
        # the dark theme draws a disabled field like an enabled one: a reader could not tell the AE
        # title and port are an admin's to change
        self.setStyleSheet("QLineEdit:disabled, QSpinBox:disabled, QPushButton:disabled, QCheckBox:disabled "
                           "{ color: #74746f; } QLineEdit:disabled, QSpinBox:disabled { border-color: #2c2e34; }")
        self.state_label = QLabel("Not listening")
        self.state_label.setObjectName("receiving-state")
        self.state_label.setWordWrap(True)
        self.listen_button = QPushButton("Start listening")
        self.listen_button.setCheckable(True)
        self.ae_edit = QLineEdit()
        self.ae_edit.setMaxLength(16)
        self.port_box = QSpinBox()
        self.port_box.setRange(1, 65535)
        self.save_button = QPushButton("Save")
        self.senders_label = QLabel()
        self.senders_label.setWordWrap(True)
        self.nodes_button = QPushButton("DICOM nodes...")
        self.nodes_button.setToolTip("The scanners and PACS this workstation knows (an admin adds and changes them)")
        self.any_sender = QCheckBox("Accept any sender (not only the configured nodes)")
        self._can_change_local = False
        self.analyse = QCheckBox("Run the AI on each received CT study (recorded as Run AI)")
        self.listen_at_login = QCheckBox("Start listening when a user logs in on this workstation")
        self.events = QListWidget()
        self.events.setWordWrap(True)
        self.events.setAlternatingRowColors(True)

        local = QHBoxLayout()
        local.addWidget(self.ae_edit, 2)
        local.addWidget(QLabel("port"))
        local.addWidget(self.port_box, 1)
        local.addWidget(self.save_button)
        form = QFormLayout()
        form.addRow("This workstation", local)
        senders = QHBoxLayout()
        senders.addWidget(self.senders_label, 1)
        senders.addWidget(self.nodes_button)
        form.addRow("Senders", senders)
        form.addRow("", self.any_sender)
        form.addRow("", self.analyse)
        form.addRow("", self.listen_at_login)
        top = QHBoxLayout()
        top.addWidget(self.state_label, 1)
        top.addWidget(self.listen_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(form)
        layout.addWidget(QLabel("What arrived, what was refused, what the AI found (newest first)"))
        layout.addWidget(self.events, 1)
        self.resize(760, 560)

        self.listen_button.toggled.connect(self.listen_toggled)
        self.save_button.clicked.connect(lambda: self.local_saved.emit(self.ae_edit.text().strip(),
                                                                       self.port_box.value()))
        self.analyse.toggled.connect(self.analyse_toggled)
        self.any_sender.toggled.connect(self.any_sender_toggled)
        self.listen_at_login.toggled.connect(self.listen_at_login_toggled)
        self.nodes_button.clicked.connect(self.nodes_requested)

    def show_settings(self, ae_title: str, port: int, senders: list[str], any_sender: bool, analyse: bool,
                      can_change_local: bool, listen_at_login: bool = False) -> None:
        for widget, value in ((self.any_sender, any_sender), (self.analyse, analyse),
                              (self.listen_at_login, listen_at_login)):
            widget.blockSignals(True)
            widget.setChecked(value)
            widget.blockSignals(False)
        self.ae_edit.setText(ae_title)
        self.port_box.setValue(port)
        self._can_change_local = can_change_local
        for widget in (self.ae_edit, self.port_box, self.save_button):
            widget.setEnabled(can_change_local)
            widget.setToolTip("" if can_change_local else "An admin sets this workstation's AE title and port")
        self.senders_label.setText(", ".join(senders) if senders else
                                   "none configured yet: an admin adds the scanner as a node (DICOM "
                                   "nodes..., or 'workstation pacs nodes add NAME --aet AET --host HOST "
                                   "--port PORT'), or accept any sender")

    def show_listening(self, listening: bool, text: str) -> None:
        self.listen_button.blockSignals(True)
        self.listen_button.setChecked(listening)
        self.listen_button.blockSignals(False)
        self.listen_button.setText("Stop listening" if listening else "Start listening")
        self.state_label.setText(text)
        self.state_label.setStyleSheet(CALM_STYLE if listening else "")
        self.any_sender.setDisabled(listening)  # the settings apply at the next start
        for widget in (self.ae_edit, self.port_box, self.save_button):
            widget.setEnabled(self._can_change_local and not listening)

    def add_event(self, kind: str, text: str) -> None:
        item = QListWidgetItem(f"{time.strftime('%H:%M:%S')}  {text}")
        item.setForeground(_colour(KIND_COLOURS.get(kind, KIND_COLOURS["info"])))
        item.setData(Qt.ItemDataRole.UserRole, kind)
        self.events.insertItem(0, item)

    def show_problem(self, text: str) -> None:
        self.state_label.setText(text)
        self.state_label.setStyleSheet(ALERT_STYLE)


def _colour(name: str) -> QColor:
    return QColor(name)
