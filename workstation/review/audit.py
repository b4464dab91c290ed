"""Append-only, hash-chained audit trail in the review database.

Every row carries the SHA-256 of the previous row's hash and its own canonical content, so an
edit, deletion, insertion or reordering anywhere breaks the chain at that row. Triggers refuse
UPDATE and DELETE on the table; rows are written in the same transaction as the change they
record, together with the head (last seq and hash) in audit_head, so that losing the newest rows
is detected too. Each row also carries the hashes of the clinical rows its transaction changed
(record_rows.py), so the chain covers the record, not only itself. The chain head hash is what
reports print as an anchor; anchors.py keeps copies of it outside the database.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import sqlite3
from dataclasses import dataclass

from workstation.review.anchors import first_broken_anchor
from workstation.review.record_rows import first_difference, settings_difference, take_changed_rows

GENESIS = "0" * 64
COLUMNS = ("seq", "time_utc", "user", "action", "study_uid", "object_id", "old_value", "new_value", "details",
           "prev_hash", "hash", "rows")
ACTIONS = ("study_opened", "analysis_run", "finding_accepted", "finding_rejected", "finding_edited", "finding_added",
           "decision_undone", "signed", "addendum", "exported", "login", "logout", "failed_login", "lock", "unlock",
           "user_added", "user_disabled", "password_changed", "deidentified", "pack_imported", "quiz_submitted",
           "imported", "password_confirmed", "record_sealed", "library_listed", "study_viewed", "settings_changed",
           "audit_exported", "backed_up", "model_imported", "comparison_recorded")

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, time_utc TEXT NOT NULL, user TEXT NOT NULL, action TEXT NOT NULL,
    study_uid TEXT, object_id TEXT, old_value TEXT, new_value TEXT, details TEXT,
    prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
"""


def _canonical(value: object) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def row_hash(prev_hash: str, seq: int, time_utc: str, user: str, action: str, study_uid: str | None,
             object_id: str | None, old_value: str | None, new_value: str | None, details: str | None,
             rows: str | None = None) -> str:
    fields = [seq, time_utc, user, action, study_uid, object_id, old_value, new_value, details]
    content = json.dumps(fields if rows is None else [*fields, rows], separators=(",", ":"))
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def append(connection: sqlite3.Connection, user: str, action: str, *, study_uid: str | None = None,
           object_id: str | None = None, old_value: object = None, new_value: object = None,
           details: object = None, rows: list[list] | None = None) -> str:
    """Write one audit row inside the caller's transaction, with the clinical rows the
    transaction changed (or `rows`, given); returns its hash."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    rows = take_changed_rows(connection) if rows is None else rows
    last = connection.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    time_utc = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
    old_text, new_text, details_text = _canonical(old_value), _canonical(new_value), _canonical(details)
    rows_text = _canonical(rows) if rows else None
    digest = row_hash(prev_hash, seq, time_utc, user, action, study_uid, object_id, old_text, new_text, details_text,
                      rows_text)
    connection.execute(
        "INSERT INTO audit (seq, time_utc, user, action, study_uid, object_id, old_value, new_value, details, "
        "prev_hash, hash, rows) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (seq, time_utc, user, action, study_uid, object_id, old_text, new_text, details_text, prev_hash, digest,
         rows_text))
    connection.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, ?, ?) "
                       "ON CONFLICT(id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash", (seq, digest))
    return digest


def head(connection: sqlite3.Connection) -> tuple[int, str]:
    """(seq, hash) of the newest row: the anchor a report prints."""
    row = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    head: str
    first_bad_seq: int | None = None
    reason: str = ""


def verify(connection: sqlite3.Connection, anchors: list[tuple[int, str, str]] = ()) -> Verification:
    """Walk the chain from the first row; report the first row that does not fit, then the first
    clinical row that differs from what the chain recorded, then the first of `anchors`
    ((seq, hash, where it comes from), see anchors.py) the chain no longer holds."""
    expected_seq, prev_hash, count = 1, GENESIS, 0
    recorded: dict[tuple[str, int], tuple[str | None, int]] = {}
    columns = {row[1] for row in connection.execute("PRAGMA table_info(audit)")}
    selected = ", ".join(name if name in columns else "NULL" for name in COLUMNS)  # a database from before "rows"
    for row in connection.execute(f"SELECT {selected} FROM audit ORDER BY rowid"):
        seq, time_utc, user, action, study_uid, object_id, old, new, details, stored_prev, stored_hash, rows = row
        count += 1
        if seq != expected_seq:
            return Verification(False, count, prev_hash, seq, f"row {seq} found where row {expected_seq} belongs "
                                                              "(a row was deleted, inserted or moved)")
        if stored_prev != prev_hash:
            return Verification(False, count, prev_hash, seq, f"row {seq} does not follow the previous row's hash")
        if row_hash(prev_hash, seq, time_utc, user, action, study_uid, object_id, old, new, details,
                    rows) != stored_hash:
            return Verification(False, count, prev_hash, seq, f"row {seq} was changed after it was written")
        for table, rowid, digest in json.loads(rows) if rows else ():
            recorded[(table, rowid)] = (digest, seq)
        prev_hash, expected_seq = stored_hash, expected_seq + 1
    head = connection.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    if (head or (0, GENESIS)) != (count, prev_hash):
        return Verification(False, count, prev_hash, count + 1 if head and head[0] > count else count,
                            "the newest rows do not match the recorded chain head (rows were removed or added "
                            "at the end)")
    difference = first_difference(connection, recorded) if "rows" in columns else None
    if difference is None and "rows" in columns and (settings := settings_difference(connection)):
        difference = (None, settings)
    if difference is None:
        difference = first_broken_anchor(connection, list(anchors))
    if difference is not None:
        return Verification(False, count, prev_hash, difference[0], difference[1])
    return Verification(True, count, prev_hash)


def export_rows(connection: sqlite3.Connection, fmt: str) -> str:
    rows = [dict(zip(COLUMNS, row)) for row in
            connection.execute(f"SELECT {', '.join(COLUMNS)} FROM audit ORDER BY seq")]
    if fmt == "json":
        return json.dumps(rows, indent=1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
