"""The `workstation` command: the desktop viewer when a display is there, else the headless CLI.

It lives in ui/ because it may start Qt; it imports PySide6 only when the viewer is wanted,
so headless servers without the GUI extras still get every CLI command.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys

from workstation import cli

GUI_COMMANDS = ("gui", "open")


def display_available() -> bool:
    if os.environ.get("WORKSTATION_HEADLESS"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                    or os.environ.get("QT_QPA_PLATFORM"))
    return True


def gui_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("PySide6", "vtkmodules", "pyqtgraph"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_gui = not argv or argv[0] in GUI_COMMANDS
    if wants_gui and display_available() and gui_installed():
        log_file = cli.setup_logging()
        target = argv[1] if len(argv) > 1 and argv[0] == "open" else None
        try:
            from ui.app import run_app

            return run_app(target)
        except Exception as exc:  # the last line of defence: a sentence for the user, the traceback to the log
            from workstation.privacy import loggable_error

            logging.getLogger("workstation").error("the desktop app failed: %s", loggable_error(exc))
            print(f"error: the desktop app failed to start; details are in {log_file}", file=sys.stderr)
            return 3
    if not argv:
        print("No display: running the headless demo pipeline instead of the viewer.", file=sys.stderr)
        argv = ["demo"]
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
