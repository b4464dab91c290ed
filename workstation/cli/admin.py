"""The `workstation` commands for whoever looks after the machine: accounts, the audit trail,
check, backup, restore."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from workstation.cli.common import acting_admin, acting_user, password, record_read, review_store, run_with_progress
from workstation.config import data_home
from workstation.errors import WorkstationError


def register(commands: argparse._SubParsersAction) -> None:
    audit_parser = commands.add_parser("audit", help="verify or export the tamper-evident audit trail")
    audit_parser.add_argument("--as", dest="actor", help="the admin exporting (needed once accounts exist)")
    audit_commands = audit_parser.add_subparsers(metavar="ACTION", required=True)
    verify = audit_commands.add_parser("verify", help="check the chain, the clinical rows it covers and its anchors; "
                                       "exit 1 naming the first bad row")
    verify.add_argument("--report", type=Path, metavar="FILE.pdf",
                        help="also prove the chain still holds what this report of ours says")
    verify.add_argument("--backup", type=Path, metavar="DIR", help="also against the chain head this backup recorded")
    verify.set_defaults(run=cmd_audit_verify)
    export = audit_commands.add_parser("export", help="print every audit row as CSV or JSON")
    export_format = export.add_mutually_exclusive_group(required=True)
    export_format.add_argument("--csv", dest="format", action="store_const", const="csv")
    export_format.add_argument("--json", dest="format", action="store_const", const="json")
    export.set_defaults(run=cmd_audit_export)

    users = commands.add_parser("users", help="manage local accounts (admins; the first account is the admin)")
    users.add_argument("--as", dest="actor", help="the admin doing this (asked for a password)")
    user_commands = users.add_subparsers(metavar="ACTION", required=True)
    add = user_commands.add_parser("add")
    add.add_argument("username")
    add.add_argument("--role", choices=["admin", "radiologist", "trainee"], required=True)
    add.set_defaults(run=cmd_users_add)
    user_commands.add_parser("list").set_defaults(run=cmd_users_list)
    disable = user_commands.add_parser("disable")
    disable.add_argument("username")
    disable.set_defaults(run=cmd_users_disable)
    passwd = user_commands.add_parser("passwd")
    passwd.add_argument("username")
    passwd.set_defaults(run=cmd_users_passwd)

    check = commands.add_parser("check", help="verify this installation end to end (no display needed)")
    check.add_argument("--out", type=Path, help="folder for the check's demo run and PDF (default: temporary)")
    check.set_defaults(run=cmd_check)
    backup = commands.add_parser("backup", help="copy the data folder (consistent while the app runs)")
    backup.add_argument("destination", type=Path)
    backup.add_argument("--as", dest="actor", help="the admin making it (needed once accounts exist)")
    backup.set_defaults(run=cmd_backup)
    restore = commands.add_parser("restore", help="restore a backup into an empty data folder")
    restore.add_argument("backup", type=Path)
    restore.set_defaults(run=cmd_restore)
    monitor = commands.add_parser("monitor", help="how the AI fares with the readers, by month and subgroup; drift")
    monitor.add_argument("--by", choices=["sex", "age", "manufacturer", "slice thickness", "kernel"],
                         help="a subgroup to split by (quote 'slice thickness')")
    monitor.add_argument("--csv", type=Path, dest="csv_out", metavar="OUT")
    monitor.add_argument("--json", type=Path, dest="json_out", metavar="OUT")
    monitor.add_argument("--as", dest="actor", help="who (needed once accounts exist)")
    monitor.set_defaults(run=cmd_monitor)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from workstation.review.anchors import anchor_of_report, anchors_in_log
    from workstation.review.audit import verify

    # no login: it shows no patient data, and a login would append to a chain that may be broken
    store = review_store()
    anchors = anchors_in_log(store.path)
    if args.report:
        try:
            seq, head = anchor_of_report(args.report)
        except (OSError, ValueError) as exc:
            raise WorkstationError(f"Cannot read the chain head from {args.report}: {exc}") from exc
        anchors.append((seq, head, f"the report {args.report.name}"))
    if args.backup:
        anchors.append(_backup_anchor(args.backup))
    result = verify(store.connection, anchors)
    if result.ok:
        print(f"audit trail ok: {result.rows} rows, chain head {result.head}")
        return 0
    print(f"audit trail BROKEN at row {result.first_bad_seq}: {result.reason}")
    return 1


def _backup_anchor(folder: Path) -> tuple[int, str, str]:
    import json

    from workstation.maintenance import MANIFEST

    try:
        head = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))["audit_head"]
        return int(head["seq"]), str(head["hash"]), f"the backup {folder.name}"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkstationError(f"{folder} is not a backup with a recorded chain head ({exc})") from exc


def cmd_audit_export(args: argparse.Namespace) -> int:
    from workstation.review.audit import export_rows

    from workstation.review import audit

    store = review_store()
    who = acting_user(store, args.actor, "administer").username
    with store.transaction() as connection:
        audit.append(connection, who, "audit_exported", details={"format": args.format})
    print(export_rows(store.connection, args.format), end="")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from workstation.review.users import add_user

    store = review_store()
    user = add_user(store, acting_admin(store, args), args.username,
                    password(f"New password for {args.username}: "), args.role)
    print(f"Added {user.username} ({user.role})")
    return 0


def cmd_users_list(args: argparse.Namespace) -> int:
    from workstation.review.users import list_users

    store = review_store()
    actor = acting_admin(store, args)
    if actor is None:
        print("No accounts yet; the first one must be the admin: workstation users add NAME --role admin")
        return 0
    for user in list_users(store, actor):
        print(f"{user['username']:<20} {user['role']:<12} {'disabled' if user['disabled'] else 'active'}")
    return 0


def cmd_users_disable(args: argparse.Namespace) -> int:
    from workstation.review.users import disable_user

    store = review_store()
    disable_user(store, acting_admin(store, args), args.username)
    print(f"Disabled {args.username}")
    return 0


def cmd_users_passwd(args: argparse.Namespace) -> int:
    from workstation.review.users import change_password

    store = review_store()
    change_password(store, acting_admin(store, args), args.username,
                    password(f"New password for {args.username}: "))
    print(f"Changed the password of {args.username}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from workstation.maintenance import check_job

    with tempfile.TemporaryDirectory(prefix="workstation-check-") as scratch:
        out = args.out or Path(scratch)
        checks = run_with_progress(check_job(data_home(), out))
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<22} {check.detail}")
        failed = [c for c in checks if not c.ok]
        print("All checks passed." if not failed else f"{len(failed)} check(s) failed.")
        if args.out is None:
            print("(The check's demo files were temporary; --out DIR keeps them.)")
    return 1 if failed else 0


def cmd_backup(args: argparse.Namespace) -> int:
    from workstation.maintenance import backup
    from workstation.review import audit
    from workstation.review.anchors import record_anchor

    store = review_store()
    who = acting_user(store, args.actor, "administer").username
    target = backup(data_home(), args.destination)
    with store.transaction() as connection:
        audit.append(connection, who, "backed_up", new_value={"backup": str(Path(target).resolve())})
    record_anchor(store.connection, store.path, f"the backup {Path(target).name} by {who}")
    print(f"Backed up {data_home()} to {target}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from workstation.maintenance import restore

    count = restore(args.backup, data_home())
    print(f"Restored {count} files into {data_home()}")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from workstation.jobs import run_job
    from workstation.review.monitoring import export_monitoring, monitoring_job

    store = review_store()
    user = acting_user(store, args.actor, "export" if args.csv_out or args.json_out else "view")
    report = run_job(monitoring_job(data_home(), user.username, args.by))  # the look is audited there
    rows, alerts = report.rows, report.alerts
    if not rows:
        print("No AI run is recorded yet.")
    for row in rows:
        rate = "-" if row["accept_rate"] is None else f"{row['accept_rate']:.0%}"
        print(f"{row['model']:<28} {row['month']}  {row['group']:<20} {row['studies']:4d} studies  "
              f"{row['findings_per_scan']:5.1f} findings/scan  accepted {rate:>4} of {row['decided']:<4} "
              f"missed {row['missed_added_per_scan']:.2f}/scan  {row['reading_minutes_per_scan']:.1f} min/scan")
    for alert in alerts:
        print(f"ALERT: {alert}")
    if rows:
        print(report.scope().sentence())
    for out, fmt in ((args.csv_out, "csv"), (args.json_out, "json")):
        if out:  # staged and audited as every export is
            export_monitoring(store, user, report, out, fmt)
    return 0
