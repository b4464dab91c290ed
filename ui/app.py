"""Start the desktop application."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from ui.dialogs.login import ask_login
from ui.main_window import MainWindow
from ui.theme import apply_dark_theme
from workstation.config import data_home
from workstation.library import StudyLibrary
from workstation.privacy import loggable_error
from workstation.review.users import has_users


def create_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("Workstation")
        app.setOrganizationName("Workstation")
    apply_dark_theme(app)
    return app


def open_initial(window: MainWindow, target: str | None) -> None:
    """An explicit target; else the last study; else (first run) the demo case."""
    if target:
        window.opening.open_target(target)
        return
    last = window.settings.value("last_study")
    if last and any(s["key"] == last for s in StudyLibrary(window.home).studies()):
        window.opening.open_study(str(last))
    else:
        window.opening.open_demo()


def _log_uncaught(kind, value, traceback) -> None:
    """An exception escaping a Qt slot is logged and told in one sentence; the app keeps running."""
    # its message may carry patient text: the log gets its kind and frames only
    logging.getLogger("workstation").error("uncaught exception in the GUI: %s", loggable_error(value))
    window = QApplication.activeWindow()
    if isinstance(window, MainWindow):
        window.statusBar().showMessage("An internal error happened; details are in the log file.", 10000)


def login_from_environment(store):
    """Non-interactive login for kiosks and automated tests: WORKSTATION_USER and
    WORKSTATION_PASSWORD are checked like typed credentials (first run: they create the admin)."""
    import os

    from workstation.review.users import add_user, has_users, login

    username, password = os.environ.get("WORKSTATION_USER"), os.environ.get("WORKSTATION_PASSWORD")
    if not username or not password:
        return None
    if not has_users(store):
        add_user(store, None, username, password, "admin")
    return login(store, username, password)


def run_app(target: str | None = None, home: Path | None = None) -> int:
    logging.getLogger("workstation").info("starting the desktop app")
    app = create_app()
    sys.excepthook = _log_uncaught
    window = MainWindow(home or data_home())
    first_run = not has_users(window.store)
    user = login_from_environment(window.store) or ask_login(window.store, None)  # first run: creates the admin
    if user is None:
        return 0
    window.review.set_user(user)
    window.show()
    open_initial(window, target)
    if first_run:  # which device, how long a study takes, and the review keys on the demo case
        window.show_tour()
    return app.exec()
