"""Login at start (and to unlock), and first-run creation of the admin account."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit

from workstation.errors import WorkstationError
from workstation.review.store import ReviewStore
from workstation.review.users import User, add_user, has_users, login


class LoginDialog(QDialog):
    """Asks for a user name and password; on first run creates the admin instead."""

    def __init__(self, store: ReviewStore, parent=None, title: str = "Log in", only_user: str | None = None) -> None:
        super().__init__(parent)
        self.store, self.user, self.only_user = store, None, only_user
        self.first_run = not has_users(store)
        self.setWindowTitle("Create the administrator account" if self.first_run else title)
        self.username = QLineEdit(only_user or "")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel("First run: this account manages users and can read studies."
                              if self.first_run else "")
        self.message.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow(self.message)
        form.addRow("User", self.username)
        form.addRow("Password", self.password)
        if self.first_run:
            form.addRow("Repeat", self.repeat)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.submit)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        # wide enough for the title bar to show "Create the administrator account" uncut
        self.setMinimumWidth(max(440, self.fontMetrics().horizontalAdvance(self.windowTitle()) + 160))

    def submit(self) -> None:
        username, password = self.username.text().strip(), self.password.text()
        try:
            if self.first_run:
                if password != self.repeat.text():
                    raise WorkstationError("The two passwords differ")
                add_user(self.store, None, username, password, "admin")
                self.user = login(self.store, username, password)
            else:
                self.user = login(self.store, username, password)
        except WorkstationError as exc:
            self.message.setText(str(exc))
            self.password.clear()
            return
        self.accept()


def ask_login(store: ReviewStore, parent=None) -> User | None:
    dialog = LoginDialog(store, parent)
    return dialog.user if dialog.exec() == QDialog.DialogCode.Accepted else None
