"""The review store: SQLite in WAL mode with synchronous=FULL, versioned migrations.

Every change goes through `transaction()`, and the audit row for it is written inside the
same transaction, so a crash leaves either both or neither. A change is acknowledged to the
caller only after COMMIT returned (with synchronous=FULL the commit is on disk).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from workstation.config import read_settings
from workstation.errors import WorkstationError
from workstation.review import audit
from workstation.review.record_rows import all_rows, install_change_tracking

SCHEMA_VERSION = 6
MIGRATIONS: dict[int, str] = {
    1: audit.SCHEMA + """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('admin', 'radiologist', 'trainee')),
    password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until REAL NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS analyses (
    id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT, model_name TEXT NOT NULL,
    model_version TEXT NOT NULL, model_sha256 TEXT NOT NULL, device TEXT, threshold REAL, runtime_s REAL,
    created_by TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS findings (
    id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, analysis_id INTEGER REFERENCES analyses(id),
    source TEXT NOT NULL CHECK (source IN ('ai', 'clinician')), center_mm TEXT NOT NULL, diameter_mm REAL,
    volume_mm3 REAL, mean_hu REAL, probability REAL, type TEXT, model_name TEXT, model_version TEXT,
    created_by TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY, finding_id INTEGER NOT NULL REFERENCES findings(id), study_uid TEXT NOT NULL,
    user TEXT NOT NULL, action TEXT NOT NULL CHECK (action IN ('accept', 'reject', 'edit', 'add', 'undo')),
    reason TEXT, old_values TEXT, new_values TEXT, addendum INTEGER NOT NULL DEFAULT 0, undoes INTEGER,
    created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reading_sessions (
    study_uid TEXT NOT NULL, user TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('unread', 'in_review',
    'signed')), impression TEXT, started_at TEXT, signed_at TEXT, active_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (study_uid, user));
CREATE INDEX IF NOT EXISTS decisions_by_finding ON decisions(finding_id);
CREATE INDEX IF NOT EXISTS findings_by_study ON findings(study_uid);
""",
    # 2: what a report needs later: the analysis' scope warnings and notes, the reader's Lung-RADS override
    2: """
ALTER TABLE analyses ADD COLUMN details TEXT;
ALTER TABLE reading_sessions ADD COLUMN lung_rads TEXT;
""",
    # 3: teaching packs' answer keys and trainees' quiz attempts
    3: """
CREATE TABLE IF NOT EXISTS teaching_cases (
    study_uid TEXT PRIMARY KEY, pack_id TEXT NOT NULL, name TEXT NOT NULL, answers TEXT NOT NULL, notes TEXT,
    imported_by TEXT NOT NULL, imported_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quiz_attempts (
    id INTEGER PRIMARY KEY, trainee TEXT NOT NULL, study_uid TEXT NOT NULL, case_name TEXT, marks TEXT NOT NULL,
    hits INTEGER NOT NULL, misses INTEGER NOT NULL, false_marks INTEGER NOT NULL, sensitivity REAL,
    ai_hits INTEGER, ai_false INTEGER, submitted_at TEXT NOT NULL);
""",
    # 4: why a signed read was amended (decisions made after signing are addenda)
    4: """
ALTER TABLE decisions ADD COLUMN addendum_reason TEXT;
""",
    # 5: each audit row carries the hashes of the clinical rows its transaction changed
    5: """
ALTER TABLE audit ADD COLUMN rows TEXT;
""",
    # 6: a comparison with a prior study, recorded for the current study's read (issue #24); rows are
    # never changed, the newest in force; one recorded after signing is an addendum (the signed report
    # keeps the comparison it was signed with)
    6: """
CREATE TABLE IF NOT EXISTS comparisons (
    id INTEGER PRIMARY KEY, study_uid TEXT NOT NULL, prior_study_uid TEXT NOT NULL, prior TEXT NOT NULL,
    registration TEXT NOT NULL, prior_findings TEXT NOT NULL, prior_source TEXT NOT NULL, matches TEXT NOT NULL,
    edits TEXT NOT NULL DEFAULT '[]', addendum INTEGER NOT NULL DEFAULT 0, addendum_reason TEXT,
    created_by TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS comparisons_by_study ON comparisons(study_uid);
""",
}


class StoreError(WorkstationError):
    """The review store cannot complete an operation (disk full, read-only, damaged)."""


class ReviewStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.connection.execute("PRAGMA journal_mode=WAL")
            self.connection.execute("PRAGMA synchronous=FULL")
            self.connection.execute("PRAGMA foreign_keys=ON")
            self.db = sqlite_utils.Database(self.connection)
            self._migrate()
            install_change_tracking(self.connection)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"The review database cannot be opened: {exc}", path=str(self.path)) from exc

    @classmethod
    def in_home(cls, home: Path) -> "ReviewStore":
        return cls(Path(home) / "review.db")

    def _migrate(self) -> None:
        version = self.connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"The review database is from a newer version (schema {version}); update the app")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self.transaction() as connection:
                _run_script(connection, MIGRATIONS[target])
                if target == 5:  # what existed before the chain covered the record: sealed as found
                    if baseline := all_rows(connection):
                        audit.append(connection, "system", "record_sealed", rows=baseline)
                    for name, value in read_settings(self.path.parent).items():
                        audit.append(connection, "system", "settings_changed", object_id=name, new_value=value)
                connection.execute(f"PRAGMA user_version={target}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; any error rolls back and becomes a StoreError."""
        connection = self.connection
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"The review database is not writable: {exc}", path=str(self.path)) from exc
        try:
            yield connection
            connection.execute("COMMIT")
        except BaseException as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"The change was not saved: {exc}", path=str(self.path)) from exc
            raise

    @property
    def heatmap_folder(self) -> Path:
        """Heatmaps of recorded analyses live beside the database (the report's key images use them)."""
        return self.path.parent / "heatmaps"

    def integrity_ok(self) -> bool:
        return self.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        self.connection.close()


def _run_script(connection: sqlite3.Connection, script: str) -> None:
    """Execute statements one by one inside the open transaction (executescript would COMMIT)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            connection.execute(statement)
            statement = ""
