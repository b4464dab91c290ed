"""The audit chain covers the clinical record (#20, item 3): an edit, insertion or deletion in
any clinical table made outside the workstation is named by `verify`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.review.test_review import _Analysis
from workstation.review import audit
from workstation.review.record_rows import TRACKED
from workstation.review.session import ReviewSession
from workstation.review.store import MIGRATIONS, ReviewStore, _run_script
from workstation.review.users import add_user, login
from workstation.teaching.quiz import submit_quiz

STUDY = "1.2.826.0.1.3680043.8.498.7"


@pytest.fixture
def record(tmp_path: Path) -> Path:
    """A signed read with decisions, a clinician's finding and a trainee's quiz attempt."""
    path = tmp_path / "review.db"
    store = ReviewStore(path)
    admin = add_user(store, None, "admin", "correct horse", "admin")
    add_user(store, admin, "drlee", "battery staple", "radiologist")
    reader = login(store, "drlee", "battery staple")
    session = ReviewSession(store, reader, STUDY)
    ids = session.record_analysis(_Analysis(3), "1.2.3")
    session.accept(ids[0])
    session.reject(ids[1], "vessel")
    session.add((1.0, 2.0, 3.0), 6.0)
    session.sign("One nodule.", password="battery staple", allow_undecided=True,
                 undecided_reason="out of scope for this test")
    with store.transaction() as connection:
        connection.execute("INSERT INTO teaching_cases VALUES (?,?,?,?,?,?,?)",
                           ("9.9", "pack", "case 1", "[]", "", "admin", "now"))
        audit.append(connection, "admin", "pack_imported", study_uid="9.9")
    assert audit.verify(store.connection).ok
    store.close()
    return path


def _tamper(path: Path, *statements: str) -> audit.Verification:
    connection = sqlite3.connect(path)  # what someone with the file and the sqlite3 shell would do
    for statement in statements:
        connection.execute(statement)
    connection.commit()
    connection.close()
    store = ReviewStore(path)
    try:
        return audit.verify(store.connection)
    finally:
        store.close()


@pytest.mark.parametrize(("statement", "named"), [
    ("UPDATE reading_sessions SET impression = 'No nodules. Discharge.'", "reading_sessions row"),
    ("UPDATE decisions SET reason = 'other' WHERE action = 'reject'", "decisions row"),
    ("UPDATE decisions SET action = 'accept' WHERE action = 'reject'", "decisions row"),
    ("UPDATE findings SET diameter_mm = 3.0 WHERE source = 'clinician'", "findings row"),
    ("UPDATE users SET role = 'admin' WHERE username = 'drlee'", "users row"),
    ("UPDATE analyses SET model_version = '9.9'", "analyses row"),
    ("UPDATE teaching_cases SET answers = '[[0,0,0,5]]'", "teaching_cases row"),
])
def test_an_edit_in_any_clinical_table_is_named(record: Path, statement: str, named: str) -> None:
    result = _tamper(record, statement)
    assert not result.ok and named in result.reason and "edited outside the record" in result.reason


def test_insertions_and_deletions_are_named(record: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.db"
    copy.write_bytes(record.read_bytes())
    inserted = _tamper(record, "INSERT INTO findings (study_uid, source, center_mm, diameter_mm, type, created_by, "
                               "created_at) VALUES ('x', 'clinician', '[0,0,0]', 9, 'solid', 'eve', 'now')")
    assert not inserted.ok and "inserted outside the record" in inserted.reason
    deleted = _tamper(copy, "DELETE FROM decisions WHERE action = 'reject'")
    assert not deleted.ok and "deleted outside the record" in deleted.reason


def test_emptying_the_audit_trail_is_caught(record: Path) -> None:
    result = _tamper(record, "DROP TRIGGER audit_no_delete", "DELETE FROM audit", "DELETE FROM audit_head")
    assert not result.ok and "not in the audit trail" in result.reason


def test_quiz_attempts_are_covered_too(record: Path) -> None:
    store = ReviewStore(record)
    add_user(store, login(store, "admin", "correct horse"), "ana", "battery staple", "trainee")
    case = type("Case", (), {"study_uid": "9.9", "name": "case 1", "answers": [], "notes": ""})()
    submit_quiz(store, login(store, "ana", "battery staple"), case, [(0.0, 0.0, 0.0)], [])
    assert audit.verify(store.connection).ok
    store.close()
    result = _tamper(record, "UPDATE quiz_attempts SET hits = 5")
    assert not result.ok and "quiz_attempts row" in result.reason


def test_a_database_from_before_is_sealed_as_found(tmp_path: Path) -> None:
    """A schema-4 database (audit rows without row hashes) is sealed as found on migration."""
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path, isolation_level=None)
    for version in range(1, 5):
        _run_script(connection, MIGRATIONS[version])
    connection.execute("INSERT INTO reading_sessions (study_uid, user, status, impression) "
                       "VALUES ('1.2', 'drlee', 'signed', 'One nodule.')")
    digest = audit.row_hash(audit.GENESIS, 1, "2026-01-01T00:00:00", "drlee", "signed", "1.2", None, None, None, None)
    connection.execute("INSERT INTO audit VALUES (1, '2026-01-01T00:00:00', 'drlee', 'signed', '1.2', NULL, NULL, "
                       "NULL, NULL, ?, ?)", (audit.GENESIS, digest))
    connection.execute("INSERT INTO audit_head VALUES (1, 1, ?)", (digest,))
    connection.execute("PRAGMA user_version = 4")
    connection.close()
    store = ReviewStore(path)  # migrates: one row seals every clinical row as it is
    sealed = store.connection.execute("SELECT user, rows FROM audit WHERE action = 'record_sealed'").fetchone()
    assert sealed[0] == "system" and '"reading_sessions"' in sealed[1]
    assert audit.verify(store.connection).ok
    store.close()
    assert not _tamper(path, "UPDATE reading_sessions SET impression = 'forged'").ok


def test_every_clinical_table_is_tracked() -> None:
    store_tables = {"users", "analyses", "findings", "decisions", "reading_sessions", "teaching_cases",
                    "quiz_attempts", "comparisons"}
    assert set(TRACKED) == store_tables


def test_the_settings_file_is_bound_too(record: Path) -> None:
    from workstation.review.settings_change import change_setting

    store = ReviewStore(record)
    change_setting(store, record.parent, login(store, "admin", "correct horse"), "institution", "Clinique du Lac")
    assert audit.verify(store.connection).ok
    store.close()
    settings = record.parent / "settings.json"
    settings.write_text(settings.read_text().replace("Clinique du Lac", "Forged Clinic"))
    store = ReviewStore(record)
    result = audit.verify(store.connection)
    store.close()
    assert not result.ok and "setting institution is 'Forged Clinic'" in result.reason
