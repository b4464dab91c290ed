"""The `workstation` commands for whoever looks after the machine: check, backup, restore."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from workstation.config import data_home


def register(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser("check", help="verify this installation end to end (no display needed)")
    check.add_argument("--out", type=Path, help="folder for the check's demo run and PDF (default: temporary)")
    check.set_defaults(run=cmd_check)
    backup = commands.add_parser("backup", help="copy the data folder (consistent while the app runs)")
    backup.add_argument("destination", type=Path)
    backup.set_defaults(run=cmd_backup)
    restore = commands.add_parser("restore", help="restore a backup into an empty data folder")
    restore.add_argument("backup", type=Path)
    restore.set_defaults(run=cmd_restore)


def cmd_check(args: argparse.Namespace) -> int:
    from workstation.cli import _run_with_progress
    from workstation.maintenance import check_job

    with tempfile.TemporaryDirectory(prefix="workstation-check-") as scratch:
        out = args.out or Path(scratch)
        checks = _run_with_progress(check_job(data_home(), out))
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<22} {check.detail}")
        failed = [c for c in checks if not c.ok]
        print("All checks passed." if not failed else f"{len(failed)} check(s) failed.")
        if args.out is None:
            print("(The check's demo files were temporary; --out DIR keeps them.)")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from workstation.maintenance import backup

    target = backup(data_home(), args.destination)
    print(f"Backed up {data_home()} to {target}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from workstation.maintenance import restore

    count = restore(args.backup, data_home())
    print(f"Restored {count} files into {data_home()}")
    return 0
