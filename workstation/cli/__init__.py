"""The `workstation` command. Errors reach the user as one sentence; tracebacks go to the log.

The parser is built from the command groups, one module each; their shared helpers are in
`common`, which imports no group, so the modules form no circle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from workstation import __version__
from workstation.cli import admin, ai, compare, library, network, reports, review, teaching
from workstation.cli.common import log, setup_logging
from workstation.config import data_home
from workstation.errors import WorkstationError
from workstation.privacy import loggable_error

GROUPS = (library, ai, review, compare, reports, network, admin, teaching)  # the order of `workstation --help`


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    log_file = setup_logging()
    command: Callable[[argparse.Namespace], int] = getattr(args, "run", ai.cmd_demo_default)
    try:
        return command(args)
    except WorkstationError as exc:
        # the sentence may name the user's files: the screen gets it, the log only its kind and place
        log.error("%s failed: %s", _name(command), loggable_error(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("cancelled", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: the user gets a sentence, the log the traceback
        log.error("%s failed unexpectedly: %s", _name(command), loggable_error(exc))
        print(f"error: an unexpected internal error happened; details are in {log_file}", file=sys.stderr)
        return 3


def _name(command: Callable) -> str:
    return getattr(command, "__name__", "command").removeprefix("cmd_").replace("_", " ")


class _PrintDataFolder(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(data_home())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workstation", description="Offline CT review station with local AI.")
    parser.add_argument("--version", action="version", version=f"workstation {__version__}")
    parser.add_argument("--data-folder", action=_PrintDataFolder, nargs=0,
                        help="print the data folder (studies, reads, audit trail, logs) and exit")
    commands = parser.add_subparsers(metavar="COMMAND")
    gui = commands.add_parser("gui", help="open the desktop viewer (the default when a display is present)")
    gui.set_defaults(run=cmd_gui)
    opener = commands.add_parser("open", help="open the desktop viewer on a path or library study")
    opener.add_argument("target")
    opener.set_defaults(run=cmd_gui)
    for group in GROUPS:
        group.register(commands)
    return parser


def cmd_gui(args: argparse.Namespace) -> int:
    # ui/launcher.py opens the viewer before this parser runs when a display and the GUI extras are there.
    raise WorkstationError("The desktop viewer needs a display and the GUI extras (pip install -e '.[gui]'); "
                           "headless commands: demo, import, list, info")

