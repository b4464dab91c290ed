"""The clinical record's rows bound into the audit chain.

Every row of the clinical tables is hashed (the columns that make up the record) and the hash
goes into the audit row written in the same transaction as the change: TEMP triggers on this
process's connection note which rows a transaction touched, and `audit.append` takes that
list. `verify` replays the recorded hashes and compares them with the tables, so an edit,
insertion or deletion made any other way (the sqlite3 shell, another program) is named.

The clinic's settings (settings.json beside the database) are bound the same way: each change
is an audit row with its new value, and `verify` compares the file with the newest values.

Left out on purpose: a user's failed-login counter and lock-out time, and a reader's active
seconds, which change without a decision and are not part of the signed record.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from workstation.config import read_settings

TRACKED: dict[str, tuple[str, ...]] = {
    "users": ("username", "role", "password_hash", "disabled", "created_at"),
    "analyses": ("id", "study_uid", "series_uid", "model_name", "model_version", "model_sha256", "device",
                 "threshold", "runtime_s", "created_by", "created_at", "details"),
    "findings": ("id", "study_uid", "analysis_id", "source", "center_mm", "diameter_mm", "volume_mm3", "mean_hu",
                 "probability", "type", "model_name", "model_version", "created_by", "created_at"),
    "decisions": ("id", "finding_id", "study_uid", "user", "action", "reason", "old_values", "new_values",
                  "addendum", "undoes", "addendum_reason", "created_at"),
    "reading_sessions": ("study_uid", "user", "status", "impression", "started_at", "signed_at", "lung_rads"),
    "teaching_cases": ("study_uid", "pack_id", "name", "answers", "notes", "imported_by", "imported_at"),
    "quiz_attempts": ("id", "trainee", "study_uid", "case_name", "marks", "hits", "misses", "false_marks",
                      "sensitivity", "ai_hits", "ai_false", "submitted_at"),
    "comparisons": ("id", "study_uid", "prior_study_uid", "prior", "registration", "prior_findings", "prior_source",
                    "matches", "edits", "addendum", "addendum_reason", "created_by", "created_at"),
}


def install_change_tracking(connection: sqlite3.Connection) -> None:
    """TEMP triggers (this connection only) that note every row a transaction inserts, updates
    or deletes in a tracked table."""
    connection.execute("CREATE TEMP TABLE IF NOT EXISTS changed_rows (tbl TEXT NOT NULL, row INTEGER NOT NULL, "
                       "PRIMARY KEY (tbl, row))")
    for table in TRACKED:
        for event, rows in (("INSERT", ("NEW",)), ("UPDATE", ("OLD", "NEW")), ("DELETE", ("OLD",))):
            inserts = " ".join(f"INSERT OR IGNORE INTO changed_rows VALUES ('{table}', {row}.rowid);"
                               for row in rows)
            connection.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS track_{table}_{event.lower()} AFTER {event} "
                               f"ON main.{table} BEGIN {inserts} END")


def take_changed_rows(connection: sqlite3.Connection) -> list[list]:
    """[table, rowid, hash or None if deleted] of the rows changed since the last audit row."""
    try:
        changed = connection.execute("SELECT tbl, row FROM temp.changed_rows ORDER BY tbl, row").fetchall()
    except sqlite3.OperationalError:  # a connection without tracking (a bare sqlite3 one): nothing noted
        return []
    connection.execute("DELETE FROM temp.changed_rows")
    return [[table, row, row_digest(connection, table, row)] for table, row in changed]


def all_rows(connection: sqlite3.Connection) -> list[list]:
    """[table, rowid, hash] of every tracked row (the baseline of a database from before this);
    tables a later migration creates are not there yet."""
    present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [[table, rowid, digest] for table in TRACKED if table in present
            for rowid, digest in _digests(connection, table).items()]


def row_digest(connection: sqlite3.Connection, table: str, rowid: int) -> str | None:
    row = connection.execute(f"SELECT {', '.join(TRACKED[table])} FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
    return None if row is None else _digest(table, row)


def _digests(connection: sqlite3.Connection, table: str) -> dict[int, str]:
    return {row[0]: _digest(table, row[1:]) for row in
            connection.execute(f"SELECT rowid, {', '.join(TRACKED[table])} FROM {table}")}


def _digest(table: str, values: tuple) -> str:
    return hashlib.sha256(json.dumps([table, *values], separators=(",", ":"), default=str).encode()).hexdigest()


def first_difference(connection: sqlite3.Connection, recorded: dict[tuple[str, int], tuple[str | None, int]]
                     ) -> tuple[int | None, str] | None:
    """(audit seq or None, sentence) for the first tracked row that differs from what the audit
    recorded (`recorded`: (table, rowid) -> (hash or None, seq)); None when all agree."""
    for table in TRACKED:
        actual = _digests(connection, table)
        for rowid, digest in actual.items():
            expected, seq = recorded.get((table, rowid), (None, None))
            if expected is None:
                return None, f"{table} row {rowid} is not in the audit trail (inserted outside the record)"
            if expected != digest:
                return seq, (f"{table} row {rowid} differs from what audit row {seq} recorded (edited outside "
                             "the record)")
        for (recorded_table, rowid), (expected, seq) in recorded.items():
            if recorded_table == table and expected is not None and rowid not in actual:
                return seq, f"{table} row {rowid}, recorded by audit row {seq}, is missing (deleted outside the record)"
    return None


def settings_difference(connection: sqlite3.Connection) -> str | None:
    """A sentence when the settings file differs from what the audit trail last recorded."""
    home = _database_folder(connection)
    if home is None:
        return None
    recorded: dict[str, str] = {}
    for name, value in connection.execute(
            "SELECT object_id, new_value FROM audit WHERE action = 'settings_changed' ORDER BY seq"):
        recorded[name] = json.loads(value) if value else ""
    actual = read_settings(home)
    for name in sorted(set(recorded) | set(actual)):
        if recorded.get(name, "") != actual.get(name, ""):
            return (f"setting {name} is {actual.get(name, '(not set)')!r} but the audit trail last recorded "
                    f"{recorded.get(name, '(not set)')!r} (changed outside the record)")
    return None


def _database_folder(connection: sqlite3.Connection) -> Path | None:
    for _seq, name, file in connection.execute("PRAGMA database_list"):
        if name == "main" and file:
            return Path(file).parent
    return None
