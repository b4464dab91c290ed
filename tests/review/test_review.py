"""Review core without Qt: decisions, undo, signing and addenda, permissions, audit chain,
tamper detection, crash safety under SIGKILL, and a read-only data folder."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from tests.review.storm import kill_during_storm
from workstation.errors import WorkstationError
from workstation.inference.findings import Finding
from workstation.inference.heatmap_file import load_heatmap
from workstation.inference.runner import Analysis
from workstation.review import audit
from workstation.review.session import ReviewError, ReviewSession
from workstation.review.store import ReviewStore, StoreError
from workstation.review.users import (
    ACTIONS, PERMISSIONS, AuthError, PermissionDenied, User, add_user, change_password, disable_user, list_users,
    login, logout,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"


def _Analysis(count: int) -> Analysis:  # noqa: N802 - reads like the class it builds
    """A real Analysis with `count` findings and a small heatmap with a blob at each."""
    heatmap = np.zeros((8, 16, 16), dtype=np.float32)
    findings = []
    for i in range(count):
        heatmap[i % 8, 4, i % 16] = 0.9 - i / 10
        findings.append(Finding(i + 1, (float(i), 2.0, 3.0), (1.0, 2.0, 3.0), 8.0 + i, 200.0, 20.0, 0.9 - i / 10,
                                "solid", "demo", "0.1"))
    return Analysis("demo", "0.1", "ab" * 32, "CPU", 0.5, 1.0, heatmap, findings, ["thick slices"], "Demo only.")


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    store = ReviewStore(tmp_path / "review.db")
    yield store
    store.close()


@pytest.fixture
def reader(store: ReviewStore) -> User:
    admin = add_user(store, None, "admin", "correct horse", "admin")
    return add_user(store, admin, "dr.lee", "battery staple", "radiologist")


def test_decisions_undo_sign_and_addenda(store: ReviewStore, reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    ids = session.record_analysis(_Analysis(3), "1.2.3")
    assert session.progress() == (0, 3)
    session.accept(ids[0])
    session.reject(ids[1], "vessel")
    session.edit(ids[2], type="part-solid", diameter_mm=11.5)
    session.undo()  # takes back the edit
    states = {s.id: s for s in session.findings()}
    assert states[ids[0]].decision == "accepted" and states[ids[1]].decision == "rejected"
    assert states[ids[1]].reason == "vessel" and states[ids[2]].type == "solid"
    session.edit(ids[2], type="part-solid")
    added = session.add((10.0, 20.0, 30.0), 6.0, "ground-glass")
    assert session.progress() == (3, 4)  # the edit alone is not a decision
    with pytest.raises(ReviewError, match="undecided"):
        session.sign("Two nodules.", password="battery staple")
    session.accept(ids[2])
    session.sign("Two nodules.", password="battery staple")
    assert session.signed
    with pytest.raises(ReviewError, match="already signed"):
        session.sign("again", password="battery staple")
    with pytest.raises(ReviewError, match="stays as signed"):
        session.reject(ids[0], "other", "on second look a scar")  # signed means sealed...
    session.begin_addendum("Second look with the prior")  # ...later changes are addenda, saying why
    session.reject(ids[0], "other", "on second look a scar")
    addenda = store.connection.execute("SELECT count(*), max(addendum_reason) FROM decisions WHERE addendum = 1"
                                       ).fetchone()
    assert addenda == (1, "Second look with the prior")
    as_signed = {s.id: s.decision for s in ReviewSession.findings_of(store, STUDY, as_signed=True)}
    assert as_signed[ids[0]] == "accepted"  # the signed content stays as it was
    old = store.connection.execute("SELECT old_values FROM decisions WHERE action = 'edit'").fetchone()[0]
    assert '"type": "solid"' in old  # the old values are kept
    reportable = [s.id for s in session.findings() if s.reportable]
    assert reportable == [ids[2], added] or set(reportable) == {ids[2], added}
    assert audit.verify(store.connection).ok


def test_reject_needs_a_known_reason_and_text_for_other(store: ReviewStore, reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    finding = session.record_analysis(_Analysis(1))[0]
    with pytest.raises(ReviewError):
        session.reject(finding, "because")
    with pytest.raises(ReviewError):
        session.reject(finding, "other")


def test_every_denied_role_action_pair_is_denied(store: ReviewStore) -> None:
    admin = add_user(store, None, "admin", "correct horse", "admin")
    for role in PERMISSIONS:
        user = User(f"u-{role}", role)
        for action in ACTIONS:
            if user.can(action):
                continue
            with pytest.raises(PermissionDenied):
                user.require(action)
    trainee = add_user(store, admin, "trainee", "battery staple", "trainee")
    session = ReviewSession(store, trainee, STUDY)
    finding = session.record_analysis(_Analysis(1))[0]
    session.accept(finding)  # trainees may practise deciding...
    with pytest.raises(PermissionDenied):
        session.sign("x", password="battery staple")  # ...but not sign
    with pytest.raises(PermissionDenied):
        add_user(store, trainee, "x", "long enough", "trainee")
    with pytest.raises(PermissionDenied):
        disable_user(store, User("dr.x", "radiologist"), "trainee")  # only admins manage users


def test_login_backoff_lockout_and_admin_unlock(store: ReviewStore) -> None:
    admin = add_user(store, None, "admin", "correct horse", "admin")
    add_user(store, admin, "dr.lee", "battery staple", "radiologist")
    now = 1_000_000.0
    assert login(store, "dr.lee", "battery staple", now).role == "radiologist"
    for attempt in range(5):
        with pytest.raises(AuthError):
            login(store, "dr.lee", "wrong", now + 100 * attempt)
    with pytest.raises(AuthError, match="Too many failed attempts"):
        login(store, "dr.lee", "battery staple", now + 500)
    change_password(store, admin, "dr.lee", "new battery staple")
    assert login(store, "dr.lee", "new battery staple", now + 501).username == "dr.lee"
    disable_user(store, admin, "dr.lee")
    with pytest.raises(AuthError, match="disabled"):
        login(store, "dr.lee", "new battery staple", now + 600)
    hashes = [row[0] for row in store.connection.execute("SELECT password_hash FROM users")]
    assert all(h.startswith("$argon2id$") and "m=19456,t=2,p=1" in h for h in hashes)
    assert [u["username"] for u in list_users(store, admin)] == ["admin", "dr.lee"]
    actions = [row[0] for row in store.connection.execute("SELECT action FROM audit")]
    assert "failed_login" in actions and "lock" in actions and "login" in actions


def test_audit_rows_cannot_be_updated_or_deleted(store: ReviewStore, reader: User) -> None:
    ReviewSession(store, reader, STUDY)
    for statement in ("UPDATE audit SET user = 'eve'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.connection.execute(statement)


@pytest.mark.parametrize("seed", range(25))
def test_tampering_with_the_file_is_always_detected(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "review.db"
    store = ReviewStore(path)
    admin = add_user(store, None, "admin", "correct horse", "admin")
    reader = add_user(store, admin, "dr.lee", "battery staple", "radiologist")
    session = ReviewSession(store, reader, STUDY)
    for finding in session.record_analysis(_Analysis(4)):
        session.accept(finding)
    assert audit.verify(store.connection).ok
    store.close()
    rng = random.Random(seed)
    connection = sqlite3.connect(path)
    connection.execute("DROP TRIGGER audit_no_update")  # what someone editing the file would do first
    connection.execute("DROP TRIGGER audit_no_delete")
    rows = connection.execute("SELECT seq FROM audit").fetchall()
    victim = rng.choice(rows)[0]
    kind = ("edit", "delete", "insert", "reorder")[seed % 4]
    if kind == "edit":
        connection.execute("UPDATE audit SET new_value = '{\"decision\":\"reject\"}' WHERE seq = ?", (victim,))
    elif kind == "delete":
        connection.execute("DELETE FROM audit WHERE seq = ?", (victim,))
    elif kind == "insert":
        row = connection.execute("SELECT * FROM audit WHERE seq = ?", (victim,)).fetchone()
        connection.execute("UPDATE audit SET seq = seq + 1000 WHERE seq >= ?", (victim,))
        connection.execute(f"INSERT INTO audit VALUES ({', '.join('?' * len(row))})", (victim, *row[1:3], "login",
                                                                                    *row[4:]))
        connection.execute("UPDATE audit SET seq = seq - 999 WHERE seq > 1000")
    else:
        other = rng.choice([r[0] for r in rows if r[0] != victim])
        a, b = (connection.execute("SELECT * FROM audit WHERE seq = ?", (s,)).fetchone() for s in (victim, other))
        connection.execute("DELETE FROM audit WHERE seq IN (?, ?)", (victim, other))
        connection.execute(f"INSERT INTO audit VALUES ({', '.join('?' * len(a))})", (victim, *b[1:]))
        connection.execute(f"INSERT INTO audit VALUES ({', '.join('?' * len(a))})", (other, *a[1:]))
    connection.commit()
    result = audit.verify(connection)
    assert not result.ok and result.first_bad_seq is not None, kind


def test_audit_verify_cli_names_the_first_bad_row(tmp_path: Path, home: Path, capsys, monkeypatch) -> None:
    from workstation.cli import main

    store = ReviewStore.in_home(home)
    admin = add_user(store, None, "admin", "correct horse", "admin")
    add_user(store, admin, "dr.lee", "battery staple", "radiologist")
    store.close()
    assert main(["audit", "verify"]) == 0
    assert "ok" in capsys.readouterr().out
    connection = sqlite3.connect(home / "review.db")
    connection.execute("DROP TRIGGER audit_no_update")
    connection.execute("UPDATE audit SET user = 'eve' WHERE seq = 2")
    connection.commit()
    assert main(["audit", "verify"]) == 1
    assert "row 2" in capsys.readouterr().out
    assert main(["audit", "export", "--csv"]) == 2  # the trail names patients' studies: admins only
    assert "--as USER" in capsys.readouterr().err
    monkeypatch.setenv("WORKSTATION_PASSWORD", "correct horse")
    assert main(["audit", "--as", "admin", "export", "--csv"]) == 0
    assert capsys.readouterr().out.startswith("seq,time_utc,user")
    monkeypatch.setenv("WORKSTATION_PASSWORD", "battery staple")
    assert main(["audit", "--as", "dr.lee", "export", "--csv"]) == 2
    assert "may not administer" in capsys.readouterr().err


@pytest.mark.parametrize("seed", range(20))
def test_acknowledged_decisions_survive_sigkill(tmp_path: Path, seed: int) -> None:
    """tests/benchmarks/bench_crash.py runs the same kill 1,000 times."""
    assert kill_during_storm(tmp_path / "review.db", seed) == []


def test_full_disk_gives_a_clear_error_and_saves_nothing(store: ReviewStore, reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    session.record_analysis(_Analysis(1))
    before = store.connection.execute("SELECT count(*) FROM audit").fetchone()[0]
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages}")  # the database cannot grow: a full disk
    with pytest.raises(StoreError, match="not saved"):
        for _ in range(200):  # each decision adds rows; the page limit is hit within a few
            session.add((1.0, 2.0, 3.0), 5.0)
    store.connection.execute("PRAGMA max_page_count = 1073741823")
    assert store.integrity_ok() and audit.verify(store.connection).ok
    added = store.connection.execute("SELECT count(*) FROM findings WHERE source = 'clinician'").fetchone()[0]
    audited = store.connection.execute("SELECT count(*) FROM audit WHERE action = 'finding_added'").fetchone()[0]
    assert added == audited  # the refused addition left neither a finding nor an audit row
    assert store.connection.execute("SELECT count(*) FROM audit").fetchone()[0] >= before


def test_failed_write_rolls_back_both_the_change_and_its_audit_row(store: ReviewStore, reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    finding = session.record_analysis(_Analysis(1))[0]
    before = store.connection.execute("SELECT count(*) FROM audit").fetchone()[0]
    store.connection.execute("PRAGMA query_only = ON")  # every write now fails, like a read-only disk
    with pytest.raises(StoreError, match="not writable|not saved"):
        session.accept(finding)
    store.connection.execute("PRAGMA query_only = OFF")
    assert store.connection.execute("SELECT count(*) FROM audit").fetchone()[0] == before
    assert session.findings()[0].decision == "undecided"


def test_the_heatmap_of_an_analysis_is_kept_for_the_report(store: ReviewStore, reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    analysis = _Analysis(3)
    session.record_analysis(analysis, "1.2.3")
    analysis_id = store.connection.execute("SELECT id FROM analyses").fetchone()[0]
    path = store.heatmap_folder / f"analysis-{analysis_id}.heatmap"
    kept = load_heatmap(path)
    assert kept.shape == analysis.heatmap.shape
    assert np.abs(kept - analysis.heatmap).max() <= 0.5 / 255 + 1e-6
    path.write_bytes(path.read_bytes()[:-10])  # truncated: a clear error, not a crash
    with pytest.raises(WorkstationError, match="cannot be read"):
        load_heatmap(path)


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    from workstation.review.store import MIGRATIONS, SCHEMA_VERSION, _run_script

    connection = sqlite3.connect(tmp_path / "review.db", isolation_level=None)
    connection.execute("BEGIN")
    _run_script(connection, MIGRATIONS[1])
    connection.execute("PRAGMA user_version=1")
    connection.execute("INSERT INTO analyses (study_uid, model_name, model_version, model_sha256, created_by, "
                       "created_at) VALUES ('1.2', 'm', '1', 'ab', 'dr', 'now')")
    connection.execute("COMMIT")
    connection.close()
    store = ReviewStore(tmp_path / "review.db")
    assert store.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.connection.execute("SELECT model_name, details FROM analyses").fetchone() == ("m", None)
    store.close()


def test_a_user_that_never_logged_in_can_do_nothing(store: ReviewStore, reader: User) -> None:
    """The core accepts no bare User: only login (and add_user) hand out one that can act."""
    ghost = User("ghost", "admin")
    with pytest.raises(PermissionDenied, match="not logged in"):
        ReviewSession(store, ghost, STUDY)
    forged = User(reader.username, reader.role)  # the same name and role, without the session
    with pytest.raises(PermissionDenied, match="not logged in"):
        ReviewSession(store, forged, STUDY)
    with pytest.raises(PermissionDenied, match="not logged in"):
        add_user(store, ghost, "eve", "long enough", "admin")
    session = ReviewSession(store, reader, STUDY)
    logout(store, reader)
    with pytest.raises(PermissionDenied, match="not logged in"):
        session.record_analysis(_Analysis(1))


def test_findings_keep_one_number_for_the_study_s_life(store: ReviewStore, reader: User) -> None:
    """#22: the number a reader dictates is the same in the list, report, exports and audit; it
    does not change with decisions, added findings, other studies or later runs."""
    other = ReviewSession(store, reader, "9.9.9")
    other.record_analysis(_Analysis(2), "9.9.9.1")  # another study's rows first: ids no longer start at 1
    session = ReviewSession(store, reader, STUDY)
    ids = session.record_analysis(_Analysis(3), "1.2.3")
    numbers = {s.id: s.number for s in session.findings()}
    assert [numbers[i] for i in ids] == [1, 2, 3] and min(ids) > 2
    added = session.add((10.0, 20.0, 30.0), 6.0)
    session.undo()  # the addition taken back: its number is not given to the next one
    again = session.add((11.0, 20.0, 30.0), 6.0)
    session.reject(ids[0], "vessel")
    numbers = {s.id: s.number for s in session.findings()}
    assert added not in numbers and numbers[again] == 5 and numbers[ids[0]] == 1
    row = store.connection.execute("SELECT details FROM audit WHERE action = 'finding_rejected'").fetchone()
    assert json.loads(row[0])["finding"] == 1


def test_signing_with_undecided_candidates_needs_a_reason_which_is_recorded(store: ReviewStore,
                                                                              reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    ids = session.record_analysis(_Analysis(3), "1.2.3")
    session.accept(ids[0])
    with pytest.raises(ReviewError, match="say why"):
        session.sign("One nodule.", password="battery staple", allow_undecided=True)
    session.sign("One nodule.", password="battery staple", allow_undecided=True,
                 undecided_reason="low-probability candidates, second reader to check")
    row = store.connection.execute("SELECT new_value FROM audit WHERE action = 'signed'").fetchone()
    assert json.loads(row[0])["undecided"] == 2 and "second reader to check" in row[0]
    assert audit.verify(store.connection).ok


def test_an_edited_diameter_recomputes_the_volume(store: ReviewStore, reader: User) -> None:
    session = ReviewSession(store, reader, STUDY)
    ids = session.record_analysis(_Analysis(1), "1.2.3")
    assert next(s for s in session.findings()).volume_mm3 == 200.0  # the model's segmented volume
    session.edit(ids[0], diameter_mm=4.2)
    state = session.findings()[0]
    assert state.volume_mm3 == pytest.approx(np.pi / 6 * 4.2 ** 3) and state.volume_estimated
    session.undo()
    assert session.findings()[0].volume_mm3 == 200.0 and not session.findings()[0].volume_estimated
